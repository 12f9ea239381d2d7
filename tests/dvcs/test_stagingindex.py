"""The staging index of format 2 (:mod:`dsrepo.dvcs.stagingindex`, :mod:`dsrepo.dvcs.indexformat`):
round trips in component order, the lookup shortcuts (bisection, then a dict), the overlay of
pending changes, prefix ranges, the upgrade from format 1, damaged and foreign files, and the racy
timestamp rule with an index that ``add`` itself just saved."""

from __future__ import annotations

import dataclasses
import os
import random
import struct
import time
from pathlib import Path

import msgpack
import pytest

from dsrepo import Repository
from dsrepo.dvcs import stagingindex as stagingindex_mod
from dsrepo.dvcs import worktree as worktree_mod
from dsrepo.dvcs.commits import write_tree
from dsrepo.dvcs.errors import NothingToCommit, RepositoryError
from dsrepo.dvcs.indexformat import IndexFormatError, decode
from dsrepo.dvcs.lock import index_lock
from dsrepo.dvcs.scan import path_sort_key
from dsrepo.dvcs.stagingindex import IndexEntry, StagingIndex
from dsrepo.dvcs.worktree import files_from_index
from dsrepo.objects.ids import ObjectId, hash_data
from dsrepo.objects.kinds import EntryKind
from tests.cli.conftest import Cli, assert_one_error_line
from tests.dvcs.conftest import write

MiB = 1024 * 1024

# names whose component order differs from str order: "a/x" < "a-b" < "a.c" < "ab"
NAMES = ["ab", "a.c", "a-b", "a/x", "a/y/z", "é/ü.txt", "zz", "with space.txt", "d/e f/g"]


def entry(path: str, n: int = 0, manifest: bool = False) -> IndexEntry:
    """An index entry with made-up content (no object behind it)."""
    cid = hash_data(f"{path}:{n}".encode())
    man = hash_data(f"manifest of {path}:{n}".encode()) if manifest else None
    return IndexEntry(
        path, EntryKind.FILE, 10 + n, cid, man, 1000 + n, 2000 + n, 3000 + n, 0o100644
    )


def component_sorted(paths: list[str]) -> list[str]:
    return sorted(paths, key=path_sort_key)


