"""Objects that hash correctly but lie about what they name: a file entry naming a tree, a tree
entry naming a chunk, manifests and chunks whose sizes disagree with their entries, refs naming
missing objects or chunks, trees beyond the path limits. fetch, clone and get refuse each with
one message naming the damage before any ref moves (the repository and the get cache stay
fsck-clean); fsck reports each when it is planted locally and referenced."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from dsrepo.dvcs.commits import write_tree
from dsrepo.dvcs.errors import IntegrityError, PathError, RemoteError
from dsrepo.dvcs.fsck import fsck
from dsrepo.dvcs.repository import Repository
from dsrepo.objects.ids import ObjectId, hash_data
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.locindex import Location
from dsrepo.objects.model import Manifest, ObjectType, Tag, TreeEntry, encode, hash_object
from dsrepo.objects.store import ObjectStore
from tests.dvcs.test_sync_hostile import SIG, Forge, forge_remote
from tests.sync_fixtures import (  # noqa: F401  (fixtures)
    Ds,
    ds_fixture,
    make_remote,
    sync_env_fixture,
)

Parents = tuple[ObjectId, ...]


class Planter(Forge):
    """The same forgeries, written into a local store (for fsck): nothing here validates."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def blob(self, data: bytes) -> ObjectId:
        return self.store.put_chunk(data)

    def _structured(self, type_: ObjectType, raw: bytes) -> ObjectId:
        oid = hash_object(type_, raw)
        self.store.put_raw(type_, raw, oid)
        return oid


def _manifest(f: Forge, content: bytes, size: int, chunks: list[tuple[bytes, int]]) -> ObjectId:
    raw = encode(Manifest(hash_data(content), size, tuple((f.blob(c), n) for c, n in chunks)))
    return f._structured(ObjectType.MANIFEST, raw)


def _benign(f: Forge) -> list[TreeEntry]:
    return [f.file("ok.txt", b"fine\n"), f.dir("data", [f.file("x.csv", b"1,2\n")])]


def _with(build: Callable[[Forge], list[TreeEntry]]) -> Callable[[Forge, Parents], ObjectId]:
    """A case whose damage is in the tree of a commit on top of ``parents``."""
    return lambda f, parents: f.commit(_benign(f) + build(f), parents)


def _deep(f: Forge, depth: int) -> list[TreeEntry]:
    entry = f.file("leaf", b"deep\n")
    for _ in range(depth - 1):
        entry = f.dir("d", [entry])
    return [entry]


def _long_path(f: Forge) -> list[TreeEntry]:
    entry = f.file("leaf", b"far\n")
    for i in range(20):  # 20 names of 250 bytes: every name and the depth are fine, the path not
        entry = f.dir(f"{i:02d}" + "p" * 248, [entry])
    return [entry]


def _tag_lie(f: Forge, parents: Parents) -> ObjectId:
    commit = f.commit(_benign(f), parents)
    raw = encode(Tag(commit, ObjectType.TREE, "v1", SIG, "a tree, honest\n"))
    return f._structured(ObjectType.TAG, raw)


HELLO = b"hello\n"  # 6-byte chunks of a 12-byte "large" file
WORLD = b"world\n"
CASES: dict[str, tuple[Callable[[Forge, Parents], ObjectId], list[str]]] = {
    "file-names-tree": (
        _with(lambda f: [TreeEntry("lie", EntryKind.FILE, 5, f.tree([f.file("a", b"x\n")]))]),
        ["path 'lie': names tree", "not a chunk"],
    ),
    "tree-entry-names-chunk": (
        _with(lambda f: [TreeEntry("dir", EntryKind.TREE, 5, f.blob(b"hello"))]),
        ["path 'dir': names chunk", "not a tree"],
    ),
    "manifest-names-tree": (
        _with(lambda f: [TreeEntry("big.bin", EntryKind.FILE, 2, hash_data(b"x\n"), f.tree([]))]),
        ["path 'big.bin': names tree", "not a manifest"],
    ),
    "manifest-content-id-lies": (
        _with(
            lambda f: [
                TreeEntry(
                    "big.bin",
                    EntryKind.FILE,
                    12,
                    hash_data(HELLO * 2),
                    _manifest(f, b"something else", 12, [(HELLO, 6), (WORLD, 6)]),
                )
            ]
        ),
        ["path 'big.bin': manifest", "describes content"],
    ),
    "manifest-size-lies": (
        _with(
            lambda f: [
                TreeEntry(
                    "big.bin",
                    EntryKind.FILE,
                    13,
                    hash_data(HELLO * 2),
                    _manifest(f, HELLO * 2, 12, [(HELLO, 6), (HELLO, 6)]),
                )
            ]
        ),
        ["describes 12 bytes, the entry says 13"],
    ),
    "manifest-chunk-lengths-lie": (
        _with(
            lambda f: [
                TreeEntry(
                    "big.bin",
                    EntryKind.FILE,
                    13,
                    hash_data(HELLO * 2),
                    _manifest(f, HELLO * 2, 13, [(HELLO, 6), (WORLD, 7)]),
                )
            ]
        ),
        [f"chunk {hash_data(WORLD).hex()} is 6 bytes, manifest", "says 7"],
    ),
    "chunk-size-lies": (
        _with(lambda f: [TreeEntry("short", EntryKind.FILE, 10, f.blob(b"five!"))]),
        ["path 'short': chunk", "is 5 bytes, the entry says 10"],
    ),
    "tree-size-lies": (
        _with(lambda f: [TreeEntry("dir", EntryKind.TREE, 999, f.tree([f.file("a", b"abc\n")]))]),
        ["path 'dir': tree", "holds 4 bytes, its entry says 999"],
    ),
    "parent-is-a-tree": (
        lambda f, parents: f.commit(_benign(f), (*parents, f.tree([f.file("p", b"p\n")]))),
        ["parent of commit", "names tree", "not a commit"],
    ),
    "tag-type-lies": (_tag_lie, ["says its target", "is a tree, it is a commit"]),
    "ref-names-missing-object": (
        lambda f, parents: hash_data(b"never stored"),
        [f"main: names object {hash_data(b'never stored').hex()}"],
    ),
    "ref-names-chunk": (lambda f, parents: f.blob(b"just data\n"), ["main: names chunk"]),
    "ref-names-tree": (lambda f, parents: f.tree(_benign(f)), ["main: names tree"]),
    "10000-deep-tree": (_with(lambda f: _deep(f, 10_000)), ["more than 256 levels deep"]),
    "300-byte-name": (
        _with(lambda f: [f.file("n" * 300, b"long\n")]),
        ["name is 300 bytes long (at most 255)"],
    ),
    "5000-byte-path": (_with(_long_path), ["path is 4266 bytes long (at most 4096)"]),
}


