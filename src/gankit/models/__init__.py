"""Models on gankit's one contract (:mod:`gankit.models.base`), named in one registry
(:mod:`gankit.models.registry`), saved and loaded in one format (:mod:`gankit.models.persist`)."""

from gankit.models.base import Model, Translator
from gankit.models.persist import load_model
from gankit.models.registry import model_class, model_kinds, register

__all__ = ["Model", "Translator", "load_model", "model_class", "model_kinds", "register"]
