"""Hostile remotes: trees crafted byte by byte (bypassing every validating writer) with entries
named ``..``, ``.dsrepo``, ``.DSREPO``, ``a/b``, symlinks leading outside, and files under
symlinked directories. clone, fetch, checkout, pull and get must write nothing outside the
working copy (or the target directory), must not touch ``.dsrepo``, and must fail with one clear
error line."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from dsrepo.dvcs.refnames import REMOTES
from dsrepo.dvcs.repository import Repository
from dsrepo.objects import layout
from dsrepo.objects.chunking import ChunkerParams, RepoFormat
from dsrepo.objects.ids import ObjectId, hash_data
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import (
    Commit,
    ObjectType,
    Signature,
    Tree,
    TreeEntry,
    encode,
    hash_object,
)
from dsrepo.objects.pack import PackBuilder, PackClass
from dsrepo.objects.store import ObjectStore
from dsrepo.remotes.base import Backend
from tests.sync_fixtures import (  # noqa: F401  (fixtures)
    Ds,
    RemoteSpec,
    ds_fixture,
    make_remote,
    snapshot,
    sync_env_fixture,
    write,
)

EVIL_CONFIG = b'[core]\n\tpromisor = "pwned"\n[remote "origin"]\n\turl = /pwned\n'
SIG = Signature("Mallory", "mallory@example.com", 1_700_000_000, 0)


class Forge:
    """Writes objects into a remote as raw pack records: nothing here validates names."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.meta = PackBuilder(PackClass.META)
        self.data = PackBuilder(PackClass.DATA)

    def blob(self, data: bytes) -> ObjectId:
        oid = hash_data(data)
        self.data.add(oid, ObjectType.CHUNK, data, len(data), 0)
        return oid

    def _structured(self, type_: ObjectType, raw: bytes) -> ObjectId:
        oid = hash_object(type_, raw)
        self.meta.add(oid, type_, raw, len(raw), 0)
        return oid

    def file(self, name: str, data: bytes) -> TreeEntry:
        return TreeEntry(name, EntryKind.FILE, len(data), self.blob(data))

    def symlink(self, name: str, target: str) -> TreeEntry:
        raw = target.encode()
        return TreeEntry(name, EntryKind.SYMLINK, len(raw), self.blob(raw))

    def tree(self, entries: list[TreeEntry]) -> ObjectId:
        ordered = tuple(sorted(entries, key=lambda e: e.name.encode()))
        return self._structured(ObjectType.TREE, encode(Tree(entries=ordered)))

    def dir(self, name: str, entries: list[TreeEntry]) -> TreeEntry:
        return TreeEntry(name, EntryKind.TREE, sum(e.size for e in entries), self.tree(entries))

    def commit(self, entries: list[TreeEntry], parents: tuple[ObjectId, ...] = ()) -> ObjectId:
        raw = encode(Commit(self.tree(entries), parents, SIG, SIG, "totally harmless", {}))
        return self._structured(ObjectType.COMMIT, raw)

    def publish(self, refs: dict[str, ObjectId]) -> None:
        """Upload the packs at their layout keys (pack, then index), then set the refs."""
        for builder in (self.data, self.meta):
            if builder.entries:
                name, pack, index, _ = builder.finish()
                self.backend.put(layout.pack_key(name), pack)
                self.backend.put(layout.index_key(name), index)
        self.data = PackBuilder(PackClass.DATA)
        self.meta = PackBuilder(PackClass.META)
        for ref, oid in refs.items():
            self.backend.put(ref, f"{oid.hex()}\n".encode())


def forge_remote(remote: RemoteSpec) -> Forge:
    if remote.kind == "dir":
        assert remote.path is not None
        remote.path.mkdir(parents=True, exist_ok=True)
    backend = remote.backend()
    ObjectStore.initialize(backend, RepoFormat(chunker=ChunkerParams().validate()))
    return Forge(backend)


