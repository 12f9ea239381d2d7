"""The HTTP remote end to end: the real CLI (in process) against a live server on 127.0.0.1 —
push, clone, fetch, pull, get and partial clone moving only what is missing, with ranged reads;
tokens (missing, wrong, read scope, revoked, credentials file, anonymous read)."""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from dsrepo import Repository
from dsrepo.remotes.http import HttpBackend
from dsrepo.server.config import ServeConfig
from tests.cli.conftest import Cli, assert_one_error_line
from tests.server.conftest import Serve, commit_file


@contextmanager
def at(path: Path) -> Iterator[None]:
    here = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(here)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".dsrepo" not in p.relative_to(root).parts
    }


class Recorder:
    """ASGI wrapper noting each request's method, path and Range header."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[tuple[str, str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            rng = headers.get(b"range", b"").decode()
            self.requests.append((scope["method"], scope["path"], rng))
        await self.app(scope, receive, send)


def make_dataset(root: Path, seed: int = 1) -> None:
    rnd = random.Random(seed)
    (root / "images").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "big.bin").write_bytes(rnd.randbytes(3_000_000))
    for i in range(20):
        (root / "images" / f"img{i:02d}.jpg").write_bytes(rnd.randbytes(5_000 + i))
    (root / "docs" / "README.md").write_text("the dataset\n")


def test_round_trip_push_clone_fetch_pull_get(
    cli: Cli, serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder: list[Recorder] = []

    def wrap(app: Any) -> Recorder:
        recorder.append(Recorder(app))
        return recorder[0]

    server = serve(wrap=wrap)
    monkeypatch.setenv("DSREPO_TOKEN", server.token("write"))
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    cli("init", "-q", str(alice))
    make_dataset(alice)
    with at(alice):
        cli("add", ".")
        cli("commit", "-q", "-m", "first")
        cli("remote", "add", "origin", server.url)
        r = cli("push")
        assert re.search(r"ok\s+main\s+\(new\) -> [0-9a-f]+", r.out), r
        cli("tag", "v1")
        cli("push", "origin", "v1")

    cli("clone", server.url, str(bob))
    assert tree_bytes(bob) == tree_bytes(alice)

    # a small change moves only what changed
    big = bytearray((alice / "big.bin").read_bytes())
    big[1_000_000:1_000_100] = b"x" * 100
    (alice / "big.bin").write_bytes(bytes(big))
    with at(alice):
        cli("commit", "-q", "-a", "-m", "second")
        r = cli("push")
    sent = re.search(r"sent (\d+) objects .*\(([\d.]+) (KiB|MiB|B)\)", r.err)
    assert sent, r
    assert int(sent.group(1)) < 10, r  # the changed chunk(s), the manifest, tree, commit

    with at(bob):
        cli("fetch")
        r = cli("pull")
        assert tree_bytes(bob) == tree_bytes(alice)
        assert cli("rev-parse", "HEAD").out == cli("rev-parse", "origin/main").out

    # get through the user-level cache, at a tag
    got = tmp_path / "got"
    cli("get", f"{server.url}@v1", str(got))
    assert (got / "docs" / "README.md").read_text() == "the dataset\n"
    assert (got / "big.bin").read_bytes() != (alice / "big.bin").read_bytes()  # v1: the first

    # a partial clone reads the other files' chunks on demand, by ranges
    part = tmp_path / "part"
    recorder[0].requests.clear()
    cli("clone", "--only", "docs/*", server.url, str(part))
    assert (part / "docs" / "README.md").exists() and not (part / "big.bin").exists()
    with at(part):
        shown = cli("show", "main:big.bin").out_bytes
    assert shown == (alice / "big.bin").read_bytes()
    ranged = [r for r in recorder[0].requests if r[2]]
    assert ranged, recorder[0].requests  # the data came as ranges of packs

    # the readers behind dsrepo:// (fsspec, datasets) read a version in place, by ranges
    from dsrepo import reading

    recorder[0].requests.clear()
    with reading.open(server.url, "main") as reader:
        with reader.open_entry(reader.info("big.bin")) as f:
            f.seek(999_990)
            assert f.read(120) == bytes(big[999_990:1_000_110])
        assert reader.info("docs/README.md").size == len("the dataset\n")
    assert [r for r in recorder[0].requests if r[2]], recorder[0].requests

    # the server's store is complete and clean: clone it as a directory remote and fsck
    with Repository.clone(str(server.root), tmp_path / "direct") as direct:
        assert direct.fsck().ok


def test_listing_hides_what_is_not_a_remote(serve: Serve, tmp_path: Path, cli: Cli) -> None:
    """A served repository with a working copy: clients see format, packs and branches/tags;
    never its index, config, logs, remote-tracking refs, HEAD or the server's own files."""
    repo_root = tmp_path / "wc"
    cli("init", "-q", str(repo_root))
    commit_file(cli, repo_root, "a.txt", "a\n", "first")
    with at(repo_root):
        cli("remote", "add", "elsewhere", str(tmp_path / "elsewhere"))
        cli("push", "elsewhere")  # makes refs/remotes/elsewhere/main
    server = serve(repo_root, init=False)
    token = server.token("read")
    backend = HttpBackend(server.url, token)
    keys = [i.key for i in backend.list()]
    assert "format" in keys and "refs/heads/main" in keys
    assert all(k == "format" or k.startswith(("packs/", "refs/heads/", "refs/tags/")) for k in keys)
    for hidden in ("HEAD", "config", "index", "serve/tokens.json", "refs/remotes/elsewhere/main"):
        with pytest.raises(Exception, match="not found"):
            backend.get(hidden)
    assert [i.key for i in backend.list("refs/remotes/")] == []
    backend.close()


