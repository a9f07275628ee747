"""A Static that skips redundant updates (each update costs a repaint, maybe a layout)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class TextPanel(Static):
    """Holds a rich Text; ``set_text`` does nothing when the text is unchanged.

    ``FIXED`` panels have a height set in CSS, so their updates skip the layout pass.
    """

    FIXED = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._text: Text | None = None

    def set_text(self, text: Text) -> None:
        if text == self._text:
            return
        self._text = text
        self.update(text, layout=not self.FIXED)

    @property
    def text(self) -> Text | None:
        """What the panel shows now."""
        return self._text
