"""Artifacts and `wandb.Api()` reads through the unmodified wandb client, on SQLite and PostgreSQL.

Two client processes per store backend (each start costs seconds): one logs runs and artifact
versions, the other uses and downloads them and scripts `wandb.Api()` against the server. Every
read is checked against what was logged, and the store's side against branchline's own `Api`:
versions, digests, aliases, entries, lineage (logged by / used by) and the `run.update()` edits.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from branchline.api import Api
from tests.test_wandb_client import (
    OLD_WANDB_PYTHON,
    Server,
    _gql,
    any_server,
    pg_server,
    run_clients,
    server,
)

__all__ = ["any_server", "pg_server", "server"]  # fixtures the tests here take by name

pytestmark = pytest.mark.timeout(300)

LOG = """
import json, os, wandb
out = {}
os.makedirs("data", exist_ok=True)
open("data/a.txt", "w").write("alpha")
open("data/b.txt", "w").write("beta")
open("ref.txt", "w").write("by reference")
for i, (lr, tag) in enumerate([(0.1, "a"), (0.01, "b"), (0.001, "a")]):
    run = wandb.init(project="arts", id=f"r{i}", name=f"name-{i}", config={"lr": lr, "opt": {"m": 0.9}},
                     tags=[tag], notes=f"note {i}", group="g", job_type="train", reinit="finish_previous")
    for s in range(6):
        run.log({"loss": lr * (6 - s), "acc": s / 10, "label": f"s{s}"})
    open("f.txt", "w").write(f"file {i}")
    run.save("f.txt", policy="now")
    if i == 0:
        art = wandb.Artifact("ds", type="dataset", description="two files", metadata={"k": 1})
        art.add_dir("data")
        art.add_reference("file://" + os.path.abspath("ref.txt"))
        run.log_artifact(art, aliases=["best"])
        art.wait()
        out["v0"] = [art.id, art.version, art.digest]
        # The same content again: no new version; the alias moves to it.
        again = wandb.Artifact("ds", type="dataset")
        again.add_dir("data")
        again.add_reference("file://" + os.path.abspath("ref.txt"))
        run.log_artifact(again, aliases=["again"])
        again.wait()
        out["again"] = [again.id, again.version, again.digest]
    if i == 1:
        open("data/b.txt", "w").write("beta, changed")
        art = wandb.Artifact("ds", type="dataset")
        art.add_dir("data")
        run.log_artifact(art)
        art.wait()
        out["v1"] = [art.id, art.version, art.digest]
    run.finish()
print("RESULT=" + json.dumps(out))
"""

READ = """
import json, os, wandb
out = {}
run = wandb.init(project="arts", id="consumer")
art = run.use_artifact("ds:best")
path = art.download(root="best")
out["use"] = [art.version, sorted(art.aliases), sorted(os.listdir(path)), open(os.path.join(path, "a.txt")).read()]
latest = run.use_artifact("ds:latest")
lpath = latest.download(root="latest")
out["latest"] = [latest.version, open(os.path.join(lpath, "b.txt")).read()]
run.finish()

api = wandb.Api()
out["viewer"] = [api.viewer.username, api.default_entity]
out["projects"] = sorted(p.name for p in api.projects())
q = lambda **kw: [r.id for r in api.runs("arts", **kw)]
out["lt"] = q(filters={"config.lr": {"$lt": 0.05}}, order="-created_at")
out["or"] = q(filters={"$or": [{"tags": {"$in": ["b"]}}, {"display_name": {"$regex": "name-0"}}]},
              order="+summary_metrics.loss")
out["and"] = q(filters={"$and": [{"state": "finished"}, {"summary_metrics.acc": {"$gte": 0.5}},
                                 {"config.opt.m": 0.9}]}, order="+config.lr")
r = api.run("arts/r1")
out["run"] = [r.id, r.name, r.state, r.tags, r.notes, r.group, r.job_type, bool(r.created_at),
              dict(r.config), {k: v for k, v in r.summary.items() if not k.startswith("_")}]
out["history"] = r.history(pandas=False)
out["sampled"] = r.history(keys=["loss"], samples=3, pandas=False)
out["scan"] = list(r.scan_history())
out["files"] = sorted(f.name for f in r.files())
out["file"] = r.file("f.txt").download(root="dl", replace=True).read()
out["logged"] = [a.name for a in api.run("arts/r0").logged_artifacts()]
out["used"] = [a.name for a in api.run("arts/consumer").used_artifacts()]
found = api.artifact("arts/ds:v0")
out["artifact"] = [found.name, sorted(found.aliases), found.digest, [u.id for u in found.used_by()],
                   found.logged_by().id, found.metadata, found.description]
