"""What the server accepts: every pack verified against its index before the index lands, every
ref update checked (a complete, well-typed closure; protected tags and fast-forward-only
branches) before the ref moves — whatever the client sends. Hand-crafted uploads play the
malicious client; the real CLI plays the honest one with --force."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dsrepo.objects import layout
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import (
    Commit,
    ObjectType,
    Signature,
    Structured,
    Tree,
    TreeEntry,
    encode,
    hash_data,
    hash_object,
)
from dsrepo.objects.pack import PackBuilder, PackClass
from dsrepo.remotes.errors import KeyNotFound
from dsrepo.remotes.http import HttpBackend, PermissionDenied, RefUpdateRefused, UploadRefused
from dsrepo.server.config import ServeConfig
from tests.cli.conftest import Cli, assert_one_error_line
from tests.server.conftest import Serve, commit_file
from tests.server.live import LiveServer
from tests.server.test_remote_api import at

WHO = Signature("Mallory", "m@example.com", 1_700_000_000, 0)


def raw_of(obj: Structured | bytes) -> tuple[ObjectType, bytes, ObjectId]:
    if isinstance(obj, bytes):
        return ObjectType.CHUNK, obj, hash_data(obj)
    raw = encode(obj)
    return obj.type, raw, hash_object(obj.type, raw)


def build_pack(objects: list[Structured | bytes]) -> tuple[str, bytes, bytes]:
    """(name, pack bytes, index bytes) of one pack holding ``objects`` (all of one class)."""
    first = raw_of(objects[0])[0]
    builder = PackBuilder(PackClass.for_type(first))
    for obj in objects:
        t, raw, oid = raw_of(obj)
        builder.add(oid, t, raw, len(raw), 0)
    name, pack, index, _ = builder.finish()
    return name, pack, index


def upload(backend: HttpBackend, objects: list[Structured | bytes]) -> str:
    name, pack, index = build_pack(objects)
    backend.put_if_absent(layout.pack_key(name), pack)
    backend.put_if_absent(layout.index_key(name), index)
    return name


def ref_value(oid: ObjectId) -> bytes:
    return f"{oid.hex()}\n".encode()


@pytest.fixture
def seeded(cli: Cli, serve: Serve, tmp_path: Path) -> tuple[LiveServer, HttpBackend, Path]:
    """A served remote holding main (one commit, pushed by the CLI), a writer's backend."""
    server = serve()
    token = server.token("write")
    os.environ["DSREPO_TOKEN"] = token
    work = tmp_path / "alice"
    cli("init", "-q", str(work))
    commit_file(cli, work, "a.txt", "alpha\n", "first")
    with at(work):
        cli("remote", "add", "origin", server.url)
        cli("push")
    return server, HttpBackend(server.url, token), work


@pytest.fixture(autouse=True)
def _no_token_left() -> object:
    yield
    os.environ.pop("DSREPO_TOKEN", None)


def server_refs(backend: HttpBackend) -> dict[str, bytes]:
    return {i.key: backend.get(i.key) for i in backend.list("refs/")}


# ---------------------------------------------------------------- packs


def test_corrupt_pack_is_refused_and_deleted(seeded: tuple[LiveServer, HttpBackend, Path]) -> None:
    _, backend, _ = seeded
    chunk = b"honest bytes " * 100
    name, pack, index = build_pack([chunk])
    bad = bytearray(pack)
    bad[-5] ^= 0xFF  # one flipped bit in the payload: the index still matches the framing
    assert backend.put_if_absent(layout.pack_key(name), bytes(bad)) is True
    with pytest.raises(UploadRefused, match="content does not match its id") as info:
        backend.put_if_absent(layout.index_key(name), index)
    assert "\n" not in str(info.value)
    with pytest.raises(KeyNotFound):
        backend.stat(layout.pack_key(name))  # the orphan is gone
    with pytest.raises(KeyNotFound):
        backend.stat(layout.index_key(name))
    # the honest pack goes through afterwards
    assert upload(backend, [chunk]) == name
    assert backend.stat(layout.index_key(name)).size == len(index)


def test_a_hostile_orphan_pack_cannot_block_the_honest_one(
    seeded: tuple[LiveServer, HttpBackend, Path],
) -> None:
    _, backend, _ = seeded
    name, pack, index = build_pack([b"the real data " * 50])
    assert backend.put_if_absent(layout.pack_key(name), pack[:-1] + b"\0") is True
    assert upload(backend, [b"the real data " * 50]) == name  # replaces the unindexed pack
    assert backend.get(layout.pack_key(name)) == pack
    assert backend.get(layout.index_key(name)) == index
    assert backend.put_if_absent(layout.pack_key(name), pack[:-1] + b"\0") is False  # indexed


