"""The model contract: what every trainable model gives the one training loop
(:mod:`gankit.training.loop`) and the commands around it.

A model owns its networks, optimizers and loss math and does one training step on the batches the
loop hands it; it declares its typed config (a :class:`~gankit.config.RunConfig`), where its training
batches come from, its sample grid and, if it translates images, the :class:`Translator` capability
that ``translate``, ``export``, ``eval`` and ``serve`` consume. The loop does everything around it the
same way for every model (run folder, progress, logs, grids, page, checkpoints, resume, NaN policy,
precision, compile). A model file registers its class with :func:`gankit.models.registry.register`.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from PIL import Image
from torch import nn

from gankit.config import RunConfig
from gankit.data.streams import BatchSource
from gankit.distributed import SINGLE, Shard, globalise_batch_norm
from gankit.errors import CheckpointError, ConfigError, TrainingDiverged
from gankit.runtime import autocast_dtype

LossTerms = dict[str, "torch.Tensor | float"]


class Precision:
    """Mixed precision for one model (``--amp``): an autocast context for forward passes and, for
    float16, a gradient scaler shared by the model's optimizers (its state is checkpointed)."""

    shard: Shard = SINGLE
    """The rank whose gradients are averaged with the others' (set by :meth:`Model.use_shard`)."""

    def __init__(self, amp: str, device: torch.device):
        self.device = device
        self.lr_factor = 1.0
        """Multiplies every learning rate at each update (global-batch scaling and warm-up, set by the loop)."""
        self.dtype = autocast_dtype(amp, device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)
        self.micro_batch, self.micro_batches = 0, 1
        """Which of the step's accumulated batches is being trained on (``--accumulate``, set by the loop)."""

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """zero_grad, (scaled) backward, step: one optimizer update on ``loss``. A NaN or infinite
        loss raises :class:`TrainingDiverged` before it can reach the weights. In a data-parallel
        run the gradients are averaged over ranks first, and the loss with them, so that every rank
        takes the same decision. With accumulated batches the gradients add up over the step's
        batches and the last one averages them and updates (as ranks would, sum then divide)."""
        if not self.shard.distributed and not torch.isfinite(loss.detach()).all():
            raise TrainingDiverged(f"a loss optimized by {type(optimizer).__name__} became {loss.detach().item()}")
        if self.micro_batch == 0:
            optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.micro_batch < self.micro_batches - 1:
            return
        if self.micro_batches > 1:
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.grad.div_(self.micro_batches)
        if self.shard.distributed:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            mean = self.shard.average_gradients(params, loss)
            if not torch.isfinite(mean):
                raise TrainingDiverged(f"a loss optimized by {type(optimizer).__name__} became {mean.item()} "
                                       "(mean over ranks)")  # fmt: skip
        if self.lr_factor == 1.0:
            self.scaler.step(optimizer)
            return
        rates = [group["lr"] for group in optimizer.param_groups]
        for group in optimizer.param_groups:
            group["lr"] *= self.lr_factor
        try:
            self.scaler.step(optimizer)
        finally:
            for group, lr in zip(optimizer.param_groups, rates):
                group["lr"] = lr

    def update(self) -> None:
        """Once per training step, after every optimizer update of it."""
        self.scaler.update()