apath = found.download(root="api")
out["api_download"] = {n: open(os.path.join(apath, n)).read() for n in sorted(os.listdir(apath))}
out["versions"] = [[a.version, sorted(a.aliases)] for a in api.artifacts("dataset", "arts/ds")]
edit = api.artifact("arts/ds:v1")
edit.description = "edited"; edit.metadata = {"k2": 2}; edit.aliases.append("golden")
edit.save()
r.name = "renamed"; r.tags = ["x", "y"]; r.notes = "edited"; r.config["extra"] = 5; r.summary["best"] = 1
r.update()
again = api.run("arts/r1")
out["updated"] = [again.name, again.tags, again.notes, dict(again.config), again.summary["best"]]
print("RESULT=" + json.dumps(out))
"""


def _result(output: str) -> dict[str, Any]:
    line = next(line for line in output.splitlines() if line.startswith("RESULT="))
    found: dict[str, Any] = json.loads(line[len("RESULT=") :])
    return found


def _md5(text: str) -> str:
    return base64.b64encode(hashlib.md5(text.encode(), usedforsecurity=False).digest()).decode()


def test_artifacts_and_api_reads(any_server: Server) -> None:
    logged = _result(run_clients([LOG], any_server)[0].stdout)
    read = _result(run_clients([READ], any_server)[0].stdout)
    api = Api(overrides={"base_url": any_server.url}, api_key=any_server.key)

    # Versions and dedup: the same content twice is one version, changed content the next.
    assert logged["v0"][1] == "v0" and logged["v1"][1] == "v1"
    assert logged["again"][0] == logged["v0"][0] and logged["again"][2] == logged["v0"][2]
    versions = {a.version: a for a in api.artifacts("dataset", "alice/arts/ds")}
    assert sorted(versions) == ["v0", "v1"]
    v0, v1 = versions["v0"], versions["v1"]
    assert v0.digest == logged["v0"][2] and v1.digest == logged["v1"][2] != v0.digest
    assert set(v0.aliases) == {"best", "again"} and set(v1.aliases) == {"latest", "golden"}
    assert (v1.description, v1.metadata) == ("edited", {"k2": 2})  # artifact.save() after logging
    assert v0.metadata == {"k": 1} and v0.description == "two files"
    # Entries: blobs by sha256 (with the client's MD5 kept), the reference as a reference.
    entries = {e.path: e for e in v0.manifest}
    assert entries["a.txt"].digest == hashlib.sha256(b"alpha").hexdigest() and entries["a.txt"].size == 5
    assert entries["a.txt"].extra == {"md5": _md5("alpha")}
    assert entries["ref.txt"].ref is not None and entries["ref.txt"].ref.startswith("file://")
    # Lineage: the run that logged each version, the one that used them.
    assert v0.logged_by().id == "r0" and v1.logged_by().id == "r1"
    assert [r.id for r in v0.used_by()] == ["consumer"] and [r.id for r in v1.used_by()] == ["consumer"]
    target = Path(v1.download(str(any_server.workdir / "bl-v1")))
    assert (target / "b.txt").read_text() == "beta, changed"

    # The client's own view of the same artifacts.
    # The reference is fetched by the client itself, from where it points.
    assert read["use"] == ["v0", ["again", "best"], ["a.txt", "b.txt", "ref.txt"], "alpha"]
    assert read["latest"] == ["v1", "beta, changed"]
    assert read["artifact"][:2] == ["ds:v0", ["again", "best"]]
    assert read["artifact"][2:] == [logged["v0"][2], ["consumer"], "r0", {"k": 1}, "two files"]
    assert read["api_download"] == {"a.txt": "alpha", "b.txt": "beta", "ref.txt": "by reference"}
    assert read["versions"] == [["v1", ["latest"]], ["v0", ["again", "best"]]]
    assert read["logged"] == ["ds:v0"] and sorted(read["used"]) == ["ds:v0", "ds:v1"]

    # wandb.Api() reads against what was logged.
    assert read["viewer"] == ["alice", "alice"] and "arts" in read["projects"]
    assert read["lt"] == ["r2", "r1"]
    assert read["or"] == ["r1", "r0"]
    assert read["and"] == ["r2", "r1", "r0"]
    run_id, name, state, tags, notes, group, job_type, created, config, summary = read["run"]
    assert [run_id, name, state, tags, notes, group, job_type, created] == [
        "r1",
        "name-1",
        "finished",
        ["b"],
        "note 1",
        "g",
        "train",
        True,
    ]
    assert config == {"lr": 0.01, "opt": {"m": 0.9}}
    assert summary == {"loss": pytest.approx(0.01), "acc": 0.5, "label": "s5"}
    history = read["history"]
    assert [row["_step"] for row in history] == list(range(6))
    assert [row["loss"] for row in history] == pytest.approx([0.01 * (6 - s) for s in range(6)])
    assert [row["label"] for row in history] == [f"s{s}" for s in range(6)]
    sampled = read["sampled"]
    assert len(sampled) == 3 and sampled[0] == {"_step": 0, "loss": pytest.approx(0.06)}
    assert sampled[-1]["_step"] == 5 and set(sampled[-1]) == {"_step", "loss"}
    scan = read["scan"]
    assert [row["_step"] for row in scan] == list(range(6)) and scan[3]["acc"] == pytest.approx(0.3)
    assert {"f.txt", "config.yaml", "wandb-metadata.json"} <= set(read["files"])
    assert read["file"] == "file 1"

    # run.update() persisted, as branchline's own Api reads it.
    assert read["updated"] == ["renamed", ["x", "y"], "edited", {"lr": 0.01, "opt": {"m": 0.9}, "extra": 5}, 1]
    edited = api.run("alice/arts/r1")
    assert (edited.name, sorted(edited.tags), edited.notes) == ("renamed", ["x", "y"], "edited")
    assert edited.state == "finished"  # an edit, not a resume
    assert edited.config["extra"] == 5 and edited.summary["best"] == 1 and edited.summary["acc"] == 0.5


OLDER = """
import json, os, wandb
os.makedirs("data", exist_ok=True)
open("data/m.txt", "w").write("model")
run = wandb.init(project="older", id="maker", config={"lr": 0.5})
for s in range(3):
    run.log({"loss": 1.0 / (s + 1)})
