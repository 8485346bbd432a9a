"""What the page shows for a model: one view per kind of model, chosen from a registry, so that a new
kind (say an "augmented" CycleGAN drawing several samples per input) brings its own view with
:func:`register_view` and the server core does not change.

A view builds the Gradio components of one model's tab and wires their events to async callbacks
that compute through :class:`ServeContext` (the one request queue, the upload checks), so every view
obeys the server's limits without knowing them."""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import gankit.serve.work as work
from gankit.models.base import Translator
from gankit.serve.catalog import ServedModel
from gankit.serve.errors import RequestError

DIRECTION_LABELS = {"a2b": "A → B (a2b)", "b2a": "B → A (b2a)"}


class ServeContext(Protocol):
    """What a view may use of the server (implemented by :class:`gankit.serve.app.ServerState`)."""

    async def translate_upload(self, name: str, path: str | None, direction: str, roundtrip: bool) -> work.Translation:
        """Translate the file the page uploaded (checked, queued, tiled as needed)."""

    async def compute(self, name: str, fn: Callable[..., Any], *args) -> Any:
        """``fn(*args)`` on model ``name`` through the request queue."""

    async def compute_on_upload(self, name: str, path: str | None, channels: int,
                                fn: Callable[..., Any], *args) -> Any:  # fmt: skip
        """``fn(*args, image)`` through the request queue, ``image`` the file the page uploaded as an
        upright sRGB "L"/"RGB" image of ``channels`` channels, checked against the server's limits."""


def slug(name: str) -> str:
    """``name`` as a fragment of an element id or API name."""
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower() or "model"


def upload(label: str, elem_id: str):
    """An image upload whose callback gets the uploaded file's path untouched: with ``image_mode=None``
    Gradio reads only the header (to tell an image) and converts nothing, so the server's own checks
    (pixel count from the header, then one decode) do all the reading, as for ``POST /api/translate``.
    (A subclass of ``gr.Image`` would be neater, but Gradio writes a ``.pyi`` stub beside any module
    that defines one.)"""
    import gradio as gr

    return gr.Image(label=label, type="filepath", image_mode=None, sources=["upload"], elem_id=elem_id)


