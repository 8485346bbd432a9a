"""Image history buffer (Shrivastava et al. 2017, used by CycleGAN §4): the discriminator sees a mix
of the newest fakes and fakes from earlier generator versions, which damps oscillation."""

from __future__ import annotations

import torch


class ImagePool:
    """Keeps up to ``size`` past generated images. Each queried image is, with probability ½ once
    the pool is full, swapped for a random stored one (which is returned instead). Randomness comes
    from the pool's own generator so it can be checkpointed and resumed exactly."""

    def __init__(self, size: int = 50, seed: int = 0):
        self.size = size
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images.detach()
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(1, generator=self.generator).item() > 0.5:
                idx = int(torch.randint(0, self.size, (1,), generator=self.generator).item())
                out.append(self.images[idx].clone())
                self.images[idx] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict:
        return {"size": self.size, "images": [i.cpu() for i in self.images], "rng": self.generator.get_state()}

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        self.size = state["size"]
        self.images = [i.to(device) for i in state["images"]]
        self.generator.set_state(state["rng"])
