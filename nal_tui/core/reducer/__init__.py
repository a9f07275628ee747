"""The reducer: validated event records in, run state out (``RunState`` and its parts)."""

from .state import RunState

__all__ = ["RunState"]