# Entries with names no tree may hold: fetching them is refused (they never reach the disk).
BAD_NAMES: dict[str, Callable[[Forge], list[TreeEntry]]] = {
    "dotdot-dir": lambda f: [f.dir("..", [f.file("escaped.txt", b"pwned\n")])],
    "dotdot-file": lambda f: [f.file("..", b"pwned\n")],
    "dsrepo-dir": lambda f: [f.dir(".dsrepo", [f.file("config", EVIL_CONFIG)])],
    "DSREPO-dir": lambda f: [f.dir(".DSREPO", [f.file("config", EVIL_CONFIG)])],
    "slash-name": lambda f: [f.file("a/b", b"pwned\n")],
    "slash-dotdot": lambda f: [f.file("../../escaped.txt", b"pwned\n")],
}
# Symlinks leading outside: valid names, refused when materialized.
OUTSIDE_LINKS: dict[str, Callable[[Forge], list[TreeEntry]]] = {
    "link-abs-etc": lambda f: [f.symlink("link", "/etc")],
    "link-relative-up": lambda f: [f.symlink("link", "../../outside")],
    "nested-link-up": lambda f: [f.dir("sub", [f.symlink("link", "../../../outside")])],
}
ALL_CASES = {**BAD_NAMES, **OUTSIDE_LINKS}


