"""`branchline runs …`: list, show, delete, move, export, and help text on every command."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import click
import pandas as pd
import pytest
from click.testing import CliRunner, Result

from branchline.cli.main import cli
from branchline.cli.runs import runs
from branchline.store.store import Store, open_store
from tests.store_factory import add_run


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'branchline' / 'store.db'}")
    add_run(
        s,
        entity="me",
        project="p",
        run_id="aaa",
        name="first",
        tags=["x"],
        config={"lr": 0.1},
        summary={"loss": 0.5},
        created_at=1000.0,
        history=[(i, {"loss": 1 / (i + 1), "note": f"n{i}"}) for i in range(5)],
    )
    add_run(
        s,
        entity="me",
        project="p",
        run_id="bbb",
        name="second",
        config={"lr": 0.01},
        summary={"loss": 0.2},
        state="running",
        created_at=2000.0,
    )
    add_run(
        s,
        entity="me",
        project="p",
        run_id="ccc",
        fork_from="aaa",
        branch_step=2,
        created_at=3000.0,
        history=[(3, {"loss": 9.0})],
    )
    yield s
    s.close()


def invoke(tmp_path: Path, *args: str, input: str | None = None) -> Result:
    runner = CliRunner()
    return runner.invoke(
        cli,
        ["runs", *args],
        input=input,
        env={"BRANCHLINE_DIR": str(tmp_path), "BRANCHLINE_ENTITY": "me", "COLUMNS": "200"},
        catch_exceptions=False,
    )


# -- help -------------------------------------------------------------------------------------------------


def test_every_runs_command_and_option_has_help() -> None:
    assert runs.help and runs.name in cli.commands
    assert set(runs.commands) == {"list", "show", "delete", "move", "export"}
    for name, command in runs.commands.items():
        assert command.help and len(command.help.strip()) > 20, name
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {param.name} has no help"
        result = CliRunner().invoke(cli, ["runs", name, "--help"])
        assert result.exit_code == 0
        assert command.help.splitlines()[0] in result.output


# -- list ------------------------------------------------------------------------------------------------


def test_list_shows_a_table_newest_first(tmp_path: Path, store: Store) -> None:
    result = invoke(tmp_path, "list", "p")
    assert result.exit_code == 0, result.output
    assert "me/p: 3 of 3 runs" in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("│")]
    assert [line.split("│")[1].strip() for line in lines] == ["ccc", "bbb", "aaa"]
    assert "first" in result.output and "running" in result.output


def test_list_filter_sort_and_limit(tmp_path: Path, store: Store) -> None:
    result = invoke(
        tmp_path, "list", "me/p", "--filter", '{"config.lr": {"$lt": 0.05}}', "--sort", "+summary_metrics.loss"
    )
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("│")]
    assert len(rows) == 1 and "bbb" in rows[0] and "0.2" in rows[0]
    assert "summary_metrics.loss" in result.output
    result = invoke(tmp_path, "list", "p", "--sort", "+created_at", "--limit", "2", "--json")
    data = json.loads(result.output)
    assert [run["id"] for run in data] == ["aaa", "bbb"]
    assert data[0]["config"] == {"lr": 0.1} and data[0]["path"] == "me/p/aaa"


def test_list_reports_bad_input_clearly(tmp_path: Path, store: Store) -> None:
    result = invoke(tmp_path, "list", "p", "--filter", '{"colour": "red"}')
    assert result.exit_code == 1 and "Unknown filter field 'colour'" in result.output
    result = invoke(tmp_path, "list", "p", "--filter", "{not json")
    assert result.exit_code == 2 and "not valid JSON" in result.output
    result = invoke(tmp_path, "list", "p", "--sort", "-shoe_size")
    assert result.exit_code == 1 and "'shoe_size'" in result.output


def test_list_without_a_store_is_a_clear_error(tmp_path: Path) -> None:
    result = invoke(tmp_path / "nowhere", "list", "p")
    assert result.exit_code == 1 and "No branchline store" in result.output


# -- show ------------------------------------------------------------------------------------------------


def test_show(tmp_path: Path, store: Store) -> None:
    result = invoke(tmp_path, "show", "p/ccc")
    assert result.exit_code == 0, result.output
    assert "me/p/ccc" in result.output
    assert "forked from:    me/p/aaa at step 2 (fork)" in result.output
    assert '"lr": 0.1' in result.output
    result = invoke(tmp_path, "show", "aaa", "--project", "p", "--json")
    data = json.loads(result.output)
    assert data["forks"] == ["me/p/ccc"] and data["last_step"] == 4 and "note" in data["history_keys"]
    result = invoke(tmp_path, "show", "p/zzz")
    assert result.exit_code == 1 and "me/p/zzz not found" in result.output


# -- delete and move ---------------------------------------------------------------------------------------


def test_delete_asks_first(tmp_path: Path, store: Store) -> None:
    result = invoke(tmp_path, "delete", "p/aaa", "p/bbb", input="n\n")
    assert result.exit_code == 1 and "Nothing deleted" in result.output
    assert store.get_run("me", "p", "aaa") is not None
    result = invoke(tmp_path, "delete", "p/aaa", "p/bbb", input="y\n")
    assert result.exit_code == 0, result.output
    assert "Deleted me/p/aaa; 1 fork(s) keep their inherited history." in result.output
    assert store.get_run("me", "p", "aaa") is None and store.get_run("me", "p", "bbb") is None
    assert [v.run_id for v in store.list_runs("me", "p")] == ["ccc"]


def test_delete_yes_and_missing_runs(tmp_path: Path, store: Store) -> None:
    result = invoke(tmp_path, "delete", "p/zzz", "p/aaa", "--yes")
    assert result.exit_code == 1 and "me/p/zzz not found" in result.output
    assert store.get_run("me", "p", "aaa") is not None  # nothing deleted when any path is wrong
    result = invoke(tmp_path, "delete", "p/bbb", "-y")
    assert result.exit_code == 0 and store.get_run("me", "p", "bbb") is None


def test_move(tmp_path: Path, store: Store) -> None:
    result = invoke(tmp_path, "move", "p/aaa", "--to", "q")
    assert result.exit_code == 0, result.output
    assert "Moved me/p/aaa to me/q/aaa." in result.output
    assert store.get_run("me", "q", "aaa") is not None and store.get_run("me", "p", "aaa") is None
    result = invoke(tmp_path, "move", "q/aaa", "--to", "team/z")
    assert result.exit_code == 0 and store.get_run("team", "z", "aaa") is not None


# -- export -------------------------------------------------------------------------------------------------


def test_export_csv_to_stdout(tmp_path: Path, store: Store) -> None:
    result = invoke(tmp_path, "export", "p/aaa", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [r["_step"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert [float(r["loss"]) for r in rows] == [1 / (i + 1) for i in range(5)]
    assert rows[0]["note"] == "n0" and set(rows[0]) == {"_step", "_runtime", "_timestamp", "loss", "note"}


def test_export_jsonl_keys_to_a_file_follows_the_fork(tmp_path: Path, store: Store) -> None:
    out = tmp_path / "ccc.jsonl"
    result = invoke(tmp_path, "export", "p/ccc", "--format", "jsonl", "--keys", "loss", "-o", str(out))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == [
        {"_step": 0, "loss": 1.0},
        {"_step": 1, "loss": 0.5},
        {"_step": 2, "loss": 1 / 3},
        {"_step": 3, "loss": 9.0},
    ]


def test_export_parquet(tmp_path: Path, store: Store) -> None:
    out = tmp_path / "out.parquet"
    result = invoke(tmp_path, "export", "me/p/aaa", "--format", "parquet", "--output", str(out))
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    assert frame["_step"].tolist() == [0, 1, 2, 3, 4]
    assert frame["loss"].tolist() == [1 / (i + 1) for i in range(5)]
    assert frame["note"].tolist() == [f"n{i}" for i in range(5)]
    result = invoke(tmp_path, "export", "p/aaa", "--format", "xlsx")
    assert result.exit_code == 2
