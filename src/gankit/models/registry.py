"""The one registry of model kinds. A model file decorates its class with :func:`register`; the CLI,
checkpoint loading and the evaluators look kinds up here and nowhere else.

Models outside the package are plugins: a module named in the ``gankit.plugins`` entry-point group of
an installed distribution, or in the ``GANKIT_PLUGINS`` environment variable (comma-separated module
names, importable from ``sys.path``/``PYTHONPATH``). Importing it registers its kinds (and, if it
wants, their evaluators with :func:`gankit.metrics.registry.register_evaluator`).
"""

from __future__ import annotations

import importlib
import os
from importlib import metadata

from gankit.errors import ConfigError, GankitError
from gankit.models.base import Model

BUILTIN_MODULES = (
    "gankit.models.cyclegan",
    "gankit.models.augmented",
    "gankit.models.cut",
    "gankit.models.cgan",
    "gankit.models.sgan",
    "gankit.models.progan",
)
PLUGIN_GROUP = "gankit.plugins"
PLUGIN_ENV = "GANKIT_PLUGINS"

_KINDS: dict[str, type[Model]] = {}
_loaded: set[str] = set()


def register(cls: type[Model]) -> type[Model]:
    """Class decorator: make ``cls.kind`` trainable, loadable and listable."""
    kind = getattr(cls, "kind", None)
    if not kind or not isinstance(kind, str):
        raise TypeError(f"{cls.__name__} needs a string class attribute 'kind' to be registered")
    known = _KINDS.get(kind)
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        raise GankitError(f"model kind {kind!r} is registered twice ({known.__module__} and {cls.__module__})")
    _KINDS[kind] = cls
    return cls


def plugin_modules() -> list[str]:
    """Modules to import for plugin kinds: entry points first, then ``$GANKIT_PLUGINS``."""
    names = [ep.value.split(":")[0] for ep in metadata.entry_points(group=PLUGIN_GROUP)]
    names += [m.strip() for m in os.environ.get(PLUGIN_ENV, "").split(",") if m.strip()]
    return names


def load_modules() -> None:
    """Import the built-in model modules and the plugins (once each)."""
    for name in (*BUILTIN_MODULES, *plugin_modules()):
        if name in _loaded:
            continue
        try:
            importlib.import_module(name)
        except ImportError as e:
            if name in BUILTIN_MODULES:
                raise
            raise GankitError(f"plugin module {name!r} (from {PLUGIN_ENV} or the {PLUGIN_GROUP} entry points) "
                              f"cannot be imported: {e}") from None  # fmt: skip
        _loaded.add(name)


def model_kinds() -> dict[str, type[Model]]:
    """Every registered kind → its class, built-ins first."""
    load_modules()
    return dict(_KINDS)


def model_class(kind: str) -> type[Model]:
    kinds = model_kinds()
    if kind not in kinds:
        raise ConfigError(f"unknown model kind {kind!r}; registered: {', '.join(kinds)} (see `gankit models`)")
    return kinds[kind]
