"""GPU panel: one line per NVIDIA GPU (utilisation, memory, temperature, power, our ranks on
it), or the one line that says why there is none (a GpuView from core.gpu)."""

from __future__ import annotations

from nal_tui.core.reducer.views import GpuRow, GpuView
from nal_tui.ui.widgets.base import TextPanel
from nal_tui.ui.widgets.fit import FitLines, Part
from nal_tui.ui.widgets.fmt import fmt_bytes, pct_style

MAX_LINES = 8  # GPUs beyond it are counted on the last line


def _mem(used: int, total: int) -> str:
    return f"{fmt_bytes(used)}/{fmt_bytes(total)}".replace(" GiB", "G").replace(" MiB", "M")


def ranks_text(ranks: tuple[int, ...]) -> str:
    return ("rank " if len(ranks) == 1 else "ranks ") + ",".join(map(str, ranks))


def gpu_parts(g: GpuRow) -> list[Part]:
    """``GPU0  87%  12.0G/80.0G  64°C  251/700W  rank 0  NVIDIA H100``: the least needed
    parts go first when the panel is narrow."""
    parts = [Part(f"GPU{g.index} ", "bold")]
    if g.util_pct is not None:
        parts.append(Part(f"{g.util_pct:3d}% ", pct_style(g.util_pct)))
    mem_pct = 100 * g.mem_used / g.mem_total if g.mem_total else 0.0
    parts.append(Part(f"{_mem(g.mem_used, g.mem_total)} ", pct_style(mem_pct)))
    if g.temp_c is not None:
        parts.append(Part(f"{g.temp_c}°C ", "red" if g.temp_c >= 85 else "", drop=3))
    if g.power_w is not None:
        lim = f"/{g.power_limit_w:.0f}" if g.power_limit_w else ""
        parts.append(Part(f"{g.power_w:.0f}{lim}W ", drop=4))
    if g.ranks:
        parts.append(Part(ranks_text(g.ranks) + " ", "bold cyan", drop=1))
    if g.other_procs:
        parts.append(Part(f"+{g.other_procs} other ", "dim", drop=2))
    parts.append(Part(g.name, "dim", drop=5))
    return parts


def gpu_lines(v: GpuView) -> FitLines:
    if not v.rows:
        return FitLines.of([[Part(v.note, "dim")]])
    rows = v.rows if len(v.rows) <= MAX_LINES else v.rows[: MAX_LINES - 1]
    lines = [gpu_parts(g) for g in rows]
    if len(rows) < len(v.rows):
        rest = v.rows[len(rows) :]
        ranks = tuple(r for g in rest for r in g.ranks)
        tail = [Part(f"… {len(rest)} more GPUs", "dim")]
        if ranks:
            tail.append(Part(f"  {ranks_text(ranks)}", "cyan", drop=1))
        lines.append(tail)
    return FitLines.of(lines)


def gpu_summary(v: GpuView) -> list[Part]:
    """The GPUs in a few words for the facts line of a small terminal:
    ``GPU 87% 12.0G/80.0G`` (with several, the mean utilisation and summed memory)."""
    if not v.rows:
        return [Part("no GPU  ", "dim", drop=4)]
    n = len(v.rows)
    utils = [g.util_pct for g in v.rows if g.util_pct is not None]
    used, total = sum(g.mem_used for g in v.rows), sum(g.mem_total for g in v.rows)
    head = "GPU" if n == 1 else f"{n} GPU"
    util = f" {sum(utils) / len(utils):.0f}%" if utils else ""
    return [Part(f"{head}{util} {_mem(used, total)}  ", pct_style(max(utils, default=0)), drop=1)]


class GpuPanel(TextPanel):
    """Shown once the sampler has reported (it always does: GPUs, or why there are none);
    its height follows the number of GPUs, which is fixed for a machine."""

    def show(self, v: GpuView | None) -> None:
        self.set_class(v is not None, "sampled")
        if v is None:
            return
        lines = gpu_lines(v)
        height = len(lines.lines) + 2  # the border
        if self.styles.height is None or self.styles.height.value != height:
            self.styles.height = height
        self.set_text(lines)
