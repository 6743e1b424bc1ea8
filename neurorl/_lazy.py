"""Modules imported on first use, so that a fresh process pays only for what it runs.

``scipy.special`` costs about 0.3 s to import; a ``neurorl fit`` that never calls it (MAP runs the compiled JAX
likelihood) should not pay it.
"""

from __future__ import annotations

import importlib

__all__ = ["scipy_special"]


class _Lazy:
    """A module's attributes, the module imported at the first attribute read."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


scipy_special = _Lazy("scipy.special")
