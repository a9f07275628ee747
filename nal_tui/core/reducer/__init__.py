"""The reducer: validated event records in, run state out (``RunState`` and its parts)."""

from nal_tui.core.reducer.state import RunState

__all__ = ["RunState"]
