"""Shared fixtures and helpers for the sync tests (push, fetch, pull, clone, get).

``remote`` is parametrized over a directory remote and an S3 remote on a moto server; each S3 test
gets its own bucket. ``ds`` runs the ``dsrepo`` command in process (click's CliRunner) in a given
directory. Import the fixtures into a test module with (they register under their ``name=``)::

    from tests.sync_fixtures import ds_fixture  # noqa: F401
    from tests.sync_fixtures import remote_fixture, sync_env_fixture  # noqa: F401
"""

from __future__ import annotations

import os
import random
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dsrepo.cli.main import cli as cli_group
from dsrepo.dvcs.repository import Repository
from dsrepo.objects import layout
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.pack import IndexEntry, PackClass, decode_index
from dsrepo.remotes.base import Backend
from dsrepo.remotes.directory import DirectoryBackend
from dsrepo.remotes.s3 import S3Backend
from dsrepo.remotes.s3_testserver import MotoServer
from dsrepo.remotes.urls import S3Options
from tests.cli.conftest import Run
from tests.snapshots import snapshot as snapshot  # re-exported for the sync tests

# ---------------------------------------------------------------- environment


@pytest.fixture(name="sync_env")
def sync_env_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Identity, isolated global config and get-cache, dummy AWS credentials (for the product's
    own boto3 clients) and no AWS config files. Returns ``tmp_path``."""
    monkeypatch.setenv("DSREPO_AUTHOR_NAME", "Sync Tester")
    monkeypatch.setenv("DSREPO_AUTHOR_EMAIL", "sync@example.com")
    monkeypatch.setenv("DSREPO_CONFIG_GLOBAL", str(tmp_path / "g"))
    monkeypatch.setenv("DSREPO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DSREPO_AUTHOR_DATE", raising=False)
    monkeypatch.delenv("DSREPO_PROGRESS", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for var in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return tmp_path


# ---------------------------------------------------------------- remotes


@dataclass
class RemoteSpec:
    """A remote location for a test, with raw access to its keys (bypassing dsrepo)."""

    kind: str  # "dir" or "s3"
    url: str
    endpoint_url: str | None = None
    path: Path | None = None
    bucket: str | None = None
    prefix: str = ""
    client: Any = None

    def __str__(self) -> str:
        return self.kind

    @property
    def s3(self) -> S3Options | None:
        return S3Options(endpoint_url=self.endpoint_url) if self.kind == "s3" else None

    def opts(self) -> list[str]:
        """Extra CLI options for ``remote add``/``clone``/``get``."""
        return ["--endpoint-url", self.endpoint_url] if self.endpoint_url else []

    def add_to(self, repo: Repository, name: str = "origin") -> None:
        repo.remote_add(name, self.url, endpoint_url=self.endpoint_url)

    def backend(self) -> Backend:
        """A raw backend on the remote's keys (no retries, no validation of content)."""
        if self.kind == "dir":
            assert self.path is not None
            return DirectoryBackend(self.path)
        assert self.bucket is not None
        return S3Backend(self.bucket, self.prefix, client=self.client)

    def list_keys(self, prefix: str = "") -> set[str]:
        if self.kind == "dir" and (self.path is None or not self.path.exists()):
            return set()
        b = self.backend()
        try:
            return {k.key for k in b.iter_keys(prefix)}
        finally:
            b.close()

    def read(self, key: str) -> bytes:
        b = self.backend()
        try:
            return b.get(key)
        finally:
            b.close()

    def write(self, key: str, data: bytes) -> None:
        """Overwrite a key in place: the file itself (directory) or a re-upload (S3)."""
        if self.kind == "dir":
            assert self.path is not None
            target = self.path / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        else:
            self.client.put_object(Bucket=self.bucket, Key=self._obj(key), Body=data)

    def delete(self, key: str) -> None:
        if self.kind == "dir":
            assert self.path is not None
            (self.path / key).unlink()
        else:
            self.client.delete_object(Bucket=self.bucket, Key=self._obj(key))

    def _obj(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def packs(self) -> set[str]:
        """Names of the complete packs (those with an index)."""
        return {
            n
            for k in self.list_keys(layout.PACKS_PREFIX)
            if (n := layout.pack_name_from_index_key(k))
        }

    def pack_files(self) -> set[str]:
        """Names of every ``.pack`` (complete or not)."""
        return {
            k[len(layout.PACKS_PREFIX) : -len(".pack")]
            for k in self.list_keys(layout.PACKS_PREFIX)
            if k.endswith(".pack")
        }

    def index(self, name: str) -> tuple[PackClass, list[IndexEntry]]:
        return decode_index(self.read(layout.index_key(name)), name)

    def ref(self, name: str) -> str | None:
        try:
            return self.read(name).decode().strip()
        except Exception:
            return None


def make_remote(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest | None, label: str = "remote"
) -> RemoteSpec:
    """A remote location that does not exist yet: ``tmp_path/label``, or a fresh bucket with the
    prefix ``datasets/label`` (S3 needs ``request`` to reach the session's moto server)."""
    if kind == "dir":
        path = tmp_path / label
        return RemoteSpec("dir", str(path), path=path)
    assert request is not None
    server: MotoServer = request.getfixturevalue("moto_server")
    bucket = server.create_bucket()
    prefix = f"datasets/{label}"
    return RemoteSpec(
        "s3",
        f"s3://{bucket}/{prefix}",
        endpoint_url=server.endpoint_url,
        bucket=bucket,
        prefix=prefix,
        client=server.client(),
    )


@pytest.fixture(params=["dir", "s3"], name="remote")
def remote_fixture(request: pytest.FixtureRequest, tmp_path: Path, sync_env: Path) -> RemoteSpec:
    """An empty remote location: a directory that does not exist yet, or a fresh S3 bucket."""
    return make_remote(request.param, tmp_path, request)


# ---------------------------------------------------------------- running the CLI


class Ds:
    """``ds(cwd, *args)`` runs ``dsrepo`` in ``cwd`` and asserts exit 0; ``ds.fail(code, cwd,
    *args)`` asserts exit ``code`` and exactly one ``dsrepo: error:`` line on stderr."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.runner = CliRunner()
        self.monkeypatch = monkeypatch

    def run(self, cwd: Path, *args: str) -> Run:
        self.monkeypatch.setattr(sys, "argv", ["dsrepo"])
        old = os.getcwd()
        os.chdir(cwd)
        try:
            result = self.runner.invoke(cli_group, ["-q", *args])
        finally:
            os.chdir(old)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(
                f"dsrepo {' '.join(args)} raised {result.exception!r}\n{result.output}"
            ) from result.exception
        return Run(tuple(args), result.exit_code, result.stdout, result.stderr, result.stdout_bytes)

    def __call__(self, cwd: Path, *args: str) -> Run:
        r = self.run(cwd, *args)
        assert r.code == 0, r
        return r

    def fail(self, code: int, cwd: Path, *args: str) -> Run:
        r = self.run(cwd, *args)
        assert r.code == code, r
        lines = r.err_lines
        assert len(lines) == 1, r
        assert lines[0].startswith("dsrepo: error: "), r
        return r


@pytest.fixture(name="ds")
def ds_fixture(sync_env: Path, monkeypatch: pytest.MonkeyPatch) -> Ds:
    return Ds(monkeypatch)


# ---------------------------------------------------------------- data helpers


def rand(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def write(root: Path, rel: str, data: bytes | str) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


def make_dataset(root: Path, seed: int = 1, big: int = 3 << 20) -> dict[str, bytes]:
    """A small dataset: a few images, a chunked ``big.bin``, text files. Returns the snapshot."""
    for i in range(4):
        write(root, f"img/{i:02d}.png", rand(5_000 + 100 * i, seed * 100 + i))
    write(root, "big.bin", rand(big, seed * 100 + 50))
    write(root, "labels.csv", "".join(f"{i},{i % 3}\n" for i in range(50)))
    write(root, "docs/README.md", f"# dataset {seed}\n")
    return snapshot(root)


def new_repo(path: Path) -> Repository:
    return Repository.init(path)


def commit_all(repo: Repository, message: str) -> ObjectId:
    repo.add(".", cwd=repo.root)
    return repo.commit(message).id


def token() -> str:
    return secrets.token_hex(4)
