"""Shipped configs named without a path, what a missing config's message lists, and where a
relative demo corpus goes when the current directory is not the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from nal_tui.core.defaults import config_for_run, default_config
from nal_tui.preflight.checks_data import check_config
from tests.conftest import ROOT
from trainer import cli
from trainer.config import locate
from trainer.config.locate import ConfigNotFound, place_demo_corpus, presets, resolve_config
from trainer.config.yamlfile import load

SHIPPED = ["demo", "hifigan_48k", "hifigan_v1", "hifigan_v2", "hifigan_v3"]


def test_presets_are_package_data_and_config_dir_is_the_same_files() -> None:
    found = presets()
    assert list(found) == SHIPPED
    for name, path in found.items():
        assert path.parent == ROOT / "trainer" / "config" / "presets"
        # One copy of each file: config/NAME.yaml in a clone is the package's file.
        assert (ROOT / "config" / f"{name}.yaml").resolve() == path.resolve()


def test_a_preset_is_named_without_a_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert load("hifigan_v1").name == "hifigan_v1"
    assert load("hifigan_48k.yaml").audio.sample_rate == 48000
    assert resolve_config("demo") == presets()["demo"]
    # A file of that name in the current directory wins: a path still means that path.
    (tmp_path / "demo").write_text("name: mine\n")
    assert resolve_config("demo") == Path("demo")
    assert load("demo").name == "mine"


def test_missing_config_lists_presets_and_nearby_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    with pytest.raises(ConfigNotFound) as e:
        load("config/demo.yml")
    msg = str(e.value)
    assert msg.startswith("config/demo.yml: config file not found")
    assert "did you mean config/demo.yaml" in msg
    assert "shipped presets, named without a path: " + ", ".join(SHIPPED) in msg
    with pytest.raises(ConfigNotFound, match=r"did you mean hifigan_v3\?"):
        load("hifigan_v9")


def test_did_you_mean_offers_only_close_matches(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(ROOT)
    with pytest.raises(ConfigNotFound) as e:
        load("config/dmeo.yaml")
    hint = str(e.value).split(";")[0]
    assert hint == "config/dmeo.yaml: config file not found (did you mean config/demo.yaml?)"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    for name in ("demo.yaml", "hifigan_v3.yaml", "tiny.yaml", "mine.yaml"):
        (tmp_path / "config" / name).write_text("name: x\n")
    msg = locate.missing_config_message("config/dmeo.yaml")
    assert "(did you mean config/demo.yaml?)" in msg
    far = locate.missing_config_message("config/zzzz.yaml").split(";")[0]
    assert "did you mean" not in far
    assert locate.close_names("hifigan_v9", ["hifigan_v3", "hifigan_48k", "demo"]) == ["hifigan_v3"]


def test_preflight_advice_for_a_missing_config_is_not_edit_the_key(tmp_path: Path) -> None:
    result, cfg = check_config(tmp_path / "config" / "demo.yaml")
    assert cfg is None and result.status == "fail"
    assert "edit the key" not in result.fix and "nal-train configs" in result.fix
    assert "did you mean demo?" in result.message


def test_nal_tui_default_config_outside_a_clone_is_the_shipped_demo(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(ROOT)
    assert default_config() == Path("config/demo.yaml")
    monkeypatch.chdir(tmp_path)
    assert default_config() == presets()["demo"]
    assert config_for_run(None, Path("hifigan_v2")) == presets()["hifigan_v2"]
    assert load(default_config()).name == "demo"


def test_demo_corpus_outside_the_repository(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(locate.DATA_DIR_ENV, raising=False)
    monkeypatch.chdir(ROOT)
    assert place_demo_corpus("data/demo_corpus") == "data/demo_corpus"  # as today
    sub = tmp_path / "sub"
    sub.mkdir()
    monkeypatch.chdir(sub)  # elsewhere, with a clone: the clone's corpus
    assert place_demo_corpus("data/demo_corpus") == str(ROOT / "data" / "demo_corpus")
    assert load("demo").data.corpus_dir == str(ROOT / "data" / "demo_corpus")
    (sub / "data" / "demo_corpus").mkdir(parents=True)  # a local one is used as given
    assert place_demo_corpus("data/demo_corpus") == "data/demo_corpus"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(locate, "checkout_root", lambda: None)  # an installed wheel
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert place_demo_corpus("data/demo_corpus") == str(tmp_path / "xdg/naudiolab/demo_corpus")
    monkeypatch.setenv(locate.DATA_DIR_ENV, str(tmp_path / "mine"))
    assert place_demo_corpus("data/demo_corpus") == str(tmp_path / "mine" / "demo_corpus")
    assert place_demo_corpus("/abs/corpus") == "/abs/corpus"


def test_nal_train_configs_lists_and_shows(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["configs"]) == 0
    out = capsys.readouterr().out
    for name in SHIPPED:
        assert f"\n{name} " in f"\n{out}"
    assert cli.main(["configs", "--show", "hifigan_v1"]) == 0
    assert capsys.readouterr().out == presets()["hifigan_v1"].read_text()
    assert cli.main(["configs", "--show", "hifigan_v7"]) == 2
    assert "did you mean hifigan_v" in capsys.readouterr().err


def test_the_demo_validates_with_what_the_first_set_up_command_installs() -> None:
    """The README's first command installs [train]: the demo asks for no metric whose
    package only [quality] brings (no metric_unavailable warning at every start)."""
    import tomllib  # Python 3.11+, as the test machines run

    from trainer.train import metrics as M  # torch: the metrics module names its packages

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    train = " ".join(extras["train"])
    cfg = load("demo")
    for metric in cfg.log.val_metrics:
        package = M._OPTIONAL.get(metric)
        assert package is None or package in train, f"demo asks for {metric} ({package})"
    assert set(cfg.log.composite.terms()) <= set(cfg.log.val_metrics)  # composite computes
