"""Import an optional dependency, or say which extra installs it."""

from __future__ import annotations

import importlib
from types import ModuleType

from deepdx.exceptions import DeepdxError

__all__ = ["require"]


def require(module: str, purpose: str, package: str | None = None) -> ModuleType:
    """Return ``module`` imported, or raise a DeepdxError that names the package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pip_name = package or module.split(".")[0]
        raise DeepdxError(
            f"{purpose} needs the optional package {pip_name!r}, which is not installed. "
            f"Install it with `pip install {pip_name}` or `pip install deepdx[data]`."
        ) from exc
