"""Guarded imports of optional dependencies."""

from __future__ import annotations

import importlib
from types import ModuleType

from taskiq_kit.exceptions import MissingExtraError


def require(module: str, *, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or raise an ImportError that names the extra to install.

    Args:
        module: importable module name, e.g. ``"aio_pika"``.
        extra: the taskiq-kit extra that provides it, e.g. ``"rabbit"``.
        feature: what needs it, for the message.

    Returns:
        The imported module.

    Raises:
        MissingExtraError: when the module cannot be imported.

    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(feature=feature, package=module, extra=extra) from exc
