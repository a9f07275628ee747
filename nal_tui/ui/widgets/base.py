"""A Static that skips redundant updates (each update costs a repaint, maybe a layout)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from nal_tui.ui.widgets.fit import FitLines


class TextPanel(Static):
    """Holds a rich Text (or ``FitLines``); ``set_text`` does nothing when it is unchanged.

    Every panel's height is set in CSS, never by its content: a layout that depended on
    content arriving from threads came out differently from run to run. So updates
    repaint without a layout pass.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._text: Text | FitLines | None = None

    def set_text(self, text: Text | FitLines) -> None:
        if text == self._text:
            return
        self._text = text
        self.update(text, layout=False)

    @property
    def text(self) -> Text | FitLines | None:
        """What the panel shows now."""
        return self._text

    @property
    def plain(self) -> str:
        """The panel's text without styles (every part, before fitting)."""
        t = self._text
        return "" if t is None else t.plain