class World:
    """The directories around the clone, to prove nothing outside it changed."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.clones = tmp / "clones"
        self.clones.mkdir()
        (tmp / "cache").mkdir(exist_ok=True)  # $DSREPO_CACHE_DIR, used by get
        self.outside = tmp / "outside"
        self.outside.mkdir()
        write(self.outside, "marker.txt", "untouched\n")
        self.etc = sorted(os.listdir("/etc"))
        self.before = self.listing()

    def listing(self) -> dict[str, list[str]]:
        return {
            str(d.relative_to(self.tmp)): sorted(os.listdir(d))
            for d in (self.tmp, self.clones, self.outside)
        }

    def check(self, allow_new_in_clones: frozenset[str] | set[str] = frozenset()) -> None:
        now = self.listing()
        now["clones"] = [n for n in now["clones"] if n not in allow_new_in_clones]
        assert now == self.before
        assert snapshot(self.outside) == {"marker.txt": b"untouched\n"}
        assert sorted(os.listdir("/etc")) == self.etc
        assert not (self.tmp / "escaped.txt").exists()
        assert not (self.tmp.parent / "escaped.txt").exists()


def _benign(f: Forge) -> list[TreeEntry]:
    return [f.file("ok.txt", b"fine\n"), f.dir("data", [f.file("x.csv", b"1,2\n")])]


# ---------------------------------------------------------------- clone of a hostile tip


@pytest.mark.parametrize("case", sorted(ALL_CASES))
def test_clone_of_hostile_tree_writes_nothing_outside(
    case: str, ds: Ds, sync_env: Path, request: pytest.FixtureRequest
) -> None:
    tmp = sync_env
    world = World(tmp)
    remote = make_remote("dir", tmp / "remotes", request, case)
    # the remote directory is not in the listings we compare: create it first
    f = forge_remote(remote)
    tip = f.commit(_benign(f) + ALL_CASES[case](f))
    f.publish({"refs/heads/main": tip})
    world.before = world.listing()

    r = ds.run(world.clones, "clone", remote.url, "victim")
    assert r.code in (7, 9), r  # CorruptObject / FormatError for names, PathError for links
    assert len(r.err_lines) == 1 and r.err_lines[0].startswith("dsrepo: error: "), r
    if case in BAD_NAMES:
        assert "name" in r.err, r
    else:
        assert "symlink" in r.err and "outside" in r.err, r
    assert not (world.clones / "victim").exists()
    world.check()


def test_get_of_hostile_tree_writes_nothing_outside(
    ds: Ds, sync_env: Path, request: pytest.FixtureRequest
) -> None:
    tmp = sync_env
    world = World(tmp)
    for case, build in sorted(ALL_CASES.items()):
        remote = make_remote("dir", tmp / "remotes", request, case)
        f = forge_remote(remote)
        f.publish({"refs/heads/main": f.commit(_benign(f) + build(f))})
        world.before = world.listing()
        r = ds.run(world.clones, "get", remote.url, f"got-{case}")
        assert r.code != 0, (case, r)
        assert len(r.err_lines) == 1 and r.err_lines[0].startswith("dsrepo: error: "), r
        world.check(allow_new_in_clones={f"got-{case}"})
        got = world.clones / f"got-{case}"
        if got.exists():  # whatever was written stays inside and is no link out
            for dirpath, dirs, files in os.walk(got):
                for name in dirs + files:
                    full = Path(dirpath, name)
                    assert not full.is_symlink(), full
                    assert os.path.realpath(full).startswith(str(got.resolve()) + os.sep)


# ---------------------------------------------------------------- fetch + checkout / pull


@pytest.fixture
def victim(
    ds: Ds, sync_env: Path, request: pytest.FixtureRequest
) -> tuple[Path, RemoteSpec, Forge, ObjectId, World]:
    """A clone of an innocent remote the attacker later rewrites."""
    tmp = sync_env
    world = World(tmp)
    remote = make_remote("dir", tmp / "remotes", request, "innocent")
    f = forge_remote(remote)
    base = f.commit(_benign(f))
    f.publish({"refs/heads/main": base})
    ds(world.clones, "clone", remote.url, "victim")
    world.before = world.listing()
    return world.clones / "victim", remote, f, base, world


@pytest.mark.parametrize("case", sorted(ALL_CASES))
def test_fetch_and_checkout_of_hostile_branch(
    case: str, ds: Ds, victim: tuple[Path, RemoteSpec, Forge, ObjectId, World]
) -> None:
    wc, _remote, f, base, world = victim
    f.publish({"refs/heads/evil": f.commit(_benign(f) + ALL_CASES[case](f), (base,))})
    config = (wc / ".dsrepo" / "config").read_bytes()
    files = snapshot(wc)
    r = ds.run(wc, "fetch")
    if case in BAD_NAMES:
        assert r.code == 7, r
        assert len(r.err_lines) == 1 and "name" in r.err, r
        with Repository.open(wc) as repo:
            assert repo.refs.resolve(f"{REMOTES}origin/evil") is None
    else:
        assert r.code == 0, r
        r = ds.run(wc, "checkout", "origin/evil")
        assert r.code == 9, r
        assert len(r.err_lines) == 1 and "outside" in r.err, r
        r = ds.run(wc, "checkout", "--into", str(world.clones / "into"), "origin/evil")
        assert r.code == 9, r
        assert not (world.clones / "into" / "link").exists()
        assert not (world.clones / "into" / "sub" / "link").exists()
        if (world.clones / "into").exists():
            shutil.rmtree(world.clones / "into")
    with Repository.open(wc) as repo:
        assert repo.head_commit() == base
        assert repo.head_branch() == "refs/heads/main"
    assert (wc / ".dsrepo" / "config").read_bytes() == config
    assert snapshot(wc) == files
    assert not (wc / "link").is_symlink()
    ds(wc, "fsck")
    world.check()


def test_pull_into_untracked_symlinked_directory_writes_nothing_through_it(
    ds: Ds, victim: tuple[Path, RemoteSpec, Forge, ObjectId, World]
) -> None:
    """A symlink ``d -> OUTSIDE`` already in the working copy (untracked); the remote's next
    commit has ``d/evil.txt``. Nothing may be created through the link."""
    wc, _remote, f, base, world = victim
    os.symlink(world.outside, wc / "d")
    world.before = world.listing()
    tip = f.commit([*_benign(f), f.dir("d", [f.file("evil.txt", b"pwned\n")])], (base,))
    f.publish({"refs/heads/main": tip})
    r = ds.run(wc, "pull")
    assert r.code != 0, r
    assert len(r.err_lines) == 1 and r.err_lines[0].startswith("dsrepo: error: "), r
    assert "'d'" in r.err, r
    assert not (world.outside / "evil.txt").exists()
    with Repository.open(wc) as repo:
        assert repo.head_commit() == base  # HEAD did not move
    assert os.readlink(wc / "d") == str(world.outside)
    world.check()


def test_symlinked_directory_replaced_by_directory_across_commits(
    ds: Ds, victim: tuple[Path, RemoteSpec, Forge, ObjectId, World]
) -> None:
    """Commit 1 has ``d -> sub`` (a link inside the working copy, allowed); commit 2 turns ``d``
    into a directory holding ``evil.txt``. Pulling commit 2 must replace the link, not write
    ``sub/evil.txt`` through it."""
    wc, _remote, f, base, world = victim
    sub = f.dir("sub", [f.file("keep.txt", b"keep\n")])
    c1 = f.commit([*_benign(f), sub, f.symlink("d", "sub")], (base,))
    f.publish({"refs/heads/main": c1})
    ds(wc, "pull")
    assert os.readlink(wc / "d") == "sub"
    c2 = f.commit([*_benign(f), sub, f.dir("d", [f.file("evil.txt", b"inside\n")])], (c1,))
    f.publish({"refs/heads/main": c2})
    ds(wc, "pull")
    assert not (wc / "d").is_symlink()
    assert (wc / "d" / "evil.txt").read_bytes() == b"inside\n"
    assert sorted(os.listdir(wc / "sub")) == ["keep.txt"]
    assert _clean(ds(wc, "status").out)
    world.check()


def _clean(out: str) -> bool:
    return "nothing to commit, working tree clean" in out and "Untracked" not in out


def test_hostile_tree_on_s3_remote_is_refused(
    ds: Ds, sync_env: Path, request: pytest.FixtureRequest
) -> None:
    tmp = sync_env
    world = World(tmp)
    names = make_remote("s3", tmp, request, "names")
    f = forge_remote(names)
    f.publish(
        {
            "refs/heads/main": f.commit(
                [*_benign(f), f.dir(".dsrepo", [f.file("config", EVIL_CONFIG)])]
            )
        }
    )
    links = make_remote("s3", tmp, request, "links")
    f = forge_remote(links)
    f.publish({"refs/heads/main": f.commit([*_benign(f), f.symlink("link", "../../outside")])})
    world.before = world.listing()
    r = ds.fail(7, world.clones, "clone", names.url, "victim", *names.opts())
    assert ".dsrepo" in r.err
    r = ds.fail(9, world.clones, "clone", links.url, "victim", *links.opts())
    assert "outside" in r.err
    world.check()


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            "name-over-255-bytes",
            id="long-name",
        ),
        pytest.param("symlink-target-over-4096-bytes", id="long-link"),
    ],
)
def test_names_the_filesystem_refuses_give_a_clean_error(
    case: str, sync_env: Path, request: pytest.FixtureRequest
) -> None:
    import subprocess
    import sys

    tmp = sync_env
    world = World(tmp)
    remote = make_remote("dir", tmp / "remotes", request, case)
    f = forge_remote(remote)
    extra = (
        [f.file("x" * 300, b"long\n")] if case.startswith("name") else [f.symlink("l", "a/" * 3000)]
    )
    f.publish({"refs/heads/main": f.commit(_benign(f) + extra)})
    world.before = world.listing()
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dsrepo"), "clone", remote.url, "victim"],
        cwd=world.clones,
        capture_output=True,
        text=True,
        timeout=60,
    )
    world.check()
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dsrepo: error: "), proc.stderr[:300]
    if case.startswith("name"):  # refused on receipt: names are at most 255 bytes
        assert proc.returncode == 8 and "is damaged" in lines[0], proc.stderr[:300]
        assert "name is 300 bytes long (at most 255)" in lines[0], proc.stderr[:300]
    else:
        assert proc.returncode in (7, 9), proc.returncode