def test_clone_and_push_a_served_working_copy(cli: Cli, serve: Serve, tmp_path: Path) -> None:
    """Reading a repository with a working copy; pushes to its checked-out branch are refused,
    to another branch accepted."""
    origin = tmp_path / "origin"
    cli("init", "-q", str(origin))
    commit_file(cli, origin, "a.txt", "a\n", "first")
    server = serve(origin, init=False)
    os.environ["DSREPO_TOKEN"] = server.token("write")
    try:
        clone = tmp_path / "clone"
        cli("clone", server.url, str(clone))
        commit_file(cli, clone, "b.txt", "b\n", "second")
        with at(clone):
            r = cli.run("push")
            assert r.code == 5, r
            assert_one_error_line(r)
            assert "checked out in the served working copy" in r.err
            cli("push", "origin", "main:feature")
        with at(origin):
            assert cli("log", "--oneline", "feature").out.count("\n") == 2
            assert cli("log", "--oneline", "main").out.count("\n") == 1
    finally:
        del os.environ["DSREPO_TOKEN"]


# ---------------------------------------------------------------- tokens


def test_the_web_view_takes_the_same_tokens(cli: Cli, serve: Serve, tmp_path: Path) -> None:
    """A browser gets a Basic challenge and logs in with a token as its password."""
    import base64

    import urllib3

    origin = tmp_path / "origin"
    cli("init", "-q", str(origin))
    commit_file(cli, origin, "a.txt", "a\n", "first")
    server = serve(origin, init=False)
    token = server.token("read")
    http = urllib3.PoolManager()
    r = http.request("GET", server.url, retries=False)
    assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Basic")
    basic = base64.b64encode(f"me:{token}".encode()).decode()
    r = http.request("GET", server.url, headers={"Authorization": f"Basic {basic}"}, retries=False)
    assert r.status not in (401, 403), r.status
    r = http.request("GET", server.url + "api/v1/keys", retries=False)
    assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.json()["error"] == "reading needs a token"


def _pushable(cli: Cli, root: Path, url: str) -> None:
    cli("init", "-q", str(root))
    commit_file(cli, root, "a.txt", "a\n", "first")
    with at(root):
        cli("remote", "add", "origin", url)