class Model(ABC):
    """One trainable model. Subclasses set ``kind`` (the name users type), ``summary`` (one line for
    ``gankit models``) and ``config_class``, and build networks and optimizers in ``__init__``.

    ``for_training=False`` asks for what inference needs only (a model may then skip discriminators
    and optimizers); training data is attached by :meth:`training_data`, so that sampling,
    translation and evaluation never load it."""

    kind: ClassVar[str]
    summary: ClassVar[str] = ""
    config_class: ClassVar[type[RunConfig]]
    exported: ClassVar[tuple[str, ...] | None] = None
    """Networks written to model.safetensors (None: all of :meth:`networks`)."""

    shard: Shard = SINGLE
    """Which part of each global batch this process trains on (see :mod:`gankit.distributed`): batch
    sources take its slice, random draws go through ``shard.randn``/``randint``/``rand``."""

    def __init__(self, config: RunConfig, device: torch.device, *, for_training: bool = True):
        self.config, self.device, self.for_training = config, device, for_training
        self.precision = Precision(config.amp, device)

    def use_shard(self, shard: Shard) -> None:
        """Train as one rank of a data-parallel run (before :meth:`training_data`): batch norm then
        normalises over the global batch and the optimizer steps average gradients over ranks."""
        self.shard = self.precision.shard = shard
        for net in self.networks().values():
            globalise_batch_norm(net, shard)

    # --- what the loop needs ----------------------------------------------------------------------
    @abstractmethod
    def networks(self) -> dict[str, nn.Module]:
        """Every network whose weights define the model's state (saved in checkpoints)."""

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {}

    @abstractmethod
    def training_data(self) -> BatchSource:
        """Load the training data: the source of the batches :meth:`train_step` receives."""

    @property
    def batches_per_step(self) -> int:
        """Batches one training step consumes: one per discriminator update (``--n-critic``)."""
        return int(getattr(self.config, "n_critic", 1))

    @abstractmethod
    def train_step(self, batches: Sequence[Any], step: int) -> LossTerms:
        """One training step (its discriminator updates, then one generator update) on
        :attr:`batches_per_step` batches; ``step`` is 1-based. Returns the loss terms to log."""

    @abstractmethod
    def sample_grid(self, step: int) -> Image.Image:
        """The periodic progress grid (fixed inputs or noise, so grids compare across steps)."""

    @property
    def accumulates_exactly(self) -> bool:
        """Whether no loss of a training step reads a network that an earlier update of the same step
        changed, so that running the step on K batches with every update deferred to the last
        (``--accumulate K``) is the computation of K data-parallel ranks. A model that updates D and
        then trains G against the new D is not (its accumulation would need K passes per update)."""
        return False

    def progress_terms(self, terms: Mapping[str, float]) -> dict[str, float]:
        """The few loss figures shown on the progress bar."""
        return dict(list(terms.items())[:4])

    def describe(self) -> dict[str, str]:
        """Lines for the run's HTML page (architecture, data, game…)."""
        return {}

    def prepare(self, log=print) -> None:
        """One-time work before the first step that needs the training data (e.g. training a frozen
        auxiliary network); called after a checkpoint is restored, so restored state can make it a no-op."""
        del log

    def extra_state(self) -> dict[str, Any]:
        """Pickle-free state besides weights and optimizers needed to resume exactly (pools, phase…)."""
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        del state

    def activation_bytes(self) -> int | None:
        """Bytes autograd keeps for the backward pass of one training step, the bulk of training
        memory at large image sizes (None: the model cannot tell, and no memory check is made)."""
        return None

    def extra_state_bytes(self) -> int:
        """The most bytes :meth:`extra_state` will take in a checkpoint during the run (e.g. history
        pools once full): the disk check before a run starts counts it."""
        return nested_tensor_bytes(self.extra_state())

    def compile_for_training(self) -> None:
        """``--compile``: compile each network's forward in place (state-dict keys unchanged)."""
        for net in self.networks().values():
            net.compile(dynamic=False)

    @contextlib.contextmanager
    def reference_passes(self):
        """Run every pass through PyTorch's own convolutions for a while (no tuned algorithms, whose
        custom kernels e.g. a FLOP counter cannot see); the model's tuner comes back afterwards."""
        from gankit.nn.conv import tune_convolutions

        tuner = getattr(self, "conv_tuner", None)
        for net in self.networks().values():
            tune_convolutions(net, None)
        try:
            yield
        finally:
            for net in self.networks().values():
                tune_convolutions(net, tuner)

    # --- what the commands around it use ------------------------------------------------------------
    def sample(self, *, n: int, label: int | None = None, interpolate: bool = False, seed: int = 0) -> Image.Image:
        """``gankit sample``: a grid of ``n`` new images (of class ``label`` for conditional models), or
        with ``interpolate`` rows along lines between latent points."""
        raise ConfigError(f"{self.kind} models do not draw samples; use `gankit translate` for translators")

    def train(self, mode: bool = True) -> Model:
        for net in self.networks().values():
            net.train(mode)
        return self

    def eval(self) -> Model:
        return self.train(False)

    def weights(self, names: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """``{network.parameter: tensor}`` on the CPU, of ``names`` (default all networks)."""
        nets = self.networks()
        return {f"{name}.{k}": v.detach().cpu().contiguous()
                for name in (names or nets) for k, v in nets[name].state_dict().items()}  # fmt: skip

    def load_weights(self, tensors: Mapping[str, torch.Tensor], source: str, *, strict: bool = True) -> None:
        """Load ``{network.parameter: tensor}``; with ``strict`` every network must be present."""
        for name, net in self.networks().items():
            prefix = f"{name}."
            state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            if not state and not strict:
                continue
            try:
                net.load_state_dict(state)
            except RuntimeError as e:
                raise CheckpointError(f"{source}: weights of {name!r} do not fit this model ({e})") from None


class Translator(ABC):
    """The capability of a model that turns images of one domain into another: what ``translate``,
    ``export``, ``eval`` and ``serve`` use, whatever the model kind."""

    @property
    @abstractmethod
    def directions(self) -> tuple[str, ...]:
        """The directions it translates, e.g. ``("a2b", "b2a")`` or ``("a2b",)`` for one-sided models."""

    @abstractmethod
    def translator_network(self, direction: str) -> nn.Module:
        """The generator of ``direction``: (N, C_in, H, W) in [-1, 1] → (N, C_out, H, W)."""

    @abstractmethod
    def channels(self, direction: str = "a2b") -> tuple[int, int]:
        """(input, output) channels of a direction."""

    @property
    @abstractmethod
    def image_size(self) -> int:
        """The crop size the model was trained at (what evaluation resizes to by default)."""

    @property
    def labels_seen_in_training(self) -> frozenset[str]:
        """The domains (``"a"``, ``"b"``) whose class labels shaped the weights: an adaptation figure
        whose target domain is among them is not label-free (Hoffman et al. 2018 train on source labels
        only)."""
        return frozenset()

    def check_direction(self, direction: str) -> str:
        if direction not in self.directions:
            kind = getattr(self, "kind", type(self).__name__)
            raise ConfigError(f"--direction {direction}: this {kind} model translates {' and '.join(self.directions)}"
                              " only")  # fmt: skip
        return direction

    def generator(self, direction: str = "a2b") -> nn.Module:
        return self.translator_network(self.check_direction(direction))


def set_requires_grad(nets: Sequence[nn.Module], flag: bool) -> None:
    for net in nets:
        net.requires_grad_(flag)


def nested_tensor_bytes(obj: Any) -> int:
    """Total bytes of the tensors in a nest of dicts, lists and tuples."""
    if torch.is_tensor(obj):
        return obj.numel() * obj.element_size()
    if isinstance(obj, Mapping):
        return sum(nested_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(nested_tensor_bytes(v) for v in obj)
    return 0


def make_optimizer(params, config: Any, lr: float) -> torch.optim.Optimizer:
    """Adam(lr, β=(beta1, beta2)) as in the papers, or with ``optimizer = rmsprop`` RMSprop (seed 000
    uses 2e-4 for D and half of that for the adversarial model: ``--lr 1e-4 --lr-d 2e-4``)."""
    weight_decay = getattr(config, "weight_decay", 0.0)
    if getattr(config, "optimizer", "adam") == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=config.rms_alpha, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, betas=(config.beta1, config.beta2), weight_decay=weight_decay)


@torch.no_grad()
def update_average(average: nn.Module, current: nn.Module, decay: float) -> None:
    """average ← decay·average + (1 − decay)·current over parameters and float buffers (integer
    buffers are copied): the weight average used for samples and evaluation."""
    for avg, cur in zip(average.state_dict().values(), current.state_dict().values()):
        if avg.is_floating_point():
            avg.lerp_(cur, 1 - decay)
        else:
            avg.copy_(cur)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between latent rows ``a`` and ``b`` (N, D) at fractions ``t`` (T,) →
    (N, T, D) (White 2016, "Sampling generative networks"); straight lines for (nearly) parallel pairs."""
    an, bn = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((an * bn).sum(1).clamp(-1 + 1e-7, 1 - 1e-7))[:, None, None]  # (N, 1, 1)
    t = t[None, :, None]
    so = torch.sin(omega)
    lin = (1 - t) * a[:, None] + t * b[:, None]
    sph = (torch.sin((1 - t) * omega) * a[:, None] + torch.sin(t * omega) * b[:, None]) / so.clamp_min(1e-7)
    return torch.where(so > 1e-4, sph, lin)


def latent_lines(
    rows: int, cols: int, dim: int, generator: torch.Generator, *, spherical: bool = False
) -> torch.Tensor:
    """``rows`` interpolation lines of ``cols`` latents each between random normal end points, as one
    (rows·cols, dim) batch, row after row (straight lines, or great circles with ``spherical``)."""
    if spherical:
        a, b = torch.randn(rows, dim, generator=generator), torch.randn(rows, dim, generator=generator)
        return slerp(a, b, torch.linspace(0, 1, cols)).reshape(rows * cols, dim)
    ends = torch.randn(rows, 2, dim, generator=generator)
    t = torch.linspace(0, 1, cols)[None, :, None]
    return ((1 - t) * ends[:, :1] + t * ends[:, 1:]).reshape(rows * cols, dim)