def page_errors(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Show a request error as the page's one-line error message instead of a traceback."""
    import gradio as gr

    @functools.wraps(fn)
    async def wrapped(*args):
        try:
            return await fn(*args)
        except RequestError as e:
            raise gr.Error(str(e), print_exception=False) from None

    return wrapped


class View:
    """Base of every view: ``applies`` says whether it fits a model, ``build`` lays out its tab."""

    @classmethod
    def applies(cls, served: ServedModel) -> bool:
        raise NotImplementedError

    def build(self, served: ServedModel, ctx: ServeContext) -> None:
        raise NotImplementedError


_VIEWS: list[type[View]] = []


def register_view(cls: type[View]) -> type[View]:
    """Class decorator: offer ``cls`` for the models it applies to. Views registered later are asked
    first, so a plugin's view for its own kind wins over the generic translator view."""
    _VIEWS.insert(0, cls)
    return cls


def view_for(served: ServedModel) -> View | None:
    for cls in _VIEWS:
        if cls.applies(served):
            return cls()
    return None


@register_view
class TranslationView(View):
    """Upload (or pick an example of the run's data), choose a direction, see the translation and the
    round trip side by side at the input's size; one-sided models offer their direction only."""

    @classmethod
    def applies(cls, served: ServedModel) -> bool:
        return isinstance(served.model, Translator)

    def build(self, served: ServedModel, ctx: ServeContext) -> None:
        import gradio as gr

        key, directions = slug(served.name), served.directions
        two_way = len(directions) > 1
        with gr.Row():
            with gr.Column():
                image = upload("input", f"input-{key}")
                direction = gr.Radio([(DIRECTION_LABELS.get(d, d), d) for d in directions], value=directions[0],
                                     label="direction", interactive=two_way, elem_id=f"direction-{key}")  # fmt: skip
                button = gr.Button("Translate", variant="primary", elem_id=f"translate-{key}")
            out = gr.Image(label="translation", type="pil", format="png", interactive=False,
                           buttons=["download", "fullscreen"], elem_id=f"translation-{key}")  # fmt: skip
            back = gr.Image(label="round trip (translated back)", type="pil", format="png", interactive=False,
                            buttons=["download", "fullscreen"], visible=two_way,
                            elem_id=f"roundtrip-{key}")  # fmt: skip
        status = gr.Markdown(elem_id=f"status-{key}")
        with gr.Row():
            for d in directions:
                if served.examples.get(d):
                    domain = "A" if d == "a2b" else "B"
                    examples = gr.Examples([[str(p)] for p in served.examples[d]], inputs=[image],
                                           label=f"examples of domain {domain} from the run's data ({d})")  # fmt: skip
                    # clicking one also chooses its direction
                    examples.dataset.click(lambda d=d: d, None, direction, queue=False, api_visibility="private")

        @page_errors
        async def run(path, d):
            t = await ctx.translate_upload(served.name, path, d, two_way)
            w, h = t.image.size
            how = f"in {t.tile} px tiles (whole-image statistics, no seams)" if t.tile else "in one piece"
            return t.image, t.roundtrip, f"{w}×{h} px, translated {how}"

        button.click(run, [image, direction], [out, back, status], api_visibility="private", concurrency_limit=None)


@register_view
class DigitGridView(View):
    """A conditional GAN: pick a digit, see a grid of it."""

    @classmethod
    def applies(cls, served: ServedModel) -> bool:
        return served.kind == "cgan"

    def build(self, served: ServedModel, ctx: ServeContext) -> None:
        import gradio as gr

        key = slug(served.name)
        with gr.Row():
            with gr.Column():
                digit = gr.Radio([str(d) for d in range(10)], value="7", label="digit", elem_id=f"digit-{key}")
                seed = gr.Number(0, label="seed", precision=0, minimum=0)
                button = gr.Button("Draw", variant="primary", elem_id=f"draw-{key}")
            grid = gr.Image(label="samples", type="pil", format="png", interactive=False, elem_id=f"grid-{key}")

        @page_errors
        async def draw(d, s):
            return await ctx.compute(served.name, work.digit_grid, served.model, int(d), 16, int(s or 0))

        button.click(draw, [digit, seed], grid, api_name=f"digits_{key}", concurrency_limit=None)


@register_view
class DigitClassifierView(View):
    """A semi-supervised GAN: its discriminator reads an uploaded digit; its generator draws samples."""

    @classmethod
    def applies(cls, served: ServedModel) -> bool:
        return served.kind == "sgan"

    def build(self, served: ServedModel, ctx: ServeContext) -> None:
        import gradio as gr

        key = slug(served.name)
        with gr.Row():
            with gr.Column():
                image = upload("a digit (light on dark, or dark on light)", f"input-{key}")
                button = gr.Button("Classify", variant="primary", elem_id=f"classify-{key}")
            label = gr.Label(num_top_classes=3, label="prediction", elem_id=f"prediction-{key}")
        if served.examples.get("input"):
            gr.Examples([[str(p)] for p in served.examples["input"]], inputs=[image], label="MNIST test digits")
        with gr.Row():
            seed = gr.Number(0, label="seed", precision=0, minimum=0)
            sample = gr.Button("Draw samples", elem_id=f"sample-{key}")
        grid = gr.Image(label="generated samples", type="pil", format="png", interactive=False)

        @page_errors
        async def classify(path):
            return await ctx.compute_on_upload(served.name, path, 1, work.classify_digit, served.model)

        @page_errors
        async def draw(s):
            return await ctx.compute(served.name, work.samples, served.model, 16, int(s or 0))

        button.click(classify, image, label, api_name=f"classify_{key}", concurrency_limit=None)
        sample.click(draw, seed, grid, api_name=f"samples_{key}", concurrency_limit=None)


@register_view
class SamplesView(View):
    """A progressive GAN: random samples and an interpolation strip between two latent points."""

    @classmethod
    def applies(cls, served: ServedModel) -> bool:
        return served.kind == "progan"

    def build(self, served: ServedModel, ctx: ServeContext) -> None:
        import gradio as gr

        key = slug(served.name)
        with gr.Row():
            seed = gr.Number(0, label="seed", precision=0, minimum=0)
            button = gr.Button("Draw", variant="primary", elem_id=f"draw-{key}")
        grid = gr.Image(label="random samples", type="pil", format="png", interactive=False, elem_id=f"grid-{key}")
        strip = gr.Image(label="interpolation", type="pil", format="png", interactive=False, elem_id=f"strip-{key}")

        @page_errors
        async def draw(s):
            s = int(s or 0)
            return (await ctx.compute(served.name, work.samples, served.model, 16, s),
                    await ctx.compute(served.name, work.interpolation_strip, served.model, 8, s))  # fmt: skip

        button.click(draw, seed, [grid, strip], api_name=f"samples_{key}", concurrency_limit=None)
