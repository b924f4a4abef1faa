"""Contact estimators behind one interface (see `base.ContactBackend`)."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from ivlm_core.backends.base import ContactBackend

# name -> (module, class); imported only when asked for, so a CPU install never imports the VLM stack.
BACKENDS: dict[str, tuple[str, str]] = {
    "keypoint": ("ivlm_core.backends.keypoint", "KeypointBackend"),
    "interactvlm": ("ivlm_core.backends.interactvlm", "InteractVLMBackend"),
}


def _backend_class(name: str) -> type[ContactBackend]:
    if name not in BACKENDS:
        raise ValueError(f"unknown contact backend '{name}'; choose one of: {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name]
    try:
        return getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"contact backend '{name}' cannot be loaded ({module}.{cls}): {exc}") from exc


def backend_options(name: str) -> set[str]:
    """Keyword options the constructor of backend `name` accepts."""
    params = inspect.signature(_backend_class(name).__init__).parameters.values()
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return {p.name for p in params if p.name != "self" and p.kind in kinds}


def create_backend(name: str, **options: Any) -> ContactBackend:
    """The contact backend called `name`, constructed (models loaded) with `options`.

    Unknown names or options raise ValueError listing what is accepted.
    """
    unknown = set(options) - backend_options(name)
    if unknown:
        raise ValueError(
            f"backend '{name}' does not accept option(s) {sorted(unknown)}; it accepts "
            f"{sorted(backend_options(name))}"
        )
    return _backend_class(name)(**options)
