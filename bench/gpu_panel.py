"""The GPU panel on a live run, as text: the step of ``bench/gpu_check.sh`` that shows what the
dashboard shows of the GPUs while our trainer runs on them.

Starts the demo trainer on ``--device`` with ``RunSession.start`` (what ``nal-tui start``
does), waits for its first step (a CUDA context exists by then), then prints (1) the
system sampler's GPU sample as JSON (NVML through the ``[gpu]`` extra; the ranks matched
by pid), (2) the GPU panel and the facts line as text, and (3) the whole dashboard,
headless (Textual's ``run_test``), at 160x45 and 80x24. Stops the trainer (SIGTERM, as
``x`` does) at the end. On a machine without a GPU or without ``nvidia-ml-py`` the panel
is its one line; ``--device cpu`` is the dry run.

    python bench/gpu_panel.py --device cuda
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from rich.console import Console  # noqa: E402

from nal_tui.core.control.session import RunSession  # noqa: E402
from nal_tui.core.services import SystemSampler  # noqa: E402
from nal_tui.ui.app import NalTuiApp  # noqa: E402
from nal_tui.ui.run.gpu import gpu_lines, gpu_summary  # noqa: E402
from tests.app.apphelp import svg_text  # noqa: E402
from trainer.events import schema as ev  # noqa: E402

SIZES = ((160, 45), (80, 24))


def write_config(work: Path, device: str) -> Path:
    """The demo preset on ``device``, its corpus in ``work``, no validation or checkpoint
    in the few seconds the panel is looked at."""
    cfg = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    cfg["name"] = "gpu-panel"
    cfg["train"] = {**cfg["train"], "device": device, "max_steps": 1_000_000}
    cfg["data"] = {**cfg["data"], "corpus_dir": str(work / "corpus")}
    cfg["log"] = {**cfg["log"], "val_every": 1_000_000}
    cfg["checkpoint"] = {**cfg["checkpoint"], "every": 1_000_000, "milestone_every": 0}
    path = work / "gpu_panel.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def first_step(run_dir: Path, timeout: float) -> bool:
    log = run_dir / ev.EVENTS_FILE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and b'"event":"step"' in log.read_bytes().replace(b" ", b""):
            return True
        time.sleep(0.5)
    return False


def text_of(renderable, width: int) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text().rstrip()


async def dashboard_text(session: RunSession, size: tuple[int, int], timeout: float) -> str:
    """The dashboard on the live run once the sampler has reported its GPUs."""
    app = NalTuiApp(session, config_path=ROOT / "config" / "demo.yaml", build_models=False)
    async with app.run_test(size=size) as pilot:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = app.feeds.system
            if not app.feeds.loading and s is not None and s.gpu is not None:
                break
            await pilot.pause(0.2)
        await pilot.pause(1.5)  # one more sample: utilisation over a busy second
        return svg_text(app.export_screenshot())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--timeout", type=float, default=240, help="seconds to the first step")
    p.add_argument("--keep", action="store_true", help="keep the work directory (run, corpus)")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="nal-gpu-panel-"))
    logs = work / "logs"
    run_dir = logs / "gpu-panel"
    session = RunSession(run_dir, logs_dir=logs)
    res = session.start(write_config(work, args.device))
    print(f"trainer: {res.message}", flush=True)
    if not res.ok:
        return 1
    ok = True
    try:
        if not first_step(run_dir, args.timeout):
            print(f"gpu_panel: no step within {args.timeout:.0f} s", file=sys.stderr)
            ok = False
        sampler = SystemSampler(run_dir, run_dir, lambda v, s: None)
        sampler.sample()
        time.sleep(1.0)  # utilisation is over the last sample period
        view, st = sampler.sample()
        sampler.gpu.close()
        print(f"trainer pid {st.pid} ({st.state})")
        print("gpu sample: " + json.dumps(dataclasses.asdict(view.gpu)))
        print("-- GPU panel (wide layout)")
        print(text_of(gpu_lines(view.gpu), 60))
        print(
            "-- facts line part (small layouts): " + "".join(x.text for x in gpu_summary(view.gpu))
        )
        for size in SIZES:
            print(f"-- dashboard at {size[0]}x{size[1]}")
            print(asyncio.run(dashboard_text(session, size, args.timeout)))
    finally:
        stop = session.stop(grace_s=60, kill_after_s=30)
        print(f"trainer stop: {stop.message}")
        if stop.ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
