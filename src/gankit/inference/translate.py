"""Translating images of any size and mode, singly, in batches, or as whole folders.

Generators only accept sizes divisible by their ``size_multiple`` (their stride-2 stages must
invert exactly), so inputs are padded by reflection — which continues the picture rather than
adding a dark frame the network never saw — and the result is cropped back to the input size.

Images too large for one pass are translated in tiles by :mod:`gankit.inference.tiled`, which keeps
the whole-image instance-norm statistics, so the result has no seams and equals the one-piece
output up to float rounding; ``tile=None`` (the default) tiles only when the one-piece pass would
exceed the memory budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from gankit.data.images import convert_image, list_images, load_image, pil_to_tensor, tensor_to_pil
from gankit.errors import ConfigError, GankitError, WriteError
from gankit.inference.padding import pad_to_multiple
from gankit.inference.tiled import (
    DEFAULT_RAM_BYTES,
    check_tileable,
    choose_tile,
    default_memory_budget,
    is_tileable,
    translate_tiled,
)
from gankit.io import atomic_write_bytes, encode_image


def _generator_device_dtype(generator: nn.Module) -> tuple[torch.device | None, torch.dtype | None]:
    for p in generator.parameters():
        return p.device, p.dtype
    for b in generator.buffers():
        if b.is_floating_point():
            return b.device, b.dtype
    return None, None


def memory_budget(generator: nn.Module, max_memory: int | None = None) -> int:
    """Bytes a one-piece pass may use: ``max_memory`` if given, else half the free GPU memory for a
    CUDA generator or half the available RAM otherwise."""
    if max_memory is not None:
        return int(max_memory)
    device, _ = _generator_device_dtype(generator)
    if device is not None and device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return free // 2
    return default_memory_budget()


def plan_tile(
    generator: nn.Module, shape: tuple[int, ...], tile: int | None = None, max_memory: int | None = None
) -> int:
    """Tile size :func:`translate_tensor` will use for a (N, C, H, W) or (C, H, W) input: 0 for one
    piece. ``tile=None`` decides from the memory budget; an explicit tile larger than the image is
    one piece too (a single tile is the whole image)."""
    *lead, c, h, w = shape
    n = lead[0] if lead else 1
    if tile is None:
        budget = memory_budget(generator, max_memory)
        tile = choose_tile(generator, (c, h, w), None, budget // max(n, 1))
        if tile and not is_tileable(generator):
            tile = 0
    return tile if tile > 0 and max(h, w) > tile else 0


def translate_tensor(
    generator: nn.Module, x: torch.Tensor, *, tile: int | None = None, max_memory: int | None = None
) -> torch.Tensor:
    """(N, C, H, W) in [-1, 1] of any H, W → (N, C_out, H, W), on the generator's device.

    Runs in eval mode (batch norm uses its running statistics, dropout is off) and restores each
    submodule's previous mode afterwards, so it is safe to call in the middle of training. Images
    so small that the bottleneck would be a single pixel are padded to a larger multiple.

    ``tile``: translate in ``tile`` × ``tile`` pixel tiles with exact whole-image statistics
    (:func:`gankit.inference.tiled.translate_tiled`); 0 = always one piece; ``None`` = tile only when
    the one-piece pass would need more than ``max_memory`` bytes (default: :func:`memory_budget`).
    Tiling raises :class:`~gankit.inference.tiled.TilingUnsupported` for generators it cannot tile
    exactly (U-Nets).
    """
    if x.ndim != 4:
        raise ValueError(f"expected an (N, C, H, W) tensor, got shape {tuple(x.shape)}")
    if tile:
        check_tileable(generator)
    use_tile = plan_tile(generator, tuple(x.shape), tile, max_memory)
    if use_tile:
        ram = DEFAULT_RAM_BYTES if max_memory is None else min(DEFAULT_RAM_BYTES, int(max_memory) // 8)
        return translate_tiled(generator, x, use_tile, ram_bytes=ram)
    device, dtype = _generator_device_dtype(generator)
    if device is not None:
        x = x.to(device=device, dtype=dtype)
    h, w = x.shape[-2:]
    multiple = int(getattr(generator, "size_multiple", 1) or 1)
    modes = [(m, m.training) for m in generator.modules()]
    generator.eval()
    try:
        with torch.inference_mode():
            min_size = 0
            while True:
                padded, (top, _, left, _) = pad_to_multiple(x, multiple, min_size)
                try:
                    y = generator(padded)
                    break
                except (ValueError, RuntimeError):
                    # a 1-pixel bottleneck cannot be instance-normed or reflect-padded: pad tiny
                    # images further (only on failure, so sizes that work keep minimal padding)
                    if min(padded.shape[-2:]) >= 4 * multiple or min_size >= 4 * multiple:
                        raise
                    min_size = 2 * max(min_size, multiple)
    finally:
        for m, training in modes:
            m.training = training
    # clone outside inference mode: callers get an ordinary tensor they may modify in place
    return y[..., top : top + h, left : left + w].clone()


def translate_image(
    generator: nn.Module,
    image: Image.Image,
    in_channels: int,
    *,
    tile: int | None = None,
    max_memory: int | None = None,
) -> Image.Image:
    """Translate one PIL image of any mode (L, LA, P, RGBA, CMYK, 16-bit…) and size.

    The image is first made upright "L"/"RGB" with ``in_channels`` channels (what the generator
    was trained on); the result has that image's size and is "L" or "RGB" by output channels.
    ``tile``/``max_memory`` as in :func:`translate_tensor`.
    """
    img = convert_image(image, in_channels)
    x = pil_to_tensor(img)[None]
    del img
    y = translate_tensor(generator, x, tile=tile, max_memory=max_memory)
    del x
    return tensor_to_pil(y[0])


@dataclass
class TranslateResult:
    """What :func:`translate_paths` did: files written and ``(input, reason)`` for those that failed,
    so one bad file among thousands is reported instead of aborting the rest."""

    written: list[Path] = field(default_factory=list)
    failures: list[tuple[Path, str]] = field(default_factory=list)
    tiled: list[tuple[Path, int]] = field(default_factory=list)
    """``(input, tile size)`` of the images translated in tiles."""

    @property
    def ok(self) -> bool:
        return not self.failures


def _collect_inputs(inputs: list[str | Path], failures: list[tuple[Path, str]]) -> list[tuple[Path, Path]]:
    """``(file, relative output folder)`` pairs; folders keep their sub-folder structure so that
    ``a/x.png`` and ``b/x.png`` do not overwrite each other."""
    items: list[tuple[Path, Path]] = []
    seen: set[Path] = set()
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            try:
                files = [(f, f.parent.relative_to(path)) for f in list_images(path)]
            except GankitError as e:
                failures.append((path, str(e)))
                continue
        else:
            files = [(path, Path())]
        for f, rel in files:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                items.append((f, rel))
    return items


def roundtrip_strip(real: Image.Image, fake: Image.Image, rec: Image.Image) -> Image.Image:
    """real | translated | reconstructed side by side; gray panels are shown as RGB when the
    domains differ in channels, so the strip has one mode."""
    panels = [real, fake, rec]
    mode = "RGB" if any(p.mode != "L" for p in panels) else "L"
    w, h = real.size
    strip = Image.new(mode, (3 * w, h))
    for i, p in enumerate(panels):
        if p.size != (w, h):
            p = p.resize((w, h), Image.Resampling.BICUBIC)
        strip.paste(p.convert(mode), (i * w, 0))
    return strip


def translate_paths(
    model,
    inputs: list[str | Path],
    out_dir: str | Path,
    direction: str = "a2b",
    roundtrip: bool = False,
    suffix: str = ".png",
    progress: bool | None = None,
    tile: int | None = None,
    max_memory: int | None = None,
    *,
    samples: int | None = None,
    seed: int = 0,
    like: str | Path | None = None,
) -> TranslateResult:
    """Translate files and folders (searched recursively) into ``out_dir``.

    ``photo.jpg`` becomes ``photo_a2b.png`` (and with ``roundtrip`` also ``photo_a2b_roundtrip.png``,
    real | translated | reconstructed). Each output is written atomically, so an interrupted run
    never leaves a half-written image; unreadable inputs are recorded in ``failures`` and skipped.
    ``progress=None`` shows a bar when there is more than one input. ``tile`` and ``max_memory`` as
    in :func:`translate_tensor` (``None``: tile the images whose one-piece pass would not fit);
    an explicit tile with a generator that cannot be tiled raises before anything is read.

    Models with latent codes (Augmented CycleGAN, ``model.latent_dim`` > 0) translate with the prior's
    mode z = 0 by default; ``samples=K`` writes K translations ``photo_s0.png`` … ``photo_s{K-1}.png``
    with codes drawn from the prior (``seed`` fixes them: the same K codes for every input), and
    ``like=REF`` writes ``photo_like_REF.png`` with the code the model infers from the pair (input,
    REF), REF an image of the target domain (:meth:`infer_code`). Every tile of a large image gets the
    same code; a roundtrip goes back with the code the encoder infers from (input, translation), the
    augmented cycle. A deterministic model answers ``samples`` > 1 or ``like`` with a
    :class:`~gankit.errors.ConfigError` (``samples=1`` is its one translation, named ``photo_s0.png``).
    """
    from tqdm.auto import tqdm

    back = "b2a" if direction == "a2b" else "a2b"
    kind = getattr(model, "kind", type(model).__name__)
    if roundtrip and back not in getattr(model, "directions", (direction, back)):
        raise ConfigError(f"--roundtrip: this {kind} model translates {direction} only (one-sided, no inverse to "
                          "go back with)")  # fmt: skip
    _check_code_options(model, kind, samples, like)
    generator = model.generator(direction)
    in_channels, out_channels = model.channels(direction)
    reverse = model.generator(back) if roundtrip else None
    if tile:
        for g in (generator, reverse):
            if g is not None:
                check_tileable(g)
    reference = None
    if like is not None:
        try:
            reference = pil_to_tensor(load_image(like, out_channels))[None]
        except GankitError as e:
            raise ConfigError(f"--like: {e}") from None
    codes = model.sample_codes(samples, seed) if samples and stochastic(model) else None
    out_dir = Path(out_dir)
    result = TranslateResult()
    items = _collect_inputs(list(inputs), result.failures)
    taken: set[Path] = set()
    show = len(items) > 1 if progress is None else progress
    for path, rel in tqdm(items, desc=f"translate {direction}", unit="img", disable=not show):
        stem, n = path.stem, 2
        while (out_dir / rel / stem) in taken:  # x.jpg and x.png in one folder
            stem, n = f"{path.stem}-{n}", n + 1
        taken.add(out_dir / rel / stem)
        try:
            real = load_image(path, in_channels)
            used = plan_tile(generator, (in_channels, real.height, real.width), tile, max_memory)
            if used:
                result.tiled.append((path, used))
            outputs = []
            for name, g in _variants(model, direction, generator, real, samples, codes, like, reference):
                fake = translate_image(g, real, in_channels, tile=used, max_memory=max_memory)
                outputs.append((out_dir / rel / f"{stem}_{name}{suffix}", fake))
                if reverse is not None:
                    r = _back_generator(model, back, reverse, real, fake)
                    rec = translate_image(r, fake, model.channels(back)[0], tile=used, max_memory=max_memory)
                    strip = roundtrip_strip(real, fake, rec)
                    outputs.append((out_dir / rel / f"{stem}_{name}_roundtrip{suffix}", strip))
            for target, image in outputs:
                result.written.append(atomic_write_bytes(target, encode_image(image, suffix)))
        except WriteError:  # a full disk fails every file that follows: stop at the first
            raise
        except GankitError as e:  # ImageReadError names the file itself
            result.failures.append((path, str(e)))
    return result


def _variants(model, direction: str, generator: nn.Module, real: Image.Image, samples: int | None,
              codes: torch.Tensor | None, like: str | Path | None,
              reference: torch.Tensor | None) -> list[tuple[str, nn.Module]]:  # fmt: skip
    """(name, one-input generator) of every translation of one input: K prior codes, the code inferred
    from (input, reference), or the model's own translation."""
    if codes is not None:
        return [(f"s{k}", model.coded_generator(direction, codes[k : k + 1])) for k in range(len(codes))]
    if reference is not None:
        code = model.infer_code(direction, pil_to_tensor(real)[None], reference)
        return [(f"like_{Path(like).stem}", model.coded_generator(direction, code))]
    return [("s0" if samples else direction, generator)]


