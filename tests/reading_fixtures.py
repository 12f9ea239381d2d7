"""A repository with two versions of a small table dataset, pushed to a directory remote and to
an S3 remote (moto server), for the tests of ``dsrepo.open``, ``dsrepo.fs`` and ``FileDataset``.

Import into a test module with::

    from tests.reading_fixtures import reading_env_fixture, world_fixture  # noqa: F401

``tables/train.parquet`` has four float64 columns of 1.6 MB each (uncompressed, one row group),
so reading one column is clearly not reading the file; version ``v1`` is tagged, ``main`` (v2)
changes column ``c0`` and the CSV.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dsrepo import Repository
from dsrepo.reading import close_shared
from dsrepo.remotes.s3_testserver import TEST_CREDENTIALS, MotoServer

ROWS = 200_000
COLUMNS = ("c0", "c1", "c2", "c3")


def table_bytes(version: int) -> bytes:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(1)
    df = pd.DataFrame({c: rng.random(ROWS) for c in COLUMNS})
    if version == 2:
        df["c0"] = df["c0"] * 2
    out = io.BytesIO()
    df.to_parquet(out, compression=None, row_group_size=ROWS, index=False)
    return out.getvalue()


def csv_text(version: int) -> str:
    rows = [("cat", 1), ("dog", 2), ("owl", 3)] + ([("fox", 4), ("elk", 5)] if version == 2 else [])
    return "name,label\n" + "".join(f"{n},{v}\n" for n, v in rows)


@dataclass
class World:
    root: Path
    dir_remote: Path
    bucket: str
    prefix: str
    endpoint_url: str
    parquet: dict[str, bytes] = field(default_factory=dict)
    csv: dict[str, str] = field(default_factory=dict)
    commits: dict[str, str] = field(default_factory=dict)

    @property
    def s3_url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def location(self, kind: str) -> str:
        """The location of the repository (``repo``), a remote (``dir``, ``s3``)."""
        return {"repo": str(self.root), "dir": str(self.dir_remote), "s3": self.s3_url}[kind]

    def url(self, kind: str, rev: str | None, path: str = "") -> str:
        from dsrepo.fs import url

        return url(self.location(kind), rev, path)

    def storage_options(self, kind: str) -> dict[str, Any]:
        return {"endpoint_url": self.endpoint_url} if kind == "s3" else {}


def _env(mp: pytest.MonkeyPatch, tmp: Path) -> None:
    mp.setenv("DSREPO_AUTHOR_NAME", "Reader Tester")
    mp.setenv("DSREPO_AUTHOR_EMAIL", "reader@example.com")
    mp.setenv("DSREPO_CONFIG_GLOBAL", str(tmp / "gconfig"))
    mp.setenv("DSREPO_CACHE_DIR", str(tmp / "cache"))
    mp.setenv("HF_HOME", str(tmp / "hf"))
    mp.setenv("HF_DATASETS_CACHE", str(tmp / "hf" / "datasets"))
    for name, value in TEST_CREDENTIALS.items():
        mp.setenv(name, value)
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "DSREPO_AUTHOR_DATE"):
        mp.delenv(var, raising=False)
    mp.setenv("AWS_CONFIG_FILE", str(tmp / "no-aws-config"))
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp / "no-aws-credentials"))
    mp.setenv("NO_PROXY", "127.0.0.1,localhost")
    mp.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture(scope="session", name="world")
def world_fixture(
    tmp_path_factory: pytest.TempPathFactory, moto_server: MotoServer
) -> Iterator[World]:
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    tmp = tmp_path_factory.mktemp("world")
    bucket = moto_server.create_bucket()
    w = World(tmp / "data", tmp / "remote", bucket, "datasets/tables", moto_server.endpoint_url)
    with pytest.MonkeyPatch.context() as mp:
        _env(mp, tmp)
        repo = Repository.init(w.root)
        (w.root / "tables").mkdir()
        for version, rev in ((1, "v1"), (2, "main")):
            w.parquet[rev] = table_bytes(version)
            w.csv[rev] = csv_text(version)
            (w.root / "tables" / "train.parquet").write_bytes(w.parquet[rev])
            (w.root / "tables" / "labels.csv").write_text(w.csv[rev])
            repo.add(".")
            info = repo.commit(f"version {version}", metadata={"version": version, "rows": ROWS})
            w.commits[rev] = info.id.hex()
            if version == 1:
                repo.tag("v1", message="first version")
        repo.remote_add("origin", str(w.dir_remote))
        repo.push("origin", tags=True)
        repo.remote_add("s3", w.s3_url, endpoint_url=w.endpoint_url)
        repo.push("s3", tags=True)
        repo.close()
        close_shared()
    yield w


@pytest.fixture(name="reading_env", autouse=False)
def reading_env_fixture(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    """The world, with this test's own user cache and the dummy AWS credentials; every shared
    handle closed afterwards."""
    _env(monkeypatch, tmp_path)
    yield world
    close_shared()
