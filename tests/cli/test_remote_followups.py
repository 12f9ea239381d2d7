"""Remote behaviours found wrong in the docs review, kept fixed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Cli


@pytest.fixture
def published(tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DSREPO_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "src"
    src.mkdir()
    monkeypatch.chdir(src)
    cli("init", "-q")
    (src / "img").mkdir()
    (src / "img" / "a.bin").write_bytes(b"a" * 3000)
    (src / "big.bin").write_bytes(bytes(range(256)) * 40)
    cli("add", ".")
    cli("commit", "-m", "v1")
    cli("remote", "add", "origin", "../remote")  # relative: stored normalized and absolute
    cli("push")
    return tmp_path


def test_relative_remote_paths_are_stored_normalized(published: Path, cli: Cli) -> None:
    assert cli("remote", "-v").out.split() == ["origin", str(published / "remote")]


def test_partial_clone_shows_and_cats_unfetched_files_on_demand(
    published: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(published)
    cli("clone", "-q", "remote", "part", "--only", "img/*")
    monkeypatch.chdir(published / "part")
    assert not (published / "part" / "big.bin").exists()
    assert cli("show", "HEAD:big.bin").out_bytes == bytes(range(256)) * 40
    assert cli("cat-file", "-p", "HEAD:big.bin").out_bytes == bytes(range(256)) * 40


def test_checkout_only_reports_the_bytes_written(published: Path, cli: Cli) -> None:
    (published / "src" / "img" / "a.bin").write_bytes(b"changed")
    r = cli("checkout", "--force", "--only", "img/*", "HEAD")
    assert (
        "(2.9 KiB)" in r.err and (published / "src" / "img" / "a.bin").read_bytes() == b"a" * 3000
    )


def test_pull_from_a_url_says_what_to_do(published: Path, cli: Cli) -> None:
    r = cli.fail(2, "pull", str(published / "remote"), "main")  # RemoteNotFound
    assert "configured remote" in r.err


def test_status_says_when_the_upstream_is_gone(published: Path, cli: Cli) -> None:
    cli("switch", "-c", "topic")
    cli("push", "origin", "topic")
    cli("config", "branch.topic.remote", "origin")
    cli("config", "branch.topic.merge", "refs/heads/topic")
    (published / "remote" / "refs" / "heads" / "topic").unlink()  # deleted on the remote
    cli("fetch", "--prune")
    assert "the upstream is gone" in cli("status").out
