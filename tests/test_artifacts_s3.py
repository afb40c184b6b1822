"""Artifacts on S3: blob storage and s3:// references, against moto's S3 server on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import branchline
from branchline.artifacts import ArtifactIntegrityError, public
from branchline.artifacts.blobstores.s3 import S3BlobStore
from tests.replica_cluster import moto_s3

from .conftest import QUIET, store_at

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto.server")
pytest.importorskip("obstore")

_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server in its own process on 127.0.0.1, for this module."""
    with moto_s3() as endpoint:
        yield endpoint


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    for name, value in _CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BRANCHLINE_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("BRANCHLINE_CACHE_DIR", str(tmp_path / ".cache"))
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    return client


def _bucket(client: Any, name: str) -> str:
    client.create_bucket(Bucket=name)
    return name


def _keys(client: Any, bucket: str, prefix: str = "") -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _start(tmp_path: Path, project: str = "p") -> Any:
    return branchline.init(project=project, dir=str(tmp_path), settings=dict(QUIET))


def test_blobs_on_s3_dedup_download_and_corruption(s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = _bucket(s3, "blobs-a")
    monkeypatch.setenv("BRANCHLINE_ARTIFACT_STORAGE", f"s3://{bucket}/team/blobs")
    data = tmp_path / "data"
    data.mkdir()
    for i in range(10):
        (data / f"f{i}.bin").write_bytes(os.urandom(2000))
    (data / "big.bin").write_bytes(os.urandom(9 << 20))  # multipart upload
    run = _start(tmp_path)
    first = run.log_artifact(str(data), name="ds", type="dataset").wait()
    keys = _keys(s3, bucket, "team/blobs/")
    assert len(keys) == 11
    digest = first.get_entry("f3.bin").digest
    assert f"team/blobs/{digest[:2]}/{digest[2:]}" in keys
    assert not (tmp_path / "branchline" / "blobs").exists() or not list(
        (tmp_path / "branchline" / "blobs").glob("??/*")
    )

    (data / "f0.bin").write_bytes(b"new content")
    second = run.log_artifact(str(data), name="ds", type="dataset").wait()
    assert second.version == "v1"
    assert len(_keys(s3, bucket, "team/blobs/")) == 12  # one more object only
    run.finish()

    with store_at(tmp_path) as store:
        logged = public.artifact(store, f"{run.entity}/p/ds:v1")
        out = Path(logged.download(tmp_path / "out"))
        assert (out / "big.bin").read_bytes() == (data / "big.bin").read_bytes()
        assert (out / "f0.bin").read_bytes() == b"new content"
        logged.verify()

        s3.put_object(Bucket=bucket, Key=f"team/blobs/{digest[:2]}/{digest[2:]}", Body=b"tampered")
        with pytest.raises(ArtifactIntegrityError) as caught:
            logged.verify()
        assert len(caught.value.problems) == 1
        assert caught.value.problems[0].startswith(f"f3.bin: blob {digest} is corrupt")
        with pytest.raises(ArtifactIntegrityError, match=f"f3.bin: blob {digest} is corrupt"):
            logged.download(tmp_path / "out2")


def test_retry_uploads_only_missing_blobs(s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = _bucket(s3, "blobs-b")
    url = f"s3://{bucket}/blobs"
    monkeypatch.setenv("BRANCHLINE_ARTIFACT_STORAGE", url)
    data = tmp_path / "data"
    data.mkdir()
    files = []
    for i in range(20):
        path = data / f"f{i:02d}.bin"
        path.write_bytes(os.urandom(1000))
        files.append(path)
    art = branchline.Artifact("ds", "dataset")
    art.add_dir(data)
    # An earlier, interrupted attempt stored the first 8 blobs and committed nothing.
    blobs = S3BlobStore(url)
    for path in files[:8]:
        entry = art.get_entry(path.name)
        blobs.put_file(entry.digest, str(path))
    sent: list[str] = []
    original = S3BlobStore.put_file

    def counting(self: S3BlobStore, digest: str, path: str, **kwargs: Any) -> None:
        sent.append(digest)
        original(self, digest, path, **kwargs)

    monkeypatch.setattr(S3BlobStore, "put_file", counting)
    run = _start(tmp_path)
    run.log_artifact(art)
    run.finish()
    expected = {art.get_entry(p.name).digest for p in files[8:]}
    assert sorted(sent) == sorted(expected)
    assert blobs.missing({e.digest for e in art.files()}) == set()


def test_s3_references_record_etags_and_catch_changes(s3: Any, tmp_path: Path) -> None:
    bucket = _bucket(s3, "refs")
    s3.put_object(Bucket=bucket, Key="data/a.bin", Body=b"alpha")
    s3.put_object(Bucket=bucket, Key="data/sub/b.bin", Body=b"beta")
    s3.put_object(Bucket=bucket, Key="model.pt", Body=b"weights")
    art = branchline.Artifact("refs", "dataset")
    art.add_reference(f"s3://{bucket}/data")
    single = art.add_reference(f"s3://{bucket}/model.pt", name="weights/model.pt")[0]
    head = s3.head_object(Bucket=bucket, Key="model.pt")
    assert single.digest == head["ETag"].strip('"') and single.size == 7
    assert single.ref == f"s3://{bucket}/model.pt"
    assert [e.path for e in art.files()] == ["a.bin", "sub/b.bin", "weights/model.pt"]

    run = _start(tmp_path)
    run.log_artifact(art)
    run.finish()
    assert not list((tmp_path / "branchline" / "blobs").glob("??/*"))  # nothing copied

    with store_at(tmp_path) as store:
        logged = public.artifact(store, f"{run.entity}/p/refs:latest")
        out = Path(logged.download(tmp_path / "out"))
        assert (out / "sub" / "b.bin").read_bytes() == b"beta"
        assert (out / "weights" / "model.pt").read_bytes() == b"weights"
        logged.verify()

        s3.put_object(Bucket=bucket, Key="model.pt", Body=b"retrained weights")
        with pytest.raises(ArtifactIntegrityError, match=r"weights/model\.pt: .* changed"):
            logged.verify()
        with pytest.raises(ArtifactIntegrityError, match=r"weights/model\.pt"):
            logged.download(tmp_path / "out2")
    with pytest.raises(FileNotFoundError):
        branchline.Artifact("x", "t").add_reference(f"s3://{bucket}/nothing/here")