art = wandb.Artifact("model", type="model", metadata={"kind": "tiny"})
art.add_dir("data")
run.log_artifact(art, aliases=["prod"])
art.wait()
run.finish()
run = wandb.init(project="older", id="taker")
used = run.use_artifact("model:prod")
path = used.download(root="got")
out = {"used": [used.version, open(os.path.join(path, "m.txt")).read()]}
run.finish()
api = wandb.Api()
r = api.run("older/maker")
out["runs"] = [x.id for x in api.runs("older", filters={"config.lr": 0.5})]
out["history"] = [row["loss"] for row in r.scan_history()]
r.tags = ["edited"]
r.update()
print("RESULT=" + json.dumps(out))
"""


def test_an_older_client_logs_uses_and_reads(server: Server) -> None:
    """wandb 0.17.9 sends its own GraphQL shapes (flat variables, other operation names)."""
    if not OLD_WANDB_PYTHON.exists():
        pytest.skip(f"the older wandb client's venv is missing ({OLD_WANDB_PYTHON}); run scripts/install.sh")
    out = _result(run_clients([OLDER], server, python=OLD_WANDB_PYTHON)[0].stdout)
    assert out == {"used": ["v0", "model"], "runs": ["maker"], "history": [1.0, 0.5, pytest.approx(1 / 3)]}
    api = Api(overrides={"base_url": server.url}, api_key=server.key)
    model = api.artifact("alice/older/model:prod")
    assert model.version == "v0" and model.metadata == {"kind": "tiny"} and set(model.aliases) == {"prod", "latest"}
    assert model.logged_by().id == "maker" and [r.id for r in model.used_by()] == ["taker"]
    assert api.run("alice/older/maker").tags == ["edited"]


def test_artifact_urls_are_signed_and_unknown_uploads_refused(server: Server) -> None:
    url = server.url + "/wandb/artifacts/"
    forged = httpx.put(url + "eyJmb3JnZWQiOjF9.bm90LWEtbWFj", content=b"x", timeout=10)
    assert forged.status_code == 403 and forged.json()["errors"]
    assert httpx.get(url + "eyJmb3JnZWQiOjF9.bm90LWEtbWFj", timeout=10).status_code == 403
    commit = _gql(
        server,
        "mutation CommitArtifact($artifactID: ID!) { commitArtifact(input: {artifactID: $artifactID}) "
        "{ artifact { id } } }",
        "CommitArtifact",
        {"artifactID": "0" * 32},
    )
    assert commit.status_code == 200 and "log the artifact again" in commit.json()["errors"][0]["message"]
    missing = _gql(
        server, "query ArtifactByID($id: ID!) { artifact(id: $id) { id state } }", "ArtifactByID", {"id": "nope"}
    )
    assert missing.status_code == 200 and missing.json()["data"] == {"artifact": None}
    unknown = _gql(server, "query ArtifactCollections { project { id } }", "ArtifactCollections")
    assert unknown.status_code == 200 and "ArtifactCollections" in unknown.json()["errors"][0]["message"]
