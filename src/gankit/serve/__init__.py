"""``gankit serve``: a web page (Gradio) and an HTTP API over trained models, bounded and safe by
default. The top layer: it uses inference, models, metrics and data; nothing below imports it.

Modules: options (the typed options), catalog (the models, their cards and examples), uploads (safe
image reading), work (the computations), queue (the one request queue), views (what the page shows
per kind, extensible with ``register_view``), page (the Gradio page), http (API and guard), app
(assembly and the foreground server)."""

from gankit.serve.options import ServeOptions
from gankit.serve.views import View, register_view

__all__ = ["ServeOptions", "View", "register_view"]
