"""The full load test on real files: checkpoints whose hash is fine but whose content is not
usable (code in the pickle, another model config, unknown format, missing keys)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.ckpt_factory import RunsCode, demo_cfg, other_model_cfg, train_state
from trainer.checkpointing.lineage import model_config
from trainer.checkpointing.loadtest import LoadTest
from trainer.checkpointing.store import save_checkpoint
from trainer.config.build import to_dict
from trainer.config.schema import Config
from trainer.rundir.checkpoints import verify_checkpoint
from trainer.rundir.layout import NoValidCheckpoint, checkpoint_paths
from trainer.rundir.resolve import find_resume_checkpoint

CFG = demo_cfg()
OTHER = other_model_cfg()


def save(run_dir: Path, step: int, state: dict, cfg: Config | None = CFG):
    mc = model_config(to_dict(cfg)) if cfg is not None else None
    return save_checkpoint(run_dir, step, 0, state, model_config=mc)


def test_a_real_training_state_passes_and_is_kept(tmp_path: Path) -> None:
    info = save(tmp_path, 4, train_state(CFG, 4))
    test = LoadTest(CFG)
    assert test(info) == (True, "ok")
    assert test.passed is not None and test.passed[0] == info
    assert test.passed[1]["step"] == 4


def test_code_in_the_pickle_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    state = train_state(CFG, 4)
    state["opt_g"] = RunsCode(marker)
    info = save(tmp_path, 4, state)
    assert verify_checkpoint(info) == (True, "ok")  # the hash is fine
    ok, reason = LoadTest(CFG)(info)
    assert not ok and not marker.exists()
    assert "pickled Python objects or code" in reason and "posix.mkdir" in reason
    assert "weights_only=False" not in reason and "\n" not in reason


def test_another_model_config_names_the_keys(tmp_path: Path) -> None:
    info = save(tmp_path, 4, train_state(OTHER, 4), cfg=OTHER)
    ok, reason = LoadTest(CFG)(info)
    assert not ok
    assert reason == (
        "saved with a different model configuration: generator.upsample_initial_channel: "
        "32 in the checkpoint, 64 now"
    )


def test_another_model_config_found_in_the_state_without_a_manifest_copy(tmp_path: Path) -> None:
    info = save(tmp_path, 4, train_state(OTHER, 4), cfg=None)
    ok, reason = LoadTest(CFG)(info)
    assert not ok and "generator.upsample_initial_channel: 32 in the checkpoint, 64" in reason


def test_shape_mismatch_without_any_config_names_a_tensor(tmp_path: Path) -> None:
    state = train_state(OTHER, 4)
    del state["config"]  # a checkpoint from before configs were stored
    info = save(tmp_path, 4, state, cfg=None)
    ok, reason = LoadTest(CFG)(info)
    assert not ok and reason.startswith("its generator does not fit this config's model")
    assert "in the checkpoint" in reason and "for this config" in reason


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"format": 2}, "it has format 2; this nal-train reads format 1 (saved by a newer"),
        ({"format": "x"}, 'its format is "x"'),
        ({"format": None}, "no 'format' field"),
        ({"opt_d": None, "rng": None}, "it lacks the key(s) opt_d, rng"),
        ({"step": 7}, "holds step 7 but is named step 4"),
    ],
)
def test_format_keys_and_step(tmp_path: Path, change: dict, needle: str) -> None:
    state = train_state(CFG, 4)
    for k, v in change.items():
        if v is None:
            state.pop(k)
        else:
            state[k] = v
    info = save(tmp_path, 4, state)
    ok, reason = LoadTest(CFG)(info)
    assert not ok and needle in reason


def test_not_a_dict_and_not_torch(tmp_path: Path) -> None:
    info = save(tmp_path, 4, [1, 2, 3])
    assert LoadTest(CFG)(info) == (False, "it holds a list, not a training state dict")
    pt, mp = checkpoint_paths(tmp_path, 6)
    info = save(tmp_path, 6, {"x": 1})
    data = b"not a zip at all" * 10
    pt.write_bytes(data)
    # Rewrite the manifest to match, as a hostile or foreign file would.
    d = json.loads(mp.read_text())
    d["files"][0].update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    mp.write_text(json.dumps(d))
    ok, reason = LoadTest(CFG)(info)
    assert not ok and reason.startswith("not a readable torch checkpoint")


def test_latest_falls_back_to_the_newest_usable(tmp_path: Path) -> None:
    save(tmp_path, 2, train_state(CFG, 2))
    save(tmp_path, 4, train_state(OTHER, 4), cfg=OTHER)
    bad = train_state(CFG, 6)
    bad["format"] = 9
    save(tmp_path, 6, bad)
    test = LoadTest(CFG)
    info, skipped = find_resume_checkpoint(tmp_path, "latest", test)
    assert info.step == 2 and test.passed[0] == info
    assert [(s.step, r.split(":")[0]) for s, r in skipped] == [
        (6, "it has format 9; this nal-train reads format 1 (saved by a newer nal-train?)"),
        (4, "saved with a different model configuration"),
    ]
    with pytest.raises(NoValidCheckpoint, match=r"cannot resume from .*ckpt_00000004\.pt: saved"):
        find_resume_checkpoint(tmp_path, checkpoint_paths(tmp_path, 4)[0], LoadTest(CFG))


def test_without_a_config_shapes_are_not_checked(tmp_path: Path) -> None:
    info = save(tmp_path, 4, train_state(OTHER, 4), cfg=OTHER)
    assert LoadTest(None)(info) == (True, "ok")