def _assert_names(message: str, fragments: list[str]) -> None:
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


# ---------------------------------------------------------------- on receipt


@pytest.mark.parametrize("case", sorted(CASES))
def test_fetch_clone_and_get_refuse_damage_before_any_ref_moves(
    case: str, sync_env: Path, request: pytest.FixtureRequest
) -> None:
    build, fragments = CASES[case]
    remote = make_remote("dir", sync_env / "remotes", request, case)
    f = forge_remote(remote)
    base = f.commit(_benign(f))
    f.publish({"refs/heads/main": base})
    victim = Repository.clone(remote.url, sync_env / "victim")
    refs_before = victim.refs.list("refs/")
    f.publish({"refs/heads/main": build(f, (base,))})

    with pytest.raises(RemoteError) as fetched:  # fetch into a clone
        victim.fetch("origin")
    assert str(fetched.value).startswith(f"the remote {remote.url} is damaged: ")
    _assert_names(str(fetched.value), fragments)
    assert victim.refs.list("refs/") == refs_before
    report = fsck(victim)
    assert report.ok, report.problems
    victim.close()

    with pytest.raises(RemoteError) as cloned:  # a fresh clone leaves nothing behind
        Repository.clone(remote.url, sync_env / "clone")
    _assert_names(str(cloned.value), fragments)
    assert not (sync_env / "clone").exists()

    with pytest.raises(RemoteError) as got:  # get: no cache ref names what was refused
        Repository.get(remote.url, sync_env / "got")
    _assert_names(str(got.value), fragments)
    assert not (sync_env / "got").exists()
    with Repository.open(sync_env / "cache") as cache:
        assert cache.refs.list("refs/") == {}
        report = fsck(cache)
        assert report.ok, report.problems


def test_a_damaged_fetch_is_one_error_line(
    ds: Ds, sync_env: Path, request: pytest.FixtureRequest
) -> None:
    remote = make_remote("dir", sync_env / "remotes", request, "cli")
    f = forge_remote(remote)
    base = f.commit(_benign(f))
    f.publish({"refs/heads/main": base})
    ds(sync_env, "clone", remote.url, "victim")
    f.publish({"refs/heads/main": CASES["file-names-tree"][0](f, (base,))})
    r = ds.fail(8, sync_env / "victim", "fetch")
    assert "is damaged" in r.err and "names tree" in r.err, r
    r = ds.fail(8, sync_env, "get", remote.url, "got")
    assert "is damaged" in r.err, r
    ds(sync_env / "victim", "fsck")


