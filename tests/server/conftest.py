"""Fixtures for the server tests: an isolated client environment (identity, config, cache,
credentials file, no DSREPO_TOKEN), the in-process CLI, and served remotes on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dsrepo.server.config import ServeConfig
from tests.cli.conftest import AUTHOR_EMAIL, AUTHOR_NAME, Cli
from tests.server.live import LiveServer


@pytest.fixture
def client_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Identity, global config, get cache and credentials file inside ``tmp_path``; returns the
    credentials file's path (absent until a test writes it)."""
    monkeypatch.setenv("DSREPO_AUTHOR_NAME", AUTHOR_NAME)
    monkeypatch.setenv("DSREPO_AUTHOR_EMAIL", AUTHOR_EMAIL)
    monkeypatch.setenv("DSREPO_CONFIG_GLOBAL", str(tmp_path / "gconfig"))
    monkeypatch.setenv("DSREPO_CACHE_DIR", str(tmp_path / "getcache"))
    monkeypatch.setenv("DSREPO_CREDENTIALS", str(tmp_path / "credentials"))
    for name in ("DSREPO_TOKEN", "DSREPO_AUTHOR_DATE", "DSREPO_PROGRESS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "credentials"


@pytest.fixture
def cli(client_env: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(monkeypatch)


Serve = Callable[..., LiveServer]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """``serve(root=None, config=None, init=True)``: a live server (stopped after the test);
    by default a new, empty bare remote in ``tmp_path/remote``."""
    started: list[LiveServer] = []

    def start(
        root: Path | None = None,
        config: ServeConfig | None = None,
        *,
        init: bool = True,
        wrap: Callable[[Any], Any] | None = None,
    ) -> LiveServer:
        server = LiveServer(root or tmp_path / "remote", config, init=init, wrap=wrap).__enter__()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.__exit__(None, None, None)


def commit_file(cli: Cli, root: Path, name: str, data: bytes | str, message: str) -> str:
    """Write ``name`` under ``root``, add and commit it (in ``root``); returns the commit id."""
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    here = os.getcwd()
    os.chdir(root)
    try:
        cli("add", name)
        cli("commit", "-q", "-m", message)
        return cli("rev-parse", "HEAD").out.strip()
    finally:
        os.chdir(here)
