"""The remote commands through the CLI: remote add/remove/rename/set-url/-v, push (--dry-run,
--tags), fetch (--prune), status ahead/behind, get (through the user-level cache), and the errors:
each is one ``dsrepo: error:`` line, a documented exit code, and leaves no partial refs."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from dsrepo.dvcs.refnames import REMOTES
from dsrepo.dvcs.repository import Repository
from dsrepo.objects.model import ObjectType
from dsrepo.remotes import s3 as s3_module
from tests.sync_fixtures import (  # noqa: F401  (fixtures)
    Ds,
    RemoteSpec,
    ds_fixture,
    make_dataset,
    make_remote,
    remote_fixture,
    snapshot,
    sync_env_fixture,
    write,
)


def _src(ds: Ds, tmp: Path, remote: RemoteSpec | None = None) -> tuple[Path, dict[str, bytes]]:
    """A working copy with one commit of a small dataset (1 MiB big.bin), remote 'origin' added."""
    ds(tmp, "init", "src")
    src = tmp / "src"
    files = make_dataset(src, big=1 << 20)
    ds(src, "add", ".")
    ds(src, "commit", "-m", "v1")
    if remote is not None:
        ds(src, "remote", "add", "origin", remote.url, *remote.opts())
    return src, files


def _commit(ds: Ds, wc: Path, rel: str, text: str) -> str:
    write(wc, rel, text)
    ds(wc, "add", ".")
    ds(wc, "commit", "-m", f"change {rel}")
    return ds(wc, "rev-parse", "HEAD").out.strip()


def _remote_refs(wc: Path) -> dict[str, Any]:
    with Repository.open(wc) as repo:
        return repo.refs.list(REMOTES)


def _remotes_config(wc: Path) -> str:
    config = wc / ".dsrepo" / "config"
    text = config.read_text() if config.exists() else ""
    return "\n".join(line for line in text.splitlines() if "remote" in line)


# ---------------------------------------------------------------- errors


def test_bad_url_scheme_is_refused(ds: Ds, sync_env: Path) -> None:
    tmp = sync_env
    src, _ = _src(ds, tmp)
    r = ds.fail(2, src, "remote", "add", "origin", "ftp://x")
    assert "ftp" in r.err
    assert ds(src, "remote", "-v").out == ""
    assert _remotes_config(src) == ""
    r = ds.fail(2, src, "push", "ftp://x/dataset")
    assert "ftp" in r.err
    before = sorted(os.listdir(tmp))
    r = ds.fail(2, tmp, "clone", "ftp://x/dataset", "cl")
    assert "ftp" in r.err
    assert sorted(os.listdir(tmp)) == before
    assert _remote_refs(src) == {}


def test_missing_bucket_names_the_bucket(ds: Ds, sync_env: Path, moto_server: Any) -> None:
    tmp = sync_env
    src, _ = _src(ds, tmp)
    url = "s3://no-such-bucket-4f1e/data"
    ds(src, "remote", "add", "origin", url, "--endpoint-url", moto_server.endpoint_url)
    for args in (("push",), ("fetch",)):
        r = ds.fail(8, src, *args)
        assert "no-such-bucket-4f1e" in r.err, r
    before = sorted(os.listdir(tmp))
    r = ds.fail(8, tmp, "clone", url, "cl", "--endpoint-url", moto_server.endpoint_url)
    assert "no-such-bucket-4f1e" in r.err, r
    r = ds.fail(8, tmp, "get", url, "got", "--endpoint-url", moto_server.endpoint_url)
    assert "no-such-bucket-4f1e" in r.err, r
    assert sorted(set(os.listdir(tmp)) - {"cache"}) == before
    assert _remote_refs(src) == {}
    with Repository.open(src) as repo:
        assert repo.config.get("branch.main.remote") is None


def test_missing_profile_names_the_profile(ds: Ds, sync_env: Path, moto_server: Any) -> None:
    tmp = sync_env
    src, _ = _src(ds, tmp)
    bucket = moto_server.create_bucket()
    ds(
        src,
        "remote",
        "add",
        "origin",
        f"s3://{bucket}/data",
        "--profile",
        "nope",
        "--endpoint-url",
        moto_server.endpoint_url,
    )
    for args in (("push",), ("fetch",)):
        r = ds.fail(8, src, *args)
        assert "'nope'" in r.err and "profile" in r.err, r
    r = ds.fail(
        8, tmp, "clone", f"s3://{bucket}/data", "cl", "--profile", "nope",
        "--endpoint-url", moto_server.endpoint_url,
    )  # fmt: skip
    assert "'nope'" in r.err, r
    assert not (tmp / "cl").exists()
    assert _remote_refs(src) == {}
    assert moto_server.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_unreachable_endpoint_fails_fast(ds: Ds, sync_env: Path) -> None:
    tmp = sync_env
    src, _ = _src(ds, tmp)
    ds(src, "remote", "add", "origin", "s3://bucket/data", "--endpoint-url", "http://127.0.0.1:9")
    started = time.monotonic()
    r = ds.fail(8, src, "push")
    elapsed = time.monotonic() - started
    assert "127.0.0.1:9" in r.err, r
    assert elapsed < 30, f"push: {elapsed:.1f}s"
    started = time.monotonic()
    ds.fail(8, tmp, "clone", "s3://bucket/data", "cl", "--endpoint-url", "http://127.0.0.1:9")
    assert time.monotonic() - started < 30
    assert not (tmp / "cl").exists()
    assert _remote_refs(src) == {}


def test_fetch_from_a_directory_that_is_not_a_remote(ds: Ds, sync_env: Path) -> None:
    tmp = sync_env
    src, _ = _src(ds, tmp)
    empty = tmp / "empty"
    empty.mkdir()
    foreign = tmp / "foreign"
    write(foreign, "notes.txt", "someone else's files\n")
    for path in (empty, foreign, tmp / "missing"):
        r = ds.fail(8, src, "fetch", str(path))
        assert str(path) in r.err, r
        assert "not a dsrepo remote" in r.err or "does not exist" in r.err, r
    ds(src, "remote", "add", "other", str(foreign))
    r = ds.fail(8, src, "fetch", "other")
    assert "not a dsrepo remote" in r.err
    r = ds.fail(8, src, "pull", "other")
    assert "not a dsrepo remote" in r.err
    r = ds.fail(8, tmp, "clone", str(foreign), "cl")
    assert not (tmp / "cl").exists()
    assert _remote_refs(src) == {}
    assert sorted(os.listdir(empty)) == []
    assert snapshot(foreign) == {"notes.txt": b"someone else's files\n"}


def test_push_to_a_foreign_non_empty_directory_is_refused(ds: Ds, sync_env: Path) -> None:
    tmp = sync_env
    src, _ = _src(ds, tmp)
    foreign = tmp / "foreign"
    write(foreign, "notes.txt", "someone else's files\n")
    write(foreign, "sub/more.bin", b"\x00" * 10)
    ds(src, "remote", "add", "origin", str(foreign))
    r = ds.fail(8, src, "push")
    assert "holds other data" in r.err, r
    assert snapshot(foreign) == {
        "notes.txt": b"someone else's files\n",
        "sub/more.bin": b"\x00" * 10,
    }
    assert sorted(os.listdir(foreign)) == ["notes.txt", "sub"]
    assert _remote_refs(src) == {}


def test_push_to_a_foreign_s3_prefix_is_refused(ds: Ds, sync_env: Path, moto_server: Any) -> None:
    tmp = sync_env
    src, _ = _src(ds, tmp)
    bucket = moto_server.create_bucket()
    moto_server.client().put_object(Bucket=bucket, Key="data/report.csv", Body=b"a,b\n")
    ds(
        src,
        "remote",
        "add",
        "origin",
        f"s3://{bucket}/data",
        "--endpoint-url",
        moto_server.endpoint_url,
    )
    r = ds.fail(8, src, "push")
    assert "holds other data" in r.err, r
    keys = [o["Key"] for o in moto_server.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["data/report.csv"]


@pytest.mark.parametrize("remote", ["dir"], indirect=True)  # S3: see test_sync.py
def test_failed_clone_into_an_empty_directory_leaves_it_empty(
    remote: RemoteSpec, ds: Ds, sync_env: Path
) -> None:
    tmp = sync_env
    target = tmp / "target"
    target.mkdir()
    src, files = _src(ds, tmp, remote)
    r = ds.fail(8, tmp, "clone", remote.url, "target", *remote.opts())  # nothing pushed yet
    assert remote.url in r.err or "does not exist" in r.err, r
    assert os.listdir(target) == []  # no half-made .dsrepo blocking the retry
    ds(src, "push")
    ds(tmp, "clone", remote.url, "target", *remote.opts())
    assert snapshot(target) == files


# ---------------------------------------------------------------- remote management


def test_remote_add_remove_rename_set_url_round_trip(ds: Ds, sync_env: Path) -> None:
    tmp = sync_env
    src, _ = _src(ds, tmp)
    ds(src, "remote", "add", "origin", str(tmp / "r1"))
    ds(src, "remote", "add", "backup", "s3://bucket/prefix", "--endpoint-url", "http://127.0.0.1:1")
    ds(src, "remote", "add", "rel", "relative/dir")
    assert ds(src, "remote").out.split() == ["backup", "origin", "rel"]
    lines = ds(src, "remote", "-v").out.splitlines()
    assert lines == [
        "backup\ts3://bucket/prefix",
        f"origin\t{tmp / 'r1'}",
        f"rel\t{src / 'relative' / 'dir'}",  # made absolute
    ]
    with Repository.open(src) as repo:
        assert repo.config.get("remote.backup.endpoint-url") == "http://127.0.0.1:1"

    # errors: one line each, nothing changed
    config = (src / ".dsrepo" / "config").read_bytes()
    ds.fail(5, src, "remote", "add", "origin", str(tmp / "elsewhere"))  # RemoteExists
    ds.fail(2, src, "remote", "remove", "nope")  # RemoteNotFound
    ds.fail(2, src, "remote", "rename", "nope", "other")
    ds.fail(5, src, "remote", "rename", "origin", "backup")
    ds.fail(2, src, "remote", "set-url", "nope", str(tmp))
    r = ds.run(src, "remote", "add", "a/b", str(tmp))
    assert r.code != 0 and len(r.err_lines) == 1, r
    assert (src / ".dsrepo" / "config").read_bytes() == config

    # rename carries the remote-tracking refs and the branch's upstream along
    ds(src, "push", "origin")
    head = ds(src, "rev-parse", "HEAD").out.strip()
    assert list(_remote_refs(src)) == [f"{REMOTES}origin/main"]
    ds(src, "remote", "rename", "origin", "upstream")
    refs = _remote_refs(src)
    assert list(refs) == [f"{REMOTES}upstream/main"]
    assert refs[f"{REMOTES}upstream/main"].hex() == head
    assert ds(src, "remote").out.split() == ["backup", "rel", "upstream"]
    # the branch's upstream follows the rename (status, pull)
    assert "up to date with 'upstream/main'" in ds(src, "status").out
    assert "Already up to date." in ds(src, "pull").out
    ds(src, "remote", "set-url", "upstream", str(tmp / "r2"))
    assert f"upstream\t{tmp / 'r2'}" in ds(src, "remote", "-v").out.splitlines()
    ds(src, "push", "upstream")
    assert (tmp / "r2" / "refs" / "heads" / "main").read_text().strip() == head
    ds(src, "remote", "remove", "upstream")
    ds(src, "remote", "remove", "rel")
    assert ds(src, "remote", "-v").out.splitlines() == ["backup\ts3://bucket/prefix"]
    assert _remote_refs(src) == {}
    assert "upstream" not in _remotes_config(src)
    with Repository.open(src) as repo:  # the upstream of a removed remote is dropped
        assert repo.config.get("branch.main.remote") is None
        assert repo.config.get("branch.main.merge") is None
    assert "upstream" not in ds(src, "status").out
    ds.fail(2, src, "fetch", "upstream")  # RemoteNotFound


@pytest.mark.parametrize("remote", ["dir"], indirect=True)
def test_renamed_remote_still_serves_a_partial_clone(
    remote: RemoteSpec, ds: Ds, sync_env: Path
) -> None:
    tmp = sync_env
    src, files = _src(ds, tmp, remote)
    ds(src, "push")
    ds(tmp, "clone", "--only", "img/*", remote.url, "part")
    part = tmp / "part"
    ds(part, "remote", "rename", "origin", "store")
    ds(part, "checkout", "HEAD", "--only", "big.bin")  # fetched on demand from the renamed remote
    assert (part / "big.bin").read_bytes() == files["big.bin"]
    assert "up to date with 'store/main'" in ds(part, "status").out


# ---------------------------------------------------------------- tracking, prune, dry run, tags


@pytest.mark.parametrize("remote", ["dir"], indirect=True)  # S3: see test_sync.py
def test_status_shows_ahead_and_behind(remote: RemoteSpec, ds: Ds, sync_env: Path) -> None:
    tmp = sync_env
    src, _ = _src(ds, tmp, remote)
    ds(src, "push")
    ds(tmp, "clone", remote.url, "other", *remote.opts())
    other = tmp / "other"
    assert "up to date with 'origin/main'" in ds(src, "status").out
    _commit(ds, src, "mine.txt", "mine\n")
    assert "1 ahead, 0 behind" in ds(src, "status").out
    _commit(ds, other, "theirs.txt", "theirs\n")
    _commit(ds, other, "theirs2.txt", "theirs 2\n")
    ds(other, "push")
    assert "1 ahead, 0 behind" in ds(src, "status").out  # not fetched yet
    ds(src, "fetch")
    assert "1 ahead, 2 behind" in ds(src, "status").out
    ds(src, "pull")
    assert "2 ahead, 0 behind" in ds(src, "status").out  # its commit and the merge
    ds(src, "push")
    assert "up to date with 'origin/main'" in ds(src, "status").out
    ds(other, "fetch")
    assert "0 ahead, 2 behind" in ds(other, "status").out
    ds(other, "pull")
    assert "up to date with 'origin/main'" in ds(other, "status").out
    assert snapshot(other) == snapshot(src)


@pytest.mark.parametrize("remote", ["dir"], indirect=True)  # S3: see test_sync.py
def test_fetch_prune_removes_deleted_remote_branch(
    remote: RemoteSpec, ds: Ds, sync_env: Path
) -> None:
    tmp = sync_env
    src, _ = _src(ds, tmp, remote)
    ds(src, "branch", "feature")
    ds(src, "branch", "keep")
    ds(src, "push", "origin", "main", "feature", "keep")
    ds(tmp, "clone", remote.url, "other", *remote.opts())
    other = tmp / "other"
    want = {f"{REMOTES}origin/{b}" for b in ("feature", "keep", "main")}
    assert set(_remote_refs(other)) == want
    remote.delete("refs/heads/feature")  # deleted on the remote by someone else
    ds(other, "fetch")
    assert set(_remote_refs(other)) == want  # plain fetch keeps it
    out = ds(other, "fetch", "--prune").out
    assert "pruned" in out and "origin/feature" in out, out
    assert set(_remote_refs(other)) == want - {f"{REMOTES}origin/feature"}
    assert "origin/feature" not in ds(other, "branch", "-r").out


@pytest.mark.parametrize("remote", ["dir"], indirect=True)  # S3: see test_sync.py
def test_push_dry_run_sends_nothing(remote: RemoteSpec, ds: Ds, sync_env: Path) -> None:
    tmp = sync_env
    src, _ = _src(ds, tmp, remote)
    ds(src, "push")
    packs = remote.pack_files()
    keys = remote.list_keys()
    old = remote.ref("refs/heads/main")
    new = _commit(ds, src, "new.bin", "x" * 5000)
    ds(src, "branch", "feature")
    out = ds(src, "push", "--dry-run", "origin", "main", "feature").out
    assert out.count("would update") == 2, out
    assert remote.pack_files() == packs and remote.list_keys() == keys
    assert remote.ref("refs/heads/main") == old
    assert _remote_refs(src)[f"{REMOTES}origin/main"].hex() == old
    ds(src, "push", "origin", "main", "feature")
    assert remote.ref("refs/heads/main") == new


def test_push_dry_run_to_a_new_remote(remote: RemoteSpec, ds: Ds, sync_env: Path) -> None:
    tmp = sync_env
    src, _ = _src(ds, tmp, remote)
    r = ds.run(src, "push", "--dry-run")
    assert remote.list_keys() == set()
    assert r.code == 0, r
    assert "would update" in r.out


@pytest.mark.parametrize("where", ["foreign-dir", "foreign-s3-prefix", "missing-bucket"])
def test_push_dry_run_fails_where_push_fails(
    where: str, ds: Ds, sync_env: Path, request: pytest.FixtureRequest
) -> None:
    tmp = sync_env
    src, _ = _src(ds, tmp)
    if where == "foreign-dir":
        write(tmp / "foreign", "notes.txt", "someone else's files\n")
        ds(src, "remote", "add", "origin", str(tmp / "foreign"))
    else:
        server = request.getfixturevalue("moto_server")
        bucket = "no-such-bucket-77aa" if where == "missing-bucket" else server.create_bucket()
        if where == "foreign-s3-prefix":
            server.client().put_object(Bucket=bucket, Key="data/report.csv", Body=b"a,b\n")
        ds(
            src,
            "remote",
            "add",
            "origin",
            f"s3://{bucket}/data",
            "--endpoint-url",
            server.endpoint_url,
        )
    real = ds.fail(8, src, "push")
    dry = ds.run(src, "push", "--dry-run")
    assert dry.code == real.code == 8, (dry, real)
    assert dry.err == real.err


@pytest.mark.parametrize("remote", ["dir"], indirect=True)  # S3: see test_sync.py
def test_push_tags_and_annotated_tags_are_fetched(
    remote: RemoteSpec, ds: Ds, sync_env: Path
) -> None:
    tmp = sync_env
    src, _ = _src(ds, tmp, remote)
    ds(src, "tag", "-a", "v1", "-m", "release one")
    ds(src, "tag", "light")
    ds(src, "push")
    assert remote.ref("refs/tags/v1") is None  # plain push sends no tags
    out = ds(src, "push", "--tags").out
    assert "v1" in out and "light" in out
    with Repository.open(src) as repo:
        v1 = repo.refs.resolve("refs/tags/v1")
        assert v1 is not None and repo.store.object_type(v1) == ObjectType.TAG
        light = repo.refs.resolve("refs/tags/light")
    assert remote.ref("refs/tags/v1") == v1.hex()
    assert light is not None and remote.ref("refs/tags/light") == light.hex()

    ds(tmp, "clone", remote.url, "other", *remote.opts())
    other = tmp / "other"
    with Repository.open(other) as repo:
        assert repo.refs.resolve("refs/tags/v1") == v1
        assert repo.store.get_tag(v1).message.strip() == "release one"
    assert "release one" in ds(other, "show", "v1").out
    assert "v1" in ds(other, "tag").out

    # with an annotated tag on both sides, later pushes and fetches still work
    head = _commit(ds, src, "v2.txt", "two\n")
    ds(src, "tag", "-a", "v2", "-m", "release two")
    ds(src, "push")
    ds(src, "push", "--tags")
    ds(other, "fetch")
    with Repository.open(other) as repo:
        assert repo.refs.resolve(f"{REMOTES}origin/main").hex() == head
        v2 = repo.refs.resolve("refs/tags/v2")
        assert v2 is not None and repo.store.get_tag(v2).message.strip() == "release two"
    ds(other, "pull")
    _commit(ds, other, "v3.txt", "three\n")
    ds(other, "push")
    # a tag that differs locally is kept, and the refusal is said
    ds(src, "fetch")
    ds(src, "tag", "-f", "-a", "v2", "-m", "moved", "HEAD~1")
    out = ds(src, "fetch").out
    assert "rejected" in out and "v2" in out, out
    ds.fail(5, src, "push", "origin", "v2")


def test_get_twice_downloads_nothing_then_tag_with_only(
    remote: RemoteSpec, ds: Ds, sync_env: Path
) -> None:
    tmp = sync_env
    src, v1_files = _src(ds, tmp, remote)
    ds(src, "tag", "-a", "v1", "-m", "first")
    write(src, "img/00.png", b"changed image")
    write(src, "img/new.png", b"new image")
    ds(src, "add", ".")
    ds(src, "commit", "-m", "v2")
    ds(src, "push", "--tags", "origin", "main")
    v2_files = snapshot(src)

    ds(tmp, "get", remote.url, "job1", *remote.opts())
    assert snapshot(tmp / "job1") == v2_files
    cache = tmp / "cache" / ".dsrepo" / "packs"
    packs = sorted(os.listdir(cache))
    assert packs
    ds(tmp, "get", remote.url, "job2", *remote.opts())
    assert snapshot(tmp / "job2") == v2_files
    assert sorted(os.listdir(cache)) == packs  # nothing downloaded the second time
    assert not (tmp / "job1" / ".dsrepo").exists()

    ds(tmp, "get", f"{remote.url}@v1", "job3", "--only", "img/*", *remote.opts())
    assert snapshot(tmp / "job3") == {p: d for p, d in v1_files.items() if p.startswith("img/")}
    # an unknown version is one clear error
    r = ds.fail(4, tmp, "get", f"{remote.url}@nope", "job4", *remote.opts())
    assert "'nope'" in r.err
    assert not (tmp / "job4").exists()


# ---------------------------------------------------------------- conditional writes


def test_push_refuses_ref_updates_without_conditional_writes(
    ds: Ds, sync_env: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp = sync_env
    remote = make_remote("s3", tmp, request)
    src, _ = _src(ds, tmp, remote)
    monkeypatch.setattr(s3_module, "probe_conditional_writes", lambda backend: False)
    r = ds.fail(8, src, "push")
    assert "conditional writes" in r.err and "refusing" in r.err, r
    assert remote.ref("refs/heads/main") is None
    assert not [k for k in remote.list_keys() if k.startswith("refs/")]
    assert _remote_refs(src) == {}


def test_server_ignoring_if_none_match_is_detected(
    ds: Ds, sync_env: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real probe against a server that drops If-None-Match/If-Match (simulated by a client
    that strips the headers before sending)."""
    tmp = sync_env
    remote = make_remote("s3", tmp, request)
    src, _ = _src(ds, tmp, remote)
    real_init = s3_module.S3Backend.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        self.client = _IgnoresConditions(self.client)

    monkeypatch.setattr(s3_module.S3Backend, "__init__", init)
    r = ds.fail(8, src, "push")
    assert "ignores conditional writes" in r.err, r
    assert remote.ref("refs/heads/main") is None
    assert not [k for k in remote.list_keys() if k.startswith(("refs/", "probe/"))]


class _IgnoresConditions:
    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name not in ("put_object", "delete_object"):
            return attr

        def call(**kwargs: Any) -> Any:
            kwargs.pop("IfNoneMatch", None)
            kwargs.pop("IfMatch", None)
            return attr(**kwargs)

        return call