def test_the_receiving_check_costs_what_changed(
    tmp_path: Path, sync_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A one-file change to a fetched history: only the new trees are read, only the changed
    file's chunk is looked up."""
    from dsrepo.dvcs.integrity import Closure

    repo = Repository.init(tmp_path / "w")
    for d in ("a", "b"):
        for i in range(30):
            p = repo.root / d / f"{i}.txt"
            p.parent.mkdir(exist_ok=True)
            p.write_text(f"{d}{i}")
    repo.add(".")
    first = repo.commit("v1").id
    (repo.root / "b" / "7.txt").write_text("changed")
    repo.add(".")
    second = repo.commit("v2").id
    asked: list[ObjectId] = []
    locate_many = repo.store.locate_many

    def spy(oids: Sequence[ObjectId]) -> dict[ObjectId, Location]:
        asked.extend(oids)
        return locate_many(oids)

    closure = Closure(repo.store, stop={first.hex()}, missing_ok=False)
    closure.add_root("refs/heads/main", second)
    closure.run()
    monkeypatch.setattr(repo.store, "locate_many", spy)
    assert closure.check_chunks() == []
    assert asked == [hash_data(b"changed")]
    assert [t for _, t in closure.meta].count(ObjectType.TREE) == 2  # new root and new b/
    repo.close()


# ---------------------------------------------------------------- fsck of planted damage


@pytest.mark.parametrize("case", sorted(CASES))
def test_fsck_reports_planted_damage(case: str, sync_env: Path) -> None:
    build, fragments = CASES[case]
    with Repository.init(sync_env / "local") as repo:
        p = Planter(repo.store)
        base = p.commit(_benign(p))
        evil = build(p, (base,))
        repo.store.flush()
        repo.refs.update("refs/heads/main", base, None)
        assert fsck(repo).ok
        repo.refs.update("refs/heads/evil", evil, None)
        report = fsck(repo)
        wanted = [x.replace("main: ", "refs/heads/evil: ") for x in fragments]
        assert any(all(x in line for x in wanted) for line in report.problems), report.problems


def test_push_refuses_to_send_damage(sync_env: Path) -> None:
    remote = sync_env / "remote"
    with Repository.init(sync_env / "local") as repo:
        p = Planter(repo.store)
        evil = CASES["file-names-tree"][0](p, ())
        repo.store.flush()
        repo.refs.update("refs/heads/main", evil, None)
        repo.remote_add("origin", str(remote))
        with pytest.raises(IntegrityError, match=r"names tree .*, not a chunk"):
            repo.push("origin", ["main"])
    assert not (remote / "refs" / "heads" / "main").exists()


def test_fsck_names_a_garbage_merge_head(sync_env: Path) -> None:
    with Repository.init(sync_env / "local") as repo:
        p = Planter(repo.store)
        tree = p.tree(_benign(p))
        commit = p.commit(_benign(p))
        repo.store.flush()
        repo.refs.update("refs/heads/main", commit, None)
        lines = ["not an id", commit.hex(), tree.hex(), hash_data(b"gone").hex()]
        (repo.dsdir / "MERGE_HEAD").write_text("\n".join(lines) + "\n")
        report = fsck(repo)
        assert report.problems == [
            "MERGE_HEAD line 1: 'not an id' is not an object id",
            f"MERGE_HEAD: names tree {tree.hex()}, not a commit",
            f"MERGE_HEAD: names object {hash_data(b'gone').hex()}, which is missing",
        ]


def test_fsck_accepts_tags_of_trees_and_files(repo_with_commit: Repository) -> None:
    repo = repo_with_commit
    repo.tag("tree-tag", "HEAD^{tree}")
    repo.tag("tree-note", "HEAD^{tree}", message="the tree\n")
    report = fsck(repo)
    assert report.ok, report.problems


@pytest.fixture
def repo_with_commit(sync_env: Path) -> Iterator[Repository]:
    with Repository.init(sync_env / "local") as repo:
        (repo.root / "a.txt").write_text("a\n")
        repo.add(".")
        repo.commit("one")
        yield repo


# ---------------------------------------------------------------- limits when trees are built


def test_write_tree_refuses_paths_beyond_the_limits(sync_env: Path) -> None:
    from dsrepo.objects.model import MAX_NAME_BYTES, MAX_PATH_BYTES, MAX_TREE_DEPTH

    with Repository.init(sync_env / "local") as repo:
        chunk = repo.store.put_chunk(b"x")

        def build(path: str) -> ObjectId:
            return write_tree(repo.store, {path: TreeEntry("", EntryKind.FILE, 1, chunk)})

        build("n" * MAX_NAME_BYTES)
        build("/".join(["d"] * MAX_TREE_DEPTH))
        build("/".join(["p" * 200] * 20)[: MAX_PATH_BYTES - 1] + "q")
        with pytest.raises(PathError, match=f"at most {MAX_NAME_BYTES}"):
            build("sub/" + "n" * (MAX_NAME_BYTES + 1))
        with pytest.raises(PathError, match=f"more than {MAX_TREE_DEPTH} levels"):
            build("/".join(["d"] * (MAX_TREE_DEPTH + 1)))
        with pytest.raises(PathError, match=f"at most {MAX_PATH_BYTES}"):
            build("/".join(["p" * 200] * 21))


def test_commit_of_a_too_deep_directory_is_refused(sync_env: Path) -> None:
    with Repository.init(sync_env / "local") as repo:
        os.makedirs(repo.root / "/".join(["d"] * 300))
        (repo.root / "/".join(["d"] * 300) / "f").write_text("deep\n")
        (repo.root / "ok.txt").write_text("ok\n")
        repo.add(".")
        with pytest.raises(PathError) as refused:
            repo.commit("deep")
        assert "more than 256 levels deep" in str(refused.value)
        assert repo.head_commit() is None
