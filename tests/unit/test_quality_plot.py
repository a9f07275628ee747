"""The validation chart's rows (nal_tui.ui.quality.plot): a point, its best-checkpoint star
and the cursor land in the same column."""

from __future__ import annotations

import pytest

from nal_tui.ui.quality.plot import CURSOR_STYLE, Line, marker_row, plot_rows


def _dot_columns(rows) -> set[int]:
    return {c for r in rows for c, ch in enumerate(r.plain) if ch != " "}


def _cursor_columns(rows) -> set[int]:
    cols = set()
    for r in rows:
        for span in r.spans:
            if CURSOR_STYLE in str(span.style):
                cols.update(range(span.start, span.end))
    return cols


@pytest.mark.parametrize(
    "steps", [[50], [50, 100], [50, 100, 150], [20, 40, 60, 80, 100, 120, 140]]
)
@pytest.mark.parametrize("width", [7, 40, 71])
def test_each_point_its_star_and_the_cursor_share_a_column(steps, width) -> None:
    x0, x1 = min(steps), max(steps)
    values = [2.0 - 0.1 * i for i in range(len(steps))]
    for s in steps:
        # One point at a time: the column holding its dot is the one marked and highlighted.
        rows = plot_rows([Line([s], [1.0], "cyan")], width, 6, x0, x1, cursor=s)
        star = {i for i, ch in enumerate(marker_row([s], x0, x1, width).plain) if ch == "★"}
        assert _dot_columns(rows) == star == _cursor_columns(rows), (s, width)
    full = plot_rows([Line(steps, values, "cyan")], width, 6, x0, x1)
    stars = {i for i, ch in enumerate(marker_row(steps, x0, x1, width).plain) if ch == "★"}
    assert stars <= _dot_columns(full)
