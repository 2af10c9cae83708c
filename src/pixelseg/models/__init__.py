"""Model families. Every module in this package is imported here so its models register
themselves: adding a model is adding a file, with no import list to maintain. Python imports
this package before any of its modules, so the registry is full whenever it is asked."""

import importlib
import pkgutil

from .knobs import Knob
from .registry import ModelEntry, create_model, get_entry, list_models, register_model

for _info in pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_") and _info.name not in ("registry", "knobs"):
        importlib.import_module(f"{__name__}.{_info.name}")


__all__ = ["Knob", "ModelEntry", "create_model", "get_entry", "list_models", "register_model"]
