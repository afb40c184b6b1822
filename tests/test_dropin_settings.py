"""wandb's setting names are accepted; BRANCHLINE_* variables win over a WANDB_BASE_URL left for W&B."""

from __future__ import annotations

import http.server
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import branchline
import branchline.settings
from branchline.compat_names import WANDB_SETTINGS
from tests.backends import SharedServer

QUIET = {"quiet": True, "x_disable_stats": True, "console": "off"}


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(branchline.settings, "_warned", set())


def test_every_wandb_setting_name_is_accepted_with_one_warning_each() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        settings = branchline.Settings(disable_git=True, start_method="thread", mode="offline")
        again = branchline.Settings(disable_git=False)
        resolved = branchline.Settings.resolve({}, {name: None for name in WANDB_SETTINGS})
    assert settings.extra["disable_git"] is True and settings.mode == "offline"
    assert settings.disable_git is True and settings.x_label is None  # read like wandb's fields
    assert again.extra["disable_git"] is False and resolved.mode == "online"
    messages = [str(w.message) for w in caught]
    assert sum("'disable_git'" in m for m in messages) == 1
    assert sum("'start_method'" in m for m in messages) == 1


def test_init_takes_wandb_settings_as_a_dict_or_settings_object() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = branchline.init(
            project="p", settings={**QUIET, "disable_git": True, "x_label": "node-0", "init_timeout": 120}
        )
        run.finish()
        run = branchline.init(project="p", settings=branchline.Settings(quiet=True, console="off", start_method="fork"))
        run.finish()
    assert {"'disable_git'", "'x_label'", "'init_timeout'", "'start_method'"} <= {
        m.split()[1] for m in (str(w.message) for w in caught) if "no effect" in m
    }


def test_a_name_neither_knows_is_an_error_with_a_suggestion() -> None:
    with pytest.raises(branchline.UsageError, match="Did you mean 'disable_git'"):
        branchline.init(project="p", settings={"disable_gti": True})
    with pytest.raises(branchline.UsageError, match="neither branchline nor wandb"):
        branchline.Settings(no_such_setting_at_all=1)


class _NotBranchline(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(404)
        self.end_headers()
        self.wfile.write(b"not here")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def foreign_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotBranchline)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_wandb_base_url_of_another_server_falls_back_to_the_embedded_store(
    monkeypatch: pytest.MonkeyPatch, foreign_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WANDB_BASE_URL", foreign_server)
    monkeypatch.setenv("WANDB_API_KEY", "local-" + "0" * 40)
    run = branchline.init(project="p", settings=QUIET)
    run.log({"x": 1})
    run.finish()
    err = capsys.readouterr().err
    assert f"WANDB_BASE_URL={foreign_server} is not a branchline server" in err and "BRANCHLINE_BASE_URL" in err
    with pytest.warns(UserWarning, match="reading the local store"):
        assert branchline.Api(overrides={"root_dir": "."}).run(run.path).summary["x"] == 1


def test_wandb_cloud_url_is_not_even_asked(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("WANDB_BASE_URL", "https://api.wandb.ai")
    run = branchline.init(project="p", settings=QUIET)
    run.finish()
    assert "is a W&B server" in capsys.readouterr().err


def test_asking_a_server_that_does_not_answer_is_bounded() -> None:
    import socket

    from branchline import server_probe

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    reason = server_probe.why_not_branchline(f"http://127.0.0.1:{port}")
    assert reason is not None and "could not be asked" in reason
    assert time.monotonic() - started < server_probe.PROBE_SECONDS + 2


@pytest.mark.parametrize("variable", ["BRANCHLINE_STORE", "BRANCHLINE_DIR"])
def test_branchline_variables_win_over_wandb_base_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WANDB_BASE_URL", "https://api.wandb.ai")
    root = tmp_path / "elsewhere"
    value = f"sqlite:///{root / 'branchline' / 'store.db'}" if variable == "BRANCHLINE_STORE" else str(root)
    monkeypatch.setenv(variable, value)
    root.mkdir()
    (root / "branchline").mkdir()
    resolved = branchline.Settings.resolve({}, None)
    assert resolved.base_url is None
    run = branchline.init(project="p", settings=QUIET)
    run.finish()
    assert "WANDB_BASE_URL" not in capsys.readouterr().err
    assert (root / "branchline" / "store.db").exists()


def test_branchline_base_url_is_used_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_BASE_URL", "https://api.wandb.ai")
    monkeypatch.setenv("BRANCHLINE_BASE_URL", "http://127.0.0.1:9")
    resolved = branchline.Settings.resolve({}, None)
    assert resolved.base_url == "http://127.0.0.1:9" and resolved.x_base_url_env is None


def test_wandb_base_url_of_a_branchline_server_is_used_as_today(
    monkeypatch: pytest.MonkeyPatch, shared_server: SharedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    shared_server.wipe()
    monkeypatch.setenv("WANDB_BASE_URL", shared_server.process.base_url)
    monkeypatch.setenv("WANDB_API_KEY", shared_server.api_key)
    run = branchline.init(project="p", settings=QUIET)
    run.log({"x": 3})
    run.finish()
    assert run.url is not None and "WANDB_BASE_URL" not in capsys.readouterr().err
    stored = shared_server.store.require_run(run.entity, "p", run.id)
    assert stored.summary["x"] == 3


def test_a_url_chosen_for_branchline_is_not_second_guessed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_BASE_URL", "https://api.wandb.ai")
    given = branchline.Settings.resolve({}, {"base_url": "http://127.0.0.1:9"})
    assert given.base_url == "http://127.0.0.1:9" and given.x_base_url_env is None
    branchline.settings.save_settings_file({"base_url": "http://127.0.0.1:8"})  # `branchline login`
    assert branchline.Settings.resolve({}, None).base_url == "http://127.0.0.1:8"