def test_missing_or_wrong_token_is_one_clear_line(
    cli: Cli, serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve()
    _pushable(cli, tmp_path / "alice", server.url)
    with at(tmp_path / "alice"):
        r = cli.run("push")
        assert r.code == 8, r
        assert_one_error_line(r)
        assert (
            f"authentication failed for {server.url}: set DSREPO_TOKEN or add a token to" in r.err
        )

        monkeypatch.setenv("DSREPO_TOKEN", "dsr_000000000000_" + "A" * 43)
        r = cli.run("push")
        assert r.code == 8, r
        assert_one_error_line(r)
        assert "the server refused the token from DSREPO_TOKEN" in r.err
        monkeypatch.setenv("DSREPO_TOKEN", "not even a token")
        assert_one_error_line(cli.run("fetch"))
    r = cli.run("clone", server.url, str(tmp_path / "nope"))
    assert_one_error_line(r)
    assert not (tmp_path / "nope").exists()


def test_read_token_reads_but_cannot_push(
    cli: Cli, serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve()
    write, read = server.token("write", "ci-write"), server.token("read", "ci-read")
    _pushable(cli, tmp_path / "alice", server.url)
    with at(tmp_path / "alice"):
        monkeypatch.setenv("DSREPO_TOKEN", write)
        cli("push")
        commit_file(cli, tmp_path / "alice", "b.txt", "b\n", "second")
        monkeypatch.setenv("DSREPO_TOKEN", read)
        r = cli.run("push")
        assert r.code == 8, r
        assert_one_error_line(r)
        assert "permission denied" in r.err and "'ci-read' has read scope" in r.err
    cli("clone", server.url, str(tmp_path / "reader"))
    assert (tmp_path / "reader" / "a.txt").read_text() == "a\n"

    # revoked: refused at once by the running server
    server.tokens.revoke("ci-read")
    with at(tmp_path / "reader"):
        r = cli.run("fetch")
        assert r.code == 8 and "authentication failed" in r.err, r


def test_token_from_the_credentials_file(
    cli: Cli, serve: Serve, tmp_path: Path, client_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve()
    client_env.write_text(
        f"# dsrepo tokens\nhttp://elsewhere.example/ dsr_000000000000_{'B' * 43}\n"
        f"{server.url.rstrip('/')} {server.token('write')}\n"
    )
    _pushable(cli, tmp_path / "alice", server.url)
    with at(tmp_path / "alice"):
        cli("push")
    # DSREPO_TOKEN, when set, comes first
    monkeypatch.setenv("DSREPO_TOKEN", "dsr_000000000000_" + "C" * 43)
    r = cli.run("clone", server.url, str(tmp_path / "x"))
    assert "refused the token from DSREPO_TOKEN" in r.err, r


def test_anonymous_read_is_opt_in(
    cli: Cli, serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = serve()
    _pushable(cli, tmp_path / "alice", closed.url)
    monkeypatch.setenv("DSREPO_TOKEN", closed.token("write"))
    with at(tmp_path / "alice"):
        cli("push")
    monkeypatch.delenv("DSREPO_TOKEN")
    open_ = serve(closed.root, ServeConfig(anonymous_read=True), init=False)
    cli("clone", open_.url, str(tmp_path / "anon"))
    assert cli.run("clone", closed.url, str(tmp_path / "refused")).code == 8
    commit_file(cli, tmp_path / "anon", "b.txt", "b\n", "second")
    with at(tmp_path / "anon"):
        r = cli.run("push")
        assert r.code == 8 and "authentication failed" in r.err, r


def test_url_with_credentials_is_refused(cli: Cli, tmp_path: Path) -> None:
    cli("init", "-q", str(tmp_path / "r"))
    with at(tmp_path / "r"):
        r = cli.run("remote", "add", "origin", "http://user:secret@127.0.0.1:1/")
    assert r.code == 2, r
    assert "secret" not in r.err and "DSREPO_TOKEN" in r.err
