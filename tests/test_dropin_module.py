"""Module functions and attributes wandb scripts call besides init/log/finish."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import branchline
import branchline.settings

QUIET = {"quiet": True, "x_disable_stats": True, "console": "off"}


def test_login_stores_host_and_key_and_api_lookups_read_them(tmp_path: Path) -> None:
    assert branchline.login() is True  # nothing to log in to for the embedded store
    assert branchline.login(key="local-abc", host="127.0.0.1:8080", relogin=True) is True
    stored = json.loads((tmp_path / ".config" / "settings.json").read_text())
    assert stored == {"base_url": "http://127.0.0.1:8080", "api_key": "local-abc"}
    assert branchline.api.api_key == "local-abc" and branchline.api.api_url == "http://127.0.0.1:8080"
    assert isinstance(branchline.api.default_entity, str)


def test_setup_checks_settings_and_teardown_finishes_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(branchline.settings, "_warned", set())
    with pytest.raises(branchline.UsageError, match="Did you mean"):
        branchline.setup(settings={"x_disable_stat": True})
    branchline.setup(settings={"start_method": "thread"})
    run = branchline.init(project="p", settings=QUIET)
    branchline.teardown()
    assert branchline.run is None and run._finished


def test_term_functions_print_with_the_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    branchline.termlog("hello")
    branchline.termwarn("careful")
    branchline.termerror("broken")
    err = capsys.readouterr().err.splitlines()
    assert err == ["branchline: hello", "branchline: WARNING careful", "branchline: ERROR broken"]
    branchline.termsetup({"silent": True})
    branchline.termlog("hidden")
    branchline.termsetup({})
    assert capsys.readouterr().err == ""


def test_anonymous_label_and_link_artifact(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(branchline.settings, "_warned", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = branchline.init(project="p", anonymous="allow", settings=QUIET)
        run._label(repo="transformers", code="hf")
        (tmp_path / "model.bin").write_bytes(b"m")
        artifact = branchline.Artifact("model", type="model")
        artifact.add_file(str(tmp_path / "model.bin"))
        linked = run.link_artifact(artifact, "wandb-registry-model/best", aliases=["prod"])
        run.finish()
    assert linked is not None and not linked.is_draft()
    names = " ".join(str(w.message) for w in caught)
    assert "'anonymous'" in names and "'link_artifact'" in names
    assert [
        a.name.split(":")[0] for a in branchline.Api(overrides={"root_dir": "."}).run(run.path).logged_artifacts()
    ] == ["model"]


def test_join_is_finish_and_importing_the_package_loads_no_sdk() -> None:
    assert branchline.join is branchline.finish
    code = "import sys, branchline; assert not [m for m in sys.modules if m.startswith('branchline.sdk')]"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert hasattr(branchline.tensorboard, "patch")


def test_the_compatibility_table_names_every_wandb_top_level_name_and_init_argument() -> None:
    from branchline.compat_names import WANDB_INIT_ARGS, WANDB_TOP_LEVEL

    text = (Path(__file__).resolve().parent.parent / "docs" / "sdk.md").read_text()
    table = text[text.index("## Compatibility with wandb") :]
    missing = [name for name in (*WANDB_TOP_LEVEL, *WANDB_INIT_ARGS) if f"`{name}`" not in table]
    assert missing == []