def test_index_without_pack_and_garbage_index_are_refused(
    seeded: tuple[LiveServer, HttpBackend, Path],
) -> None:
    _, backend, _ = seeded
    name, _pack, index = build_pack([b"never sent"])
    with pytest.raises(UploadRefused, match="before the pack"):
        backend.put_if_absent(layout.index_key(name), index)
    name2, pack2, _ = build_pack([b"other"])
    backend.put_if_absent(layout.pack_key(name2), pack2)
    with pytest.raises(UploadRefused):
        backend.put_if_absent(layout.index_key(name2), b"\0" * 100)
    with pytest.raises(UploadRefused):
        backend.put_if_absent(layout.index_key(name2), index)  # another pack's index
    assert not [i for i in backend.list("packs/") if i.key.endswith(".idx") and name in i.key]


def test_tree_with_dotdot_name_never_lands(seeded: tuple[LiveServer, HttpBackend, Path]) -> None:
    _, backend, _ = seeded
    before = server_refs(backend)
    payload = b"#!/bin/sh\necho owned\n"
    evil = Tree(entries=(TreeEntry("..", EntryKind.FILE, len(payload), hash_data(payload)),))
    _, _, tree_id = raw_of(evil)
    commit = Commit(tree_id, (), WHO, WHO, "evil\n")
    _, _, commit_id = raw_of(commit)
    upload(backend, [payload])
    with pytest.raises(UploadRefused, match="corrupt tree"):
        upload(backend, [evil, commit])
    with pytest.raises(RefUpdateRefused, match="missing"):
        backend.compare_and_swap("refs/heads/evil", None, ref_value(commit_id))
    assert server_refs(backend) == before


def test_refs_to_missing_or_mistyped_objects_are_refused(
    seeded: tuple[LiveServer, HttpBackend, Path],
) -> None:
    _, backend, _ = seeded
    before = server_refs(backend)
    main = ObjectId(bytes.fromhex(before["refs/heads/main"].decode().strip()))

    # a commit and tree that arrive, naming data that never does
    absent = b"data the client never sends"
    tree = Tree(entries=(TreeEntry("f.bin", EntryKind.FILE, len(absent), hash_data(absent)),))
    commit = Commit(raw_of(tree)[2], (main,), WHO, WHO, "incomplete\n")
    upload(backend, [tree, commit])
    with pytest.raises(RefUpdateRefused, match=r"chunk [0-9a-f]+ is missing"):
        backend.compare_and_swap(
            "refs/heads/main", before["refs/heads/main"], ref_value(raw_of(commit)[2])
        )

    # a file entry whose id is a commit (type confusion), and a ref naming a chunk
    confused = Tree(entries=(TreeEntry("x", EntryKind.FILE, 10, main),))
    commit2 = Commit(raw_of(confused)[2], (main,), WHO, WHO, "confused\n")
    upload(backend, [confused, commit2])
    with pytest.raises(RefUpdateRefused, match="not a chunk"):
        backend.compare_and_swap("refs/heads/x", None, ref_value(raw_of(commit2)[2]))
    upload(backend, [b"just a chunk"])
    with pytest.raises(RefUpdateRefused, match="not a commit"):
        backend.compare_and_swap("refs/heads/y", None, ref_value(hash_data(b"just a chunk")))
    # a ref to nothing at all
    with pytest.raises(RefUpdateRefused, match="missing"):
        backend.compare_and_swap("refs/tags/ghost", None, ref_value(ObjectId(b"\1" * 32)))
    # malformed values and names
    with pytest.raises(UploadRefused, match="64 lowercase hex"):
        backend.compare_and_swap("refs/heads/z", None, b"ref: refs/heads/main\n")
    with pytest.raises(RefUpdateRefused, match="invalid ref name"):
        backend.compare_and_swap("refs/heads/a..b", None, before["refs/heads/main"])
    assert server_refs(backend) == before