def _back_generator(model, back: str, reverse: nn.Module, real: Image.Image, fake: Image.Image) -> nn.Module:
    """The generator a roundtrip goes back with: for a model with latent codes, the inverse with the
    code its encoder infers from (input, translation), the augmented cycle."""
    if not stochastic(model):
        return reverse
    return model.coded_generator(back, model.infer_code(back, pil_to_tensor(fake)[None], pil_to_tensor(real)[None]))


def stochastic(model) -> bool:
    """Whether ``model`` translates with a latent code (one input, many translations)."""
    return int(getattr(model, "latent_dim", 0) or 0) > 0


def _check_code_options(model, kind: str, samples: int | None, like: str | Path | None) -> None:
    if samples is not None and samples < 1:
        raise ConfigError(f"--samples {samples}: expected a number ≥ 1")
    if samples is not None and like is not None:
        raise ConfigError("--samples and --like: give one (K codes from the prior, or the code of one example)")
    if stochastic(model):
        return
    if samples is not None and samples > 1:
        raise ConfigError(f"--samples {samples}: this {kind} model is deterministic (one translation per input); "
                          "train it with --latent-dim K for many")  # fmt: skip
    if like is not None:
        raise ConfigError(f"--like {like}: this {kind} model has no latent code to take from an example; train it "
                          "with --latent-dim K")  # fmt: skip
