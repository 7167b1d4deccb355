"""deepdx: diagnose why a neural net does not work."""

from __future__ import annotations

__version__ = "0.1.0"