def test_server_managed_keys_are_not_writable(seeded: tuple[LiveServer, HttpBackend, Path]) -> None:
    server, backend, _ = seeded
    fmt = backend.get("format")
    assert backend.put_if_absent("format", fmt) is False
    with pytest.raises(UploadRefused, match="format marker"):
        backend.put_if_absent("format", b"{}")
    for call in (
        lambda: backend.put("format", fmt),
        lambda: backend.put("HEAD", b"ref: refs/heads/main\n"),
        lambda: backend.put_if_absent("serve/tokens.json", b"{}"),
        lambda: backend.put_if_absent("hooks/post-receive", b"#!/bin/sh\n"),
        lambda: backend.compare_and_swap("refs/remotes/x/main", None, b"0" * 64 + b"\n"),
        lambda: backend.put("refs/heads/main", b"0" * 64 + b"\n"),
        lambda: backend.delete("refs/heads/main"),
        lambda: backend.delete(backend.list("packs/")[0].key),
    ):
        with pytest.raises(PermissionDenied):
            call()
    with pytest.raises(KeyNotFound):
        backend.get("serve/tokens.json")
    assert (server.root / "serve" / "tokens.json").stat().st_mode & 0o077 == 0


def test_read_token_cannot_write_anything(seeded: tuple[LiveServer, HttpBackend, Path]) -> None:
    server, _, _ = seeded
    reader = HttpBackend(server.url, server.token("read"))
    name, pack, _ = build_pack([b"x"])
    for call in (
        lambda: reader.put_if_absent(layout.pack_key(name), pack),
        lambda: reader.compare_and_swap("refs/heads/new", None, b"0" * 64 + b"\n"),
        lambda: reader.delete("refs/heads/main"),
    ):
        with pytest.raises(PermissionDenied, match="read scope"):
            call()
    assert reader.list("refs/")


# ---------------------------------------------------------------- protected refs


def test_tags_are_created_never_moved_or_deleted(
    cli: Cli, seeded: tuple[LiveServer, HttpBackend, Path]
) -> None:
    _, backend, work = seeded
    with at(work):
        cli("tag", "v1")
        cli("push", "origin", "v1")
        commit_file(cli, work, "b.txt", "b\n", "second")
        cli("push")
        cli("tag", "-f", "v1", "HEAD")
        r = cli.run("push", "--force", "origin", "v1")
    assert r.code == 5, r
    assert_one_error_line(r)
    assert "tag v1 is protected" in r.err
    tag = backend.get("refs/tags/v1")
    with pytest.raises(RefUpdateRefused, match="protected"):
        backend.compare_and_swap("refs/tags/v1", tag, None)
    assert backend.get("refs/tags/v1") == tag


def test_non_fast_forward_is_refused_even_with_force(
    cli: Cli, seeded: tuple[LiveServer, HttpBackend, Path]
) -> None:
    _, backend, work = seeded
    with at(work):
        first = cli("rev-parse", "HEAD").out.strip()
        commit_file(cli, work, "b.txt", "b\n", "second")
        cli("push")
        pushed = backend.get("refs/heads/main")
        cli("update-ref", "refs/heads/main", first)
        cli("commit", "-q", "--allow-empty", "-m", "rewritten history")
        r = cli.run("push", "--force")
    assert r.code == 5, r
    assert_one_error_line(r)
    assert "accepts only fast-forwards" in r.err
    assert backend.get("refs/heads/main") == pushed
    with pytest.raises(RefUpdateRefused, match="cannot be deleted"):
        backend.compare_and_swap("refs/heads/main", pushed, None)


def test_configuration_relaxes_the_rules(cli: Cli, serve: Serve, tmp_path: Path) -> None:
    config = ServeConfig(fast_forward_only=("release/*",), protected_tags=("v*",))
    server = serve(config=config)
    os.environ["DSREPO_TOKEN"] = server.token("write")
    work = tmp_path / "w"
    cli("init", "-q", str(work))
    first = commit_file(cli, work, "a.txt", "a\n", "first")
    with at(work):
        cli("remote", "add", "origin", server.url)
        cli("tag", "nightly")
        cli("tag", "v1")
        cli("branch", "release/1")
        cli("push", "origin", "main", "nightly", "v1", "release/1")
        second = commit_file(cli, work, "b.txt", "b\n", "second")
        cli("update-ref", "refs/heads/release/1", second)
        cli("push", "origin", "main", "release/1")
        cli("tag", "-f", "nightly")
        cli("tag", "-f", "v1")
        cli("update-ref", "refs/heads/main", first)
        cli("push", "--force", "origin", "main", "nightly")  # main may be rewound
        assert cli.run("push", "--force", "origin", "v1").code == 5
        cli("update-ref", "refs/heads/release/1", first)
        assert cli.run("push", "--force", "origin", "release/1").code == 5
