"""Preflight results: one CheckResult per check, a PreflightReport of them all."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"
SYMBOLS = {PASS: "✓", FAIL: "✗", WARN: "!", SKIP: "-"}
ASCII_SYMBOLS = {PASS: "OK", FAIL: "FAIL", WARN: "WARN", SKIP: "SKIP"}

# Installed versions the project supports: (minimum, exclusive maximum or None).
SUPPORTED = {
    "torch": ((2, 13), (2, 14)),
    "numpy": ((1, 24), None),
    "soundfile": ((0, 12), None),
    "soxr": ((0, 3), None),
    "textual": ((8,), (9,)),
    "watchdog": ((4,), None),
    "psutil": ((5, 9), None),
    "PyYAML": ((6,), None),
    "orjson": ((3, 9), None),
}
TRAIN_PACKAGES = ("torch", "numpy", "soundfile", "soxr")

# Sizes used by the estimates (see estimate_memory / estimate_disk).
BYTES_STATE_PER_PARAM = 16  # fp32 weight + grad + Adam m + Adam v
BYTES_CKPT_PER_PARAM = 12  # fp32 weight + Adam m + Adam v (grads are not saved)
FRAMEWORK_OVERHEAD = 512 << 20  # interpreter, torch runtime, allocator slack
SAMPLE_SECONDS = 10.0  # a validation sample's length, at most (LJSpeech clips are <= 10 s)
EVENT_LINE_BYTES = 400
TRAINER_TIMEOUT_S = 60.0
SUMMARY_TIMEOUT_S = 300.0
VERIFY_TIMEOUT_S = 300.0  # nal-train verify: imports torch, hashes and loads a checkpoint


@dataclass
class CheckResult:
    """One check: its name, status (pass/fail/warn/skip), the reason and how to fix it."""

    name: str
    status: str
    message: str
    fix: str = ""
    details: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PreflightReport:
    config_path: str
    run_dir: str | None
    checks: list[CheckResult]
    duration_s: float = 0.0

    def count(self, status: str) -> int:
        return sum(c.status == status for c in self.checks)

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings and skipped checks do not fail)."""
        return self.count(FAIL) == 0

    @property
    def passed(self) -> int:
        return self.count(PASS) + self.count(WARN)

    @property
    def total(self) -> int:
        return len(self.checks) - self.count(SKIP)

    def summary(self) -> str:
        extra = []
        if self.count(WARN):
            extra.append(f"{self.count(WARN)} warning{'s' * (self.count(WARN) > 1)}")
        if self.count(SKIP):
            extra.append(f"{self.count(SKIP)} skipped")
        tail = f" ({', '.join(extra)})" if extra else ""
        return f"{self.passed}/{self.total} checks passed{tail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "passed": self.passed,
            "total": self.total,
            "failed": self.count(FAIL),
            "warnings": self.count(WARN),
            "skipped": self.count(SKIP),
            "summary": self.summary(),
            "config": self.config_path,
            "run_dir": self.run_dir,
            "duration_s": round(self.duration_s, 3),
            "checks": [c.to_dict() for c in self.checks],
        }

    def lines(self, ascii_only: bool = False) -> list[str]:
        """Human-readable report: one line per check, then details, fixes, summary."""
        sym = ASCII_SYMBOLS if ascii_only else SYMBOLS
        out = []
        for c in self.checks:
            out.append(f"{sym[c.status]} {c.name}: {c.message}")
            out += [f"    {d}" for d in c.details]
            if c.fix and c.status in (FAIL, WARN):
                out.append(f"    fix: {c.fix}")
        out.append(self.summary())
        return out
