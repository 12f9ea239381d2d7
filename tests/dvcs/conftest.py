"""Fixtures for the repository-layer tests: an isolated identity and config, and a repository."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dsrepo import Repository


@pytest.fixture
def identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Author identity from the environment; the global config isolated (returned path)."""
    gconfig = tmp_path / "gconfig"
    monkeypatch.setenv("DSREPO_AUTHOR_NAME", "Repo Tester")
    monkeypatch.setenv("DSREPO_AUTHOR_EMAIL", "repo@example.com")
    monkeypatch.setenv("DSREPO_CONFIG_GLOBAL", str(gconfig))
    monkeypatch.delenv("DSREPO_AUTHOR_DATE", raising=False)
    return gconfig


@pytest.fixture
def repo(tmp_path: Path, identity: Path) -> Iterator[Repository]:
    """An empty repository at ``tmp_path / "data"``."""
    r = Repository.init(tmp_path / "data")
    try:
        yield r
    finally:
        r.close()


def write(root: Path, rel: str, data: bytes | str) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p
