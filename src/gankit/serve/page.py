"""The page: one tab per model with its card and its view (:mod:`gankit.serve.views`), and the Gradio
client API's ``/translate`` endpoint, which takes the model by name like ``POST /api/translate``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gankit.serve.views import ServeContext, page_errors, slug, upload, view_for
from gankit.version import VERSION

if TYPE_CHECKING:
    import gradio as gr

    from gankit.serve.catalog import ServedModel

LOCAL_FONTS = (["ui-sans-serif", "system-ui", "sans-serif"], ["ui-monospace", "monospace"])
"""System fonts: the default theme fetches web fonts from the internet, which an offline or private
server should not depend on."""


def theme() -> gr.themes.Base:
    import gradio as gr

    sans, mono = LOCAL_FONTS
    return gr.themes.Default(font=sans, font_mono=mono)


def build_page(models: list[ServedModel], ctx: ServeContext, limits: str) -> gr.Blocks:
    """The page for ``models``; ``limits`` is a line telling visitors what the server accepts."""
    import gradio as gr

    with gr.Blocks(title="gankit serve", delete_cache=(600, 3600)) as page:
        gr.Markdown(f"## gankit serve\n{len(models)} model(s) · gankit {VERSION} · {limits}")
        with gr.Tabs():
            for served in models:
                view = view_for(served)
                with gr.Tab(f"{served.name} ({served.kind})", elem_id=f"tab-{slug(served.name)}"):
                    gr.Markdown(served.card.summary(served.name))
                    if view is None:
                        gr.Markdown(f"No view for {served.kind} models; `GET /api/models` lists it.")
                    else:
                        view.build(served, ctx)
                    with gr.Accordion("evaluation", open=bool(served.card.metrics)):
                        gr.Markdown(served.card.evaluation())
        _translate_api(ctx)
    return page


def _translate_api(ctx: ServeContext) -> None:
    """``Client(url).predict(model, handle_file(path), direction, roundtrip, api_name="/translate")`` →
    (translation, round trip) PNG files; hidden components, since the page's tabs have their own."""
    import gradio as gr

    with gr.Column(visible=False):
        model = gr.Textbox(label="model")
        image = upload("image", "api-image")
        direction = gr.Textbox(label="direction", value="a2b")
        roundtrip = gr.Checkbox(label="roundtrip", value=False)
        out = gr.Image(label="translation", type="pil", format="png")
        back = gr.Image(label="round trip", type="pil", format="png")
        trigger = gr.Button("translate")

    @page_errors
    async def translate(name, path, d, rt):
        t = await ctx.translate_upload(name, path, d or "a2b", bool(rt))
        return t.image, t.roundtrip

    trigger.click(translate, [model, image, direction, roundtrip], [out, back], api_name="translate",
                  concurrency_limit=None)  # fmt: skip