def populated(root: Path) -> dict[str, bytes]:
    """Files of every kind under awkward names; returns regular files' content."""
    files = {n: f"content of {n}\n".encode() for n in NAMES}
    files["big.bin"] = random.Random(3).randbytes(MiB + MiB // 2)  # chunked: has a manifest
    for n, data in files.items():
        write(root, n, data)
    write(root, "tool.sh", "#!/bin/sh\necho hi\n")
    os.chmod(root / "tool.sh", 0o755)
    os.symlink("a.c", root / "link")
    return files


def index_bytes(repo: Repository) -> bytes:
    return (repo.dsdir / "index").read_bytes()


# ---------------------------------------------------------------- round trip and order


def test_round_trip_keeps_every_field_in_component_order(repo: Repository) -> None:
    populated(repo.root)
    repo.add()
    saved = list(repo.worktree.index)
    paths = [e.path for e in saved]
    assert paths == component_sorted(paths)
    assert paths != sorted(paths)  # the names make the two orders differ
    assert paths.index("a/x") < paths.index("a-b") < paths.index("a.c") < paths.index("ab")
    assert set(paths) == {*NAMES, "big.bin", "tool.sh", "link"}

    loaded = StagingIndex(repo.dsdir / "index")
    assert index_bytes(repo).startswith(b"DSRINDEX")
    assert loaded.upgraded_from is None
    assert list(loaded) == saved
    assert loaded.paths() == paths
    kinds = {e.path: e.kind for e in loaded}
    assert kinds["tool.sh"] == EntryKind.EXECUTABLE
    assert kinds["link"] == EntryKind.SYMLINK
    assert {p for p, k in kinds.items() if k == EntryKind.FILE} == {*NAMES, "big.bin"}
    with_manifest = {e.path for e in loaded if e.manifest is not None}
    assert with_manifest == {"big.bin"}
    # every stat field survives: lstat of the file equals the row
    for e in loaded:
        st = os.lstat(repo.root / e.path)
        assert (e.size, e.mtime_ns, e.ctime_ns, e.ino, e.mode) == (
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
            st.st_ino,
            st.st_mode,
        ), e.path
    assert loaded.entries["link"].content_id == hash_data(b"a.c")
    # and the commit records what the entries say (the manifest too)
    tree = repo.commit("v1").commit.tree
    flat = repo.flatten(tree)
    assert {p: (t.kind, t.size, t.id, t.manifest) for p, t in flat.items()} == {
        e.path: e.recorded for e in loaded
    }
    assert repo.status().clean and repo.status().untracked == ()


def test_lookups_before_and_after_the_dict(tmp_path: Path) -> None:
    limit = stagingindex_mod._LOOKUPS_BEFORE_DICT
    paths = [f"{d}{sep}{i}" for d in ("a", "ab", "b") for sep in ("/", "-", ".") for i in range(12)]
    entries = {p: entry(p, i) for i, p in enumerate(paths)}
    index = StagingIndex(tmp_path / "index")
    index.replace_all(random.Random(1).sample(list(entries.values()), len(entries)))
    assert index.paths() == component_sorted(paths)
    # names next to real ones in either order, that are not entries
    missing = ["a", "ab", "b", "a/", "a/1/0", "a-", "a.1x", "0", "zzz", "a/10a", "", "b.11/x"]
    probes = [*paths, *missing]
    random.Random(2).shuffle(probes)
    lookups = 0
    for p in probes * 2:
        assert index.get(p) == entries.get(p), p
        assert (p in index) is (p in entries), p
        lookups += 2
        if lookups <= limit:
            assert index._rows is None  # still bisecting
    assert index._rows is not None  # switched to the dict
    # changes after the switch: the dict is rebuilt from the merged columns
    index.set(entry("a/5", 99))
    index.remove("b-3")
    index.set(entry("a/0a", 7))
    assert index.get("a/5") == entry("a/5", 99)
    assert index.get("b-3") is None and "b-3" not in index
    assert len(index) == len(paths)  # merged
    assert index.get("a/0a") == entry("a/0a", 7)
    assert index.get("a/5") == entry("a/5", 99)
    assert index.get("b-3") is None
    assert index.get("b-4") == entries["b-4"]
    expect = {**entries, "a/5": entry("a/5", 99), "a/0a": entry("a/0a", 7)}
    del expect["b-3"]
    assert index.paths() == component_sorted(list(expect))
    assert {p: index.get(p) for p in expect} == expect
    assert dict(index.entries.items()) == expect


def test_the_overlay_merges_in_component_order(tmp_path: Path) -> None:
    rng = random.Random(5)
    base = [f"{a}{s}{b}" for a in ("x", "x y", "é", "a") for s in ("/", "-", ".", "") for b in "pq"]
    index = StagingIndex(tmp_path / "index")
    index.replace_all(entry(p, 1) for p in base[::2])
    assert len(index) == len(base[::2])
    expect = {p: entry(p, 1) for p in base[::2]}
    for round_ in range(5):
        for p in rng.sample(base, 12):
            if rng.random() < 0.3:
                index.remove(p)
                expect.pop(p, None)
            else:
                e = entry(p, round_, manifest=rng.random() < 0.5)
                index.set(e)
                expect[p] = e
        # pending changes are visible before the merge...
        assert {p: index.get(p) for p in base} == {p: expect.get(p) for p in base}
        # ...and after it, in component order, every column in step
        assert index.paths() == component_sorted(list(expect))
        assert list(index) == [expect[p] for p in component_sorted(list(expect))]
        cols = index.columns()
        assert cols.manifests == {p: e.manifest for p, e in expect.items() if e.manifest}
    with index_lock(tmp_path).held():
        index.save()
    again = StagingIndex(tmp_path / "index")
    assert list(again) == [expect[p] for p in component_sorted(list(expect))]


def test_re_staging_existing_paths_overwrites_their_rows_in_place(tmp_path: Path) -> None:
    """``commit -a`` re-stages modified files only: their rows are overwritten where they lie
    (no merge copying every row), every column and the manifests in step."""
    rng = random.Random(9)
    base = component_sorted(
        [f"{a}{s}{b}" for a in ("x", "x y", "é", "a") for s in ("/", "-", ".", "") for b in "pq"]
    )
    index = StagingIndex(tmp_path / "index")
    index.replace_all(entry(p, 1, manifest=i % 3 == 0) for i, p in enumerate(base))
    expect = {p: index.get(p) for p in base}
    for round_ in range(4):
        cols = index.columns()
        for p in rng.sample(base, 9):
            e = entry(p, 10 + round_, manifest=rng.random() < 0.5)
            index.set(e)
            expect[p] = e
        assert index.columns() is cols  # merged in place
        assert index.paths() == base
        assert list(index) == [expect[p] for p in base]
        assert cols.manifests == {p: e.manifest for p, e in expect.items() if e and e.manifest}
    index.set(entry("new/path"))  # a new path: merged by copying
    assert index.columns() is not cols and index.get("new/path") == entry("new/path")
    with index_lock(tmp_path).held():
        index.save()
    again = StagingIndex(tmp_path / "index")
    assert list(again) == [
        entry("new/path") if p == "new/path" else expect[p]
        for p in component_sorted([*base, "new/path"])
    ]


def test_remove_then_add_again(tmp_path: Path) -> None:
    index = StagingIndex(tmp_path / "index")
    index.replace_all([entry("a/x"), entry("a-b", manifest=True), entry("ab")])
    assert len(index) == 3
    index.remove("a-b")
    assert "a-b" not in index and index.get("a-b") is None
    index.set(entry("a-b", 5))  # back, without a manifest now
    assert index.get("a-b") == entry("a-b", 5)
    assert index.paths() == ["a/x", "a-b", "ab"]
    assert index.get("a-b") == entry("a-b", 5)
    assert index.columns().manifests == {}
    # removed and merged, then added again
    index.remove("a/x")
    assert index.paths() == ["a-b", "ab"]
    index.set(entry("a/x", 2, manifest=True))
    index.remove("ab")
    index.remove("ab")  # twice: still gone, nothing else touched
    index.remove("never")
    assert index.paths() == ["a/x", "a-b"]
    assert index.get("a/x") == entry("a/x", 2, manifest=True)
    with index_lock(tmp_path).held():
        index.save()
    assert list(StagingIndex(tmp_path / "index")) == [
        entry("a/x", 2, manifest=True),
        entry("a-b", 5),
    ]


def test_remove_then_add_again_through_the_verbs(repo: Repository) -> None:
    write(repo.root, "a-b", "1")
    write(repo.root, "a/x", "2")
    repo.add()
    first = repo.commit("v1").commit.tree
    repo.rm("a-b", cached=True)
    assert repo.status().staged_deleted == ("a-b",)
    assert repo.status().untracked == ("a-b",)
    repo.add("a-b")
    assert repo.status().clean
    with pytest.raises(NothingToCommit):
        repo.commit("same")
    assert repo.store.get_commit(repo.head_commit()).tree == first  # type: ignore[arg-type]


def test_under_a_file_and_a_directory_that_prefix_their_siblings(tmp_path: Path) -> None:
    paths = ["a/x", "a/y/z", "a-b", "a.c", "ab", "ab.d/e", "b", "é", "a b/c"]
    index = StagingIndex(tmp_path / "index")
    index.replace_all(entry(p) for p in paths)
    order = index.paths()
    assert order == component_sorted(paths)

    def under(prefix: str) -> list[str]:
        start, end = index.rows_under(prefix)
        rows = index.paths()[start:end]
        assert rows == [e.path for e in index.under(prefix)]
        return rows

    assert under("") == order
    assert under("a") == ["a/x", "a/y/z"]  # not a-b, a.c, ab, "a b"
    assert under("a/y") == ["a/y/z"]
    assert under("a/y/z") == ["a/y/z"]
    assert under("a/x") == ["a/x"]
    assert under("a-b") == ["a-b"]
    assert under("a.c") == ["a.c"]
    assert under("ab") == ["ab"]  # not ab.d/e
    assert under("ab.d") == ["ab.d/e"]
    assert under("a b") == ["a b/c"]
    assert under("é") == ["é"]
    for nothing in ("a/x/q", "a/y/", "zz", "a-", "a/w", "0"):
        assert under(nothing) == [], nothing
    # the same with pending changes in the overlay (merged first)
    index.set(entry("a/w"))
    index.set(entry("a0"))
    assert under("a") == ["a/w", "a/x", "a/y/z"]
    assert under("a0") == ["a0"]


def test_rm_and_mv_of_a_folder_spare_its_string_prefixed_siblings(repo: Repository) -> None:
    for p in ("a/x", "a/y/z", "a-b", "a.c", "ab", "ab.d/e"):
        write(repo.root, p, p)
    repo.add()
    repo.commit("v1")
    assert repo.rm("a", cached=True) == ["a/x", "a/y/z"]
    assert sorted(repo.worktree.index.entries) == ["a-b", "a.c", "ab", "ab.d/e"]
    repo.add("a")
    repo.mv("ab", "moved")
    assert sorted(repo.worktree.index.entries) == ["a-b", "a.c", "a/x", "a/y/z", "ab.d/e", "moved"]
    st = repo.status()
    assert (st.staged_added, st.staged_deleted, st.modified, st.deleted) == (
        ("moved",),
        ("ab",),
        (),
        (),
    )


# ---------------------------------------------------------------- format 1


def v1_rows(entries: list[IndexEntry]) -> list[tuple[object, ...]]:
    return [
        (
            e.path,
            int(e.kind),
            e.size,
            bytes(e.content_id),
            None if e.manifest is None else bytes(e.manifest),
            e.mtime_ns,
            e.ctime_ns,
            e.ino,
            e.mode,
        )
        for e in sorted(entries, key=lambda e: e.path)  # format 1 sorted by str
    ]


@pytest.mark.parametrize("with_tree", [True, False])
def test_a_format_1_index_is_read_then_rewritten_in_format_2(
    repo: Repository, with_tree: bool
) -> None:
    populated(repo.root)
    repo.add()
    head_tree = repo.commit("v1").commit.tree
    entries = list(repo.worktree.index)
    index_file = repo.dsdir / "index"
    stamp = index_file.stat().st_mtime_ns
    doc = [1, v1_rows(entries), bytes(head_tree) if with_tree else None]
    index_file.write_bytes(msgpack.packb(doc, use_bin_type=True))
    os.utime(index_file, ns=(stamp, stamp))  # not racier than the index it replaces
    (repo.dsdir / "index-trees").unlink()  # format 1 had none

    with Repository.open(repo.root) as old:
        index = old.worktree.index
        assert index.upgraded_from == 1
        assert list(index) == entries  # the manifest too, and in component order
        assert index.paths() == [e.path for e in entries]
        assert index.tree == (head_tree if with_tree else None)
        st = old.status()
        assert st.clean and st.untracked == (), st
        with pytest.raises(NothingToCommit):
            old.commit("nothing changed")
        # the next save rewrites it in format 2
        old.add()
        assert index_file.read_bytes().startswith(b"DSRINDEX")
    with Repository.open(repo.root) as new:
        index = new.worktree.index
        assert index.upgraded_from is None
        assert list(index) == entries
        write(new.root, "a/x", "changed")
        new.add()
        tree = new.commit("v2").commit.tree
        assert tree == full_tree(new)
        big = next(e for e in entries if e.path == "big.bin")
        assert new.flatten(tree)["big.bin"].manifest == big.manifest
        assert new.fsck().ok


# ---------------------------------------------------------------- damaged and foreign files


def committed(repo: Repository) -> None:
    write(repo.root, "a.txt", "alpha")
    write(repo.root, "d/b.txt", "beta")
    repo.add()
    repo.commit("v1")


def damage_body(raw: bytes) -> bytes:
    pos = 56 + 8 + 2  # inside the paths section
    return raw[:pos] + bytes([raw[pos] ^ 0x20]) + raw[pos + 1 :]


def damage_count(raw: bytes) -> bytes:
    return raw[:16] + struct.pack("<Q", struct.unpack_from("<Q", raw, 16)[0] + 1) + raw[24:]


@pytest.mark.parametrize(
    "damage",
    [
        damage_body,
        damage_count,  # the header's entry count, outside the checksummed body
        lambda raw: raw[: len(raw) // 2],
        lambda raw: raw[:-1],
        lambda raw: raw[:20],
        lambda raw: b"",
        lambda raw: raw + b"\0",
    ],
    ids=["flipped", "count", "half", "last-byte", "header", "empty", "extra-byte"],
)
def test_a_damaged_index_names_the_file_and_the_rebuild(repo: Repository, damage: object) -> None:
    committed(repo)
    index_file = repo.dsdir / "index"
    good = index_file.read_bytes()
    bad = damage(good)  # type: ignore[operator]
    assert bad != good
    index_file.write_bytes(bad)
    with pytest.raises(RepositoryError) as exc:
        StagingIndex(index_file)
    message = str(exc.value)
    assert str(index_file) in message
    assert "restore --staged" in message
    with Repository.open(repo.root) as again, pytest.raises(RepositoryError) as exc2:
        again.status()
    assert str(exc2.value) == message
    # the advice works
    index_file.unlink()
    with Repository.open(repo.root) as again:
        again.restore(".", staged=True, cwd=again.root)
        st = again.status()
        assert st.clean and st.untracked == ()


def test_a_damaged_index_on_the_command_line(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    committed(repo)
    index_file = repo.dsdir / "index"
    index_file.write_bytes(damage_body(index_file.read_bytes()))
    monkeypatch.chdir(repo.root)
    cli = Cli(monkeypatch)
    for args in (("status",), ("add", "."), ("commit", "-m", "x")):
        r = cli.run(*args)
        assert_one_error_line(r)
        assert str(index_file) in r.err and "restore --staged" in r.err, r


def test_an_index_of_a_later_format_says_who_wrote_it(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    committed(repo)
    index_file = repo.dsdir / "index"
    raw = index_file.read_bytes()
    index_file.write_bytes(raw[:8] + struct.pack("<I", 3) + raw[12:])
    with pytest.raises(IndexFormatError, match="format 3 by another dsrepo"):
        decode(index_file.read_bytes())
    with (
        Repository.open(repo.root) as again,
        pytest.raises(RepositoryError, match="format 3 by another dsrepo") as exc,
    ):
        again.status()
    assert str(index_file) in str(exc.value)
    monkeypatch.chdir(repo.root)
    r = Cli(monkeypatch).run("status")
    assert_one_error_line(r)
    assert "another dsrepo" in r.err


def full_tree(repo: Repository) -> ObjectId:
    return write_tree(repo.store, files_from_index(repo.worktree.index.entries.values()))


@pytest.mark.parametrize("how", ["flipped", "truncated", "foreign", "other-index", "garbage"])
def test_a_damaged_or_foreign_tree_cache_is_ignored(
    repo: Repository, tmp_path: Path, identity: Path, how: str
) -> None:
    for p in ("a.txt", "d/b.txt", "d/e/c.txt", "f/g.txt"):
        write(repo.root, p, p)
    repo.add()
    repo.commit("v1")
    trees_file = repo.dsdir / "index-trees"
    assert trees_file.exists()
    old_cache = trees_file.read_bytes()
    write(repo.root, "d/e/c.txt", "changed")
    repo.add()
    if how == "flipped":
        raw = trees_file.read_bytes()
        bad = raw[:50] + bytes([raw[50] ^ 1]) + raw[51:]
    elif how == "truncated":
        bad = trees_file.read_bytes()[:-5]
    elif how == "foreign":  # a valid cache of another repository's index
        other = Repository.init(tmp_path / "other")
        for p in ("a.txt", "d/b.txt", "x"):
            write(other.root, p, "other " + p)
        other.add()
        other.commit("other")
        bad = (other.dsdir / "index-trees").read_bytes()
        other.close()
    elif how == "other-index":  # a valid cache of this index before the change
        bad = old_cache
    else:
        bad = b"DSRTREES" + os.urandom(100)
    trees_file.write_bytes(bad)
    with Repository.open(repo.root) as again:
        index = again.worktree.index
        assert index.trees == {}
        assert again.status().staged_modified == ("d/e/c.txt",)
        tree = again.commit("v2").commit.tree
        assert tree == full_tree(again)
        assert again.flatten(tree)["d/e/c.txt"].id == hash_data(b"changed")
    with Repository.open(repo.root) as again:  # the cache rewritten for the new index
        assert again.worktree.index.tree == tree
        assert again.status().clean


# ---------------------------------------------------------------- racy timestamps


def count_hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = worktree_mod.hash_file

    def counting(path: str, small: int) -> object:
        calls.append(os.path.basename(path))
        return real(path, small)

    monkeypatch.setattr(worktree_mod, "hash_file", counting)
    return calls


def rewrite_same_stat(repo: Repository, rel: str, mtime_ns: int) -> os.stat_result:
    """Rewrite ``rel`` with other bytes of the same size, its mtime set to ``mtime_ns``."""
    path = repo.root / rel
    data = path.read_bytes()
    path.write_bytes(data.swapcase())
    assert path.read_bytes() != data
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return os.lstat(path)


@pytest.mark.parametrize("reopen", [False, True])
def test_a_rewrite_in_the_tick_add_saved_the_index_is_seen(
    repo: Repository, monkeypatch: pytest.MonkeyPatch, reopen: bool
) -> None:
    """``add`` hashes a file and saves the index in one timestamp tick; the file is rewritten in
    that tick (same size, same mtime). The ctime and inode cannot be faked from user space, so
    the index is told them, as if the rewrite had also happened in the same tick as the hashing:
    only the racy rule (an entry's mtime not older than the index file's) can see the change."""
    old = os.lstat(write(repo.root, "other.txt", "other\n")).st_mtime_ns - 3600 * 10**9
    os.utime(repo.root / "other.txt", ns=(old, old))  # long before: never racy
    write(repo.root, "r.txt", "racy content\n")
    repo.add()
    index_file = repo.dsdir / "index"
    stamp = index_file.stat().st_mtime_ns  # add's own save
    wt = repo.worktree
    assert wt.index.stamp_ns == stamp
    st = rewrite_same_stat(repo, "r.txt", stamp)  # the same tick as the save
    e = wt.index.entries["r.txt"]
    faked = dataclasses.replace(
        e, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns, ino=st.st_ino, mode=st.st_mode
    )
    with index_lock(repo.dsdir).held():
        wt.index.set(faked)
        if reopen:
            wt.index.save()
            os.utime(index_file, ns=(stamp, stamp))  # as add left it
    calls = count_hashes(monkeypatch)
    if reopen:
        with Repository.open(repo.root) as fresh:
            assert fresh.worktree.index.entries["r.txt"] == faked
            assert fresh.status().modified == ("r.txt",)
            assert fresh.status().modified == ("r.txt",)  # not "refreshed" away
    else:
        assert wt.index.stamp_ns == stamp
        assert repo.status().modified == ("r.txt",)
        assert repo.status().modified == ("r.txt",)
    assert "r.txt" in calls and "other.txt" not in calls
    repo.add()
    assert repo.status().staged_added == ("other.txt", "r.txt")
    assert repo.status().modified == ()


def test_a_racily_clean_entry_stays_suspect_when_the_index_is_saved_again(
    repo: Repository,
) -> None:
    """As above, then another ``add`` saves the index a second later, before any status: the
    entry's mtime is now older than the index file, so only an index writer that re-checks (or
    smudges, as git does) racily clean entries on save keeps the change visible."""
    old = time.time_ns() - 3600 * 10**9
    for name in ("other.txt", "later.txt"):
        write(repo.root, name, name)
        os.utime(repo.root / name, ns=(old, old))
    write(repo.root, "r.txt", "racy content\n")
    repo.add("r.txt", "other.txt")
    index_file = repo.dsdir / "index"
    stamp = index_file.stat().st_mtime_ns
    st = rewrite_same_stat(repo, "r.txt", stamp)
    wt = repo.worktree
    e = wt.index.entries["r.txt"]
    faked = dataclasses.replace(
        e, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns, ino=st.st_ino, mode=st.st_mode
    )
    with index_lock(repo.dsdir).held():
        wt.index.set(faked)
        wt.index.save()
    os.utime(index_file, ns=(stamp, stamp))  # the state add left: r.txt racily clean
    with Repository.open(repo.root) as fresh:
        fresh.add("later.txt")  # saves the index again...
        later = stamp + 10**9
        os.utime(index_file, ns=(later, later))  # ...a second later
    with Repository.open(repo.root) as fresh:
        assert fresh.status().modified == ("r.txt",)


# ---------------------------------------------------------------- conflicts and the fast paths


@pytest.mark.parametrize("folder_set", [False, True], ids=["bisect", "folder-set"])
def test_a_new_path_replaces_what_conflicts_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder_set: bool
) -> None:
    """git's rule: staging a file drops a staged file where one of its folders is, and staging
    a file where a folder was drops the files below (asked by bisection, then by a set)."""
    if folder_set:
        monkeypatch.setattr(stagingindex_mod, "_LOOKUPS_BEFORE_DICT", 0)
    index = StagingIndex(tmp_path / "index")
    index.replace_all(entry(p) for p in ["a", "a-b", "d/e/f", "d/e/g", "d/h", "x"])
    assert len(index) == 6
    index.set(entry("a/b/c"))  # "a" was a file
    index.set(entry("d/e"))  # "d/e" was a folder
    index.set(entry("x/y"))
    index.set(entry("d/h", 1))  # no conflict: a new version
    assert index.paths() == ["a/b/c", "a-b", "d/e", "d/h", "x/y"]
    assert index.get("d/h") == entry("d/h", 1)
    index.set(entry("a"))  # and back
    index.set(entry("d/e/f/deep"))
    assert index.paths() == ["a", "a-b", "d/e/f/deep", "d/h", "x/y"]
    # a removed folder no longer conflicts (the folder set is a superset: it looks again)
    index.remove("d/e/f/deep")
    assert len(index) == 4
    index.set(entry("d/e"))
    assert index.paths() == ["a", "a-b", "d/e", "d/h", "x/y"]


def test_conflicts_within_changes_not_yet_merged(tmp_path: Path) -> None:
    """The same rule for paths still in the overlay (set since the last merge)."""
    index = StagingIndex(tmp_path / "index")
    index.replace_all([entry("a")])
    assert index.paths() == ["a"]
    index.set(entry("x/y"))
    index.set(entry("x/z/w"))
    index.set(entry("x"))  # a file where two staged paths had a folder
    assert index.get("x/y") is None and index.get("x/z/w") is None
    index.set(entry("x/q"))  # and the other way round
    assert index.get("x") is None
    assert index.paths() == ["a", "x/q"]


def test_new_paths_in_order_are_appended_and_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first ``add`` stages paths in component order: they are appended to the columns in
    place (every few thousand, here every 8), and lookups by bisection or dict still work."""
    monkeypatch.setattr(stagingindex_mod, "_MAX_PENDING", 8)
    index = StagingIndex(tmp_path / "index")
    in_order = component_sorted([f"{d}{s}{i}" for d in "bcd" for s in "/-." for i in range(7)])
    expect = {}
    for k, p in enumerate(in_order):
        index.set(entry(p, k))
        expect[p] = entry(p, k)
        if k % 5 == 0:  # lookups all along: bisection first, then the dict
            assert all(index.get(q) == e for q, e in expect.items())
            assert index.get(p + "x") is None and index.get("a") is None
    assert index._rows is not None  # the dict was kept up to date by the appends
    # then paths before the last row: merged, not appended
    for k, p in enumerate(["a/1", "b/0x", "c-3y/z", "zz", "a-0"]):
        index.set(entry(p, 100 + k))
        expect[p] = entry(p, 100 + k)
    index.remove("c.3")
    del expect["c.3"]
    assert {q: index.get(q) for q in [*expect, "c.3"]} == {**expect, "c.3": None}
    assert index.paths() == component_sorted(list(expect))
    assert list(index) == [expect[p] for p in component_sorted(list(expect))]
    with index_lock(tmp_path).held():
        index.save()
    assert list(StagingIndex(tmp_path / "index")) == list(index)
