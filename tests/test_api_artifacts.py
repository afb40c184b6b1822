"""Artifacts through the module-level calls and the public Api."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import branchline


def test_log_and_use_through_the_module_and_read_through_the_api(tmp_path: Path, quiet: dict[str, Any]) -> None:
    data = tmp_path / "data.txt"
    data.write_text("rows\n")
    with branchline.init(project="arts", settings=quiet) as producer:
        artifact = branchline.Artifact("dataset", type="dataset")
        artifact.add_file(str(data))
        branchline.log_artifact(artifact, aliases=["best"])
    with branchline.init(project="arts", settings=quiet) as consumer:
        used = branchline.use_artifact("dataset:best")
        assert used.version == "v0"
    api = branchline.Api(overrides={"root_dir": str(tmp_path)})
    found = api.artifact(f"{producer.entity}/arts/dataset:latest")
    assert found.version == "v0" and "best" in found.aliases
    assert [a.version for a in api.artifacts("dataset", f"{producer.entity}/arts/dataset")] == ["v0"]
    assert api.artifact_exists(f"{producer.entity}/arts/dataset:v0")
    assert not api.artifact_exists(f"{producer.entity}/arts/dataset:v7")
    logged = api.run(f"{producer.entity}/arts/{producer.id}").logged_artifacts()
    assert [a.version for a in logged] == ["v0"]
    used_runs = api.run(f"{consumer.entity}/arts/{consumer.id}").used_artifacts()
    assert [a.name.split(":")[0] for a in used_runs] == ["dataset"]
    assert [r.id for r in found.used_by()] == [consumer.id]
    assert found.logged_by().id == producer.id
    api.close()


def test_offline_artifacts_are_stored_by_sync(tmp_path: Path) -> None:
    from tests.conftest import run_python

    data = tmp_path / "w.bin"
    data.write_bytes(b"weights")
    result = run_python(
        f"""
        import branchline
        run = branchline.init(project="off", mode="offline", settings={{"quiet": True, "x_disable_stats": True, "console": "off"}})
        art = branchline.Artifact("model", type="model")
        art.add_file({str(data)!r})
        run.log_artifact(art)
        run.finish()
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    import subprocess
    import sys

    synced = subprocess.run([sys.executable, "-m", "branchline", "sync"], cwd=tmp_path, capture_output=True, text=True)
    assert synced.returncode == 0, synced.stderr
    api = branchline.Api(overrides={"root_dir": str(tmp_path)})
    model = api.artifact("off/model:latest")
    assert model.version == "v0"
    target = Path(model.download(str(tmp_path / "out")))
    assert (target / "w.bin").read_bytes() == b"weights"
    api.close()
