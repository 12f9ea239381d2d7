"""The untracked cache (:mod:`dsrepo.dvcs.untrackedcache`): a walk that skips listing the folders
its records describe must find exactly what a walk that lists every folder finds, after every
kind of change (at any depth, to files, folders, the index and ignore files), with racy folders,
damaged or unwritable cache files, and in the forked walk.

The walks here use a racy margin of 20 ms instead of 2 s (``settle()`` waits past it), so that
records get written without the tests sleeping for seconds; the margin is what keeps a change
made right after a walk from matching a record, and every test still makes such changes."""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path

import msgpack
import pytest
from blake3 import blake3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsrepo import Repository
from dsrepo.dvcs import forking, statuswalk, untrackedcache
from dsrepo.dvcs.ignore import IgnoreRules
from dsrepo.dvcs.statuswalk import Untracked, WalkResult, walk
from dsrepo.dvcs.untrackedcache import Record, UntrackedCache, cache_path, decode, encode
from tests.dvcs.conftest import write

MARGIN_NS = 20_000_000


def settle() -> None:
    """Wait until what was just changed is older than the racy margin (so it gets recorded)."""
    time.sleep(MARGIN_NS / 1e9 + 0.01)


def normalized(r: WalkResult) -> tuple[list[int], list[str], list[str]]:
    return sorted(r.suspects), sorted(r.deleted), sorted(r.untracked)


def cached_walk(
    repo: Repository, untracked: Untracked = Untracked.NORMAL, *, parallel: bool = False
) -> tuple[WalkResult, UntrackedCache]:
    """A walk through the cache file (then saved), as ``status`` does it."""
    wt = repo.worktree
    cache = UntrackedCache.load(cache_path(wt.index.path), margin_ns=MARGIN_NS)
    rules = IgnoreRules.load(repo.root)
    r = walk(repo.root, rules, wt.index, untracked, wt.sparse, parallel=parallel, cache=cache)
    cache.save()
    return r, cache


def uncached_walk(repo: Repository, untracked: Untracked = Untracked.NORMAL) -> WalkResult:
    wt = repo.worktree
    rules = IgnoreRules.load(repo.root)
    return walk(repo.root, rules, wt.index, untracked, wt.sparse, parallel=False)


def agree(repo: Repository) -> tuple[list[int], list[str], list[str]]:
    """Cached and uncached walks agree in every mode; the normal mode's result."""
    out = None
    for u in (Untracked.NORMAL, Untracked.ALL, Untracked.NO):
        cached, _ = cached_walk(repo, u)
        plain = uncached_walk(repo, u)
        assert normalized(cached) == normalized(plain), u
        out = out or normalized(plain)
    assert out is not None
    return out


def untracked_of(repo: Repository) -> list[str]:
    return agree(repo)[2]


def deleted_of(repo: Repository) -> list[str]:
    return agree(repo)[1]


def reused(cache: UntrackedCache) -> set[str]:
    return {rel for rel, r in cache.new.items() if cache.old.get(rel) is r}


def base_tree(repo: Repository, prefix: str) -> None:
    for rel in ("f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9", "sub/x", "sub/y"):
        write(repo.root, prefix + rel, f"{rel} at {prefix}\n")
    write(repo.root, "o/keep", "keep\n")
    repo.add()
    repo.commit("base")
    settle()


DEPTHS = ["", "p/", "p/q/r/"]


# ---------------------------------------------------------------- every kind of change


@pytest.mark.parametrize("p", DEPTHS)
def test_files_created_removed_and_renamed(repo: Repository, p: str) -> None:
    base_tree(repo, p)
    assert agree(repo)[1:] == ([], [])
    _, cache = cached_walk(repo)
    folders = {"", "o", "p", "p/q", "p/q/r"}
    folders = {f for f in folders if f == "o" or f + "/" <= p or f == p.rstrip("/")}
    folders.add(p + "sub")
    assert reused(cache) == folders and not cache.added  # every folder came from the cache
    write(repo.root, p + "new", "new")  # right after the walk: same tick as its records
    assert untracked_of(repo) == [p + "new"]
    settle()
    assert untracked_of(repo) == [p + "new"]
    (repo.root / (p + "new")).unlink()
    (repo.root / (p + "f2")).unlink()
    assert agree(repo)[1:] == ([p + "f2"], [])
    os.rename(repo.root / (p + "f1"), repo.root / (p + "f1-renamed"))
    assert agree(repo)[1:] == ([p + "f1", p + "f2"], [p + "f1-renamed"])
    settle()
    os.rename(repo.root / (p + "f1-renamed"), repo.root / "o/f1")  # across folders
    assert agree(repo)[1:] == ([p + "f1", p + "f2"], ["o/f1"])
    settle()
    os.rename(repo.root / "o/f1", repo.root / (p + "sub/f1"))  # deeper
    assert agree(repo)[1:] == ([p + "f1", p + "f2"], [p + "sub/f1"])
    settle()
    os.rename(repo.root / (p + "sub/f1"), repo.root / (p + "f1"))  # back
    write(repo.root, p + "f2", f"f2 at {p}\n")
    assert agree(repo)[1] == []
    settle()
    assert agree(repo)[1:] == ([], [])


@pytest.mark.parametrize("p", DEPTHS)
def test_folders_created_and_removed(repo: Repository, p: str) -> None:
    base_tree(repo, p)
    agree(repo)
    os.makedirs(repo.root / (p + "fresh/deeper"))
    assert untracked_of(repo) == []  # an empty folder is not shown
    settle()
    agree(repo)
    write(repo.root, p + "fresh/deeper/x", "x")  # inside an untracked folder: not cached
    assert untracked_of(repo) == [p + "fresh/"]
    settle()
    agree(repo)
    write(repo.root, p + "fresh/deeper/y", "y")
    assert untracked_of(repo) == [p + "fresh/"]
    shutil.rmtree(repo.root / (p + "fresh"))
    assert untracked_of(repo) == []
    settle()
    agree(repo)
    shutil.rmtree(repo.root / (p + "sub"))  # a tracked folder
    assert deleted_of(repo) == [p + "sub/x", p + "sub/y"]
    settle()
    agree(repo)
    write(repo.root, p + "sub", "a file where a folder was")
    assert agree(repo)[1:] == ([p + "sub/x", p + "sub/y"], [p + "sub"])
    settle()
    agree(repo)
    (repo.root / (p + "sub")).unlink()
    write(repo.root, p + "sub/x", f"sub/x at {p}\n")
    write(repo.root, p + "sub/y", f"sub/y at {p}\n")
    (repo.root / (p + "f3")).unlink()
    os.makedirs(repo.root / (p + "f3"))  # a folder where a file was
    write(repo.root, p + "f3/in", "in")
    assert agree(repo)[1:] == ([p + "f3"], [p + "f3/"])
    settle()
    assert agree(repo)[1:] == ([p + "f3"], [p + "f3/"])


def test_the_index_changes_under_a_record(repo: Repository) -> None:
    base_tree(repo, "p/")
    write(repo.root, "p/later", "later")
    write(repo.root, "p/sub/later", "later")
    settle()
    assert untracked_of(repo) == ["p/later", "p/sub/later"]
    _, cache = cached_walk(repo)
    assert {"p", "p/sub"} <= reused(cache)
    repo.add("p/later")  # untracked becomes tracked: the folder's tracked names change
    assert agree(repo)[1:] == ([], ["p/sub/later"])
    _, cache = cached_walk(repo)
    assert "p" in reused(cache)
    repo.rm("p/later", "p/f4", cached=True)  # tracked becomes untracked
    assert agree(repo)[1:] == ([], ["p/f4", "p/later", "p/sub/later"])
    repo.add("p/sub")
    assert agree(repo)[1:] == ([], ["p/f4", "p/later"])
    repo.rm("p/sub", cached=True)  # a whole tracked folder leaves the index
    assert agree(repo)[1:] == ([], ["p/f4", "p/later", "p/sub/"])
    _, cache = cached_walk(repo)
    assert "p/sub" not in cache.new  # no longer tracked: dropped from the file
    assert "p/sub" not in decode(cache_path(repo.worktree.index.path).read_bytes())


def test_ignore_files_added_and_changed(repo: Repository) -> None:
    base_tree(repo, "p/")
    for rel in ("p/a.tmp", "p/b.log", "p/sub/c.tmp", "p/junk/x", "top.tmp"):
        write(repo.root, rel, "u")
    settle()
    assert untracked_of(repo) == ["p/a.tmp", "p/b.log", "p/junk/", "p/sub/c.tmp", "top.tmp"]
    write(repo.root, ".dsrepoignore", "*.tmp\n")  # a new ignore file at the root
    assert untracked_of(repo) == [".dsrepoignore", "p/b.log", "p/junk/"]
    settle()
    agree(repo)
    with open(repo.root / ".dsrepoignore", "a") as f:  # edited in place: no folder changes
        f.write("junk/\n")
    assert untracked_of(repo) == [".dsrepoignore", "p/b.log"]
    write(repo.root, "p/.dsrepoignore", "*.log\n!a.tmp\n")  # in a recorded folder
    assert untracked_of(repo) == [".dsrepoignore", "p/.dsrepoignore", "p/a.tmp"]
    settle()
    agree(repo)
    repo.add(".dsrepoignore", "p/.dsrepoignore")  # a tracked ignore file
    settle()
    assert untracked_of(repo) == ["p/a.tmp"]
    (repo.root / "p/.dsrepoignore").unlink()  # gone: its rules with it
    assert agree(repo)[1:] == (["p/.dsrepoignore"], ["p/b.log"])
    settle()
    assert agree(repo)[1:] == (["p/.dsrepoignore"], ["p/b.log"])


def test_a_change_in_the_recorded_tick_is_seen(repo: Repository) -> None:
    """A file created in a folder whose mtime is then set back to the recorded one (what a
    change in the same timestamp tick looks like): the ctime still differs."""
    base_tree(repo, "p/")
    _, cache = cached_walk(repo)
    rec = cache.new["p"]
    write(repo.root, "p/sneaky", "s")
    os.utime(repo.root / "p", ns=(rec.mtime_ns, rec.mtime_ns))
    assert os.stat(repo.root / "p").st_mtime_ns == rec.mtime_ns
    settle()
    assert untracked_of(repo) == ["p/sneaky"]
    # and a folder changed within the margin before the walk is never recorded
    cache = UntrackedCache.load(cache_path(repo.worktree.index.path))  # the real 2 s margin
    write(repo.root, "p/another", "a")
    walk(repo.root, IgnoreRules.load(repo.root), repo.worktree.index, cache=cache)
    assert "p" not in cache.new and cache.old and not cache.added


def test_racy_folders_are_not_recorded_by_status(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through ``status``: with the 2 s margin nothing fresh is recorded; with a short one the
    file appears and status keeps answering the same."""
    base_tree(repo, "p/")
    write(repo.root, "p/u", "u")
    path = cache_path(repo.worktree.index.path)
    first = repo.status()
    assert not path.exists()  # every folder is younger than 2 s: nothing to write
    monkeypatch.setattr(untrackedcache, "RACY_MARGIN_NS", MARGIN_NS)
    settle()
    assert repo.status() == first
    assert set(decode(path.read_bytes())) == {"", "o", "p", "p/sub"}
    mtime = path.stat().st_mtime_ns
    assert repo.status() == first
    assert path.stat().st_mtime_ns == mtime  # unchanged records: not rewritten
    assert repo.status().untracked == ("p/u",)


def test_core_untracked_cache_false_turns_it_off_and_deletes_the_file(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """For filesystems that do not update a folder's mtime: off, no file is read or written."""
    monkeypatch.setattr(untrackedcache, "RACY_MARGIN_NS", MARGIN_NS)
    base_tree(repo, "p/")
    settle()
    first = repo.status()
    path = cache_path(repo.worktree.index.path)
    assert path.exists()
    assert repo.config.local is not None
    repo.config.local.set(untrackedcache.CONFIG_KEY, "false")
    assert repo.status() == first and not path.exists()
    write(repo.root, "p/new", "n")
    settle()
    assert repo.status().untracked == ("p/new",) and not path.exists()
    repo.config.local.set(untrackedcache.CONFIG_KEY, "true")
    assert repo.status().untracked == ("p/new",) and path.exists()


# ---------------------------------------------------------------- the file


def test_the_file_round_trips_and_damage_is_ignored(repo: Repository) -> None:
    base_tree(repo, "")
    write(repo.root, "u\udcff", "a name that is not UTF-8")
    write(repo.root, "sub/dir/x", "x")
    settle()
    expected = agree(repo)
    path = cache_path(repo.worktree.index.path)
    assert path.name == "index-untracked"
    raw = path.read_bytes()
    assert raw[:8] == b"DSRUNTRK" and raw[8:12] == (1).to_bytes(4, "little")
    records = decode(raw)
    assert records[""].leftover == (
        (".dsrepo", untrackedcache.KIND_DIR),
        ("u\udcff", untrackedcache.KIND_FILE),
    )
    assert encode(records) == raw
    damaged = [
        b"",
        raw[:20],
        raw[:-1],
        raw[:30] + bytes([raw[30] ^ 1]) + raw[31:],
        b"DSRUNTRX" + raw[8:],
        raw[:8] + (2).to_bytes(4, "little") + raw[12:],
        b"x" * 100,
    ]
    for bad in damaged:
        assert decode(bad) == {}
        path.write_bytes(bad)
        r, cache = cached_walk(repo)
        assert normalized(r) == expected
        assert not reused(cache), bad[:40]
        assert decode(path.read_bytes()) == records  # rewritten whole
    # a valid checksum over records of the wrong shape: ignored too
    body = msgpack.packb([[b"", 1, 2]])
    head = b"DSRUNTRK" + (1).to_bytes(4, "little") + body
    assert decode(head + blake3(head).digest()) == {}


def test_an_unwritable_cache_never_fails_status(repo: Repository) -> None:
    base_tree(repo, "p/")
    write(repo.root, "p/u", "u")
    settle()
    expected = agree(repo)
    path = cache_path(repo.worktree.index.path)
    path.unlink()
    path.mkdir()  # not replaceable, even by root
    r, cache = cached_walk(repo)
    assert normalized(r) == expected and cache.changed
    assert path.is_dir()
    path.rmdir()
    dsdir = repo.root / ".dsrepo"
    mode = dsdir.stat().st_mode
    os.chmod(dsdir, 0o555)  # a read-only repository (not for root, who may write anyway)
    try:
        r, _ = cached_walk(repo)
        assert normalized(r) == expected
        assert repo.status().untracked == ("p/u",)
        if os.geteuid() != 0:
            assert not path.exists()
    finally:
        os.chmod(dsdir, stat.S_IMODE(mode))


def test_the_cache_holds_one_record_per_tracked_folder(repo: Repository) -> None:
    for k in range(30):
        write(repo.root, f"d{k}/f", "f")
    repo.add()
    settle()
    agree(repo)
    assert len(decode(cache_path(repo.worktree.index.path).read_bytes())) == 31
    for k in range(20):
        repo.rm(f"d{k}/f")
    settle()
    agree(repo)
    assert set(decode(cache_path(repo.worktree.index.path).read_bytes())) == {""} | {
        f"d{k}" for k in range(20, 30)
    }


# ---------------------------------------------------------------- the forked walk


def test_the_forked_walk_sends_its_records_back(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statuswalk, "PARALLEL_MIN_ROWS", 1)
    monkeypatch.setattr(forking, "can_fork", lambda: True)
    for k in range(12):
        for n in range(10 + k):
            write(repo.root, f"d{k:02}/s/{n}", f"{k} {n}")
    repo.add()
    write(repo.root, "d03/u", "u")
    write(repo.root, "d09/s/u", "u")
    settle()
    r1, c1 = cached_walk(repo, parallel=True)
    assert normalized(r1) == normalized(uncached_walk(repo))
    folders = {""} | {f"d{k:02}" for k in range(12)} | {f"d{k:02}/s" for k in range(12)}
    assert set(c1.new) == folders and c1.added
    r2, c2 = cached_walk(repo, parallel=True)  # every record used, in both processes
    assert normalized(r2) == normalized(r1)
    assert reused(c2) == folders and not c2.added
    (repo.root / "d09/s/u").unlink()
    (repo.root / "d02/s/3").unlink()
    r3, _ = cached_walk(repo, parallel=True)
    assert normalized(r3) == normalized(uncached_walk(repo))
    assert sorted(r3.untracked) == ["d03/u"] and r3.deleted == ["d02/s/3"]


# ---------------------------------------------------------------- random sequences

NAMES = ["a", "b", "c"]
FOLDERS = ["", "x/", "x/y/", "x/y/z/", "w/"]
step = st.tuples(
    st.sampled_from(["create", "remove", "rename", "mkdir", "rmdir", "add", "unstage", "ignore"]),
    st.sampled_from(FOLDERS),
    st.sampled_from(NAMES),
    st.sampled_from(FOLDERS),
    st.booleans(),
)


def apply(repo: Repository, op: str, d: str, name: str, d2: str, n: int) -> None:
    root = repo.root
    src, dst = root / (d + name), root / (d2 + name + "2")
    if op == "create" and not src.is_dir():
        write(root, d + name, f"{n}")
    elif op == "remove" and src.is_file():
        src.unlink()
    elif op == "rename" and src.exists() and not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.rename(src, dst)
    elif op == "mkdir" and not src.exists():
        (root / d / name).mkdir(parents=True)
    elif op == "rmdir" and src.is_dir() and not src.is_symlink():
        shutil.rmtree(src)
    elif op == "add":
        repo.add()
    elif op == "unstage" and (d + name) in repo.worktree.index:
        repo.rm(d + name, cached=True)
    elif op == "ignore":
        write(root, d + ".dsrepoignore", f"{name}*\n" if n % 2 else "")


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(step, min_size=1, max_size=8))
def test_random_changes(
    tmp_path_factory: pytest.TempPathFactory, identity: Path, steps: list[object]
) -> None:
    repo = Repository.init(tmp_path_factory.mktemp("h") / "data")
    try:
        for rel in ("a", "x/a", "x/y/b", "x/y/z/c", "w/a"):
            write(repo.root, rel, rel)
        repo.add()
        settle()
        agree(repo)
        for n, (op, d, name, d2, wait) in enumerate(steps):  # type: ignore[misc]
            apply(repo, op, d, name, d2, n)
            if wait:
                settle()
            agree(repo)
    finally:
        repo.close()


def test_records_survive_pack_and_unpack() -> None:
    r = Record(-5, 2**63, 2**64 - 1, b"\x01" * 16, True, (("a\udcff", 0), ("b", 2)))
    assert untrackedcache.unpack_record(untrackedcache.pack_record("x/\udcfe", r)) == (
        "x/\udcfe",
        r,
    )
    assert decode(encode({"": r, "x": r._replace(leftover=())})) == {
        "": r,
        "x": r._replace(leftover=()),
    }


def test_saving_without_a_path_or_changes_writes_nothing(tmp_path: Path) -> None:
    c = UntrackedCache(None)
    c.start()
    c.save()
    c2 = UntrackedCache.load(tmp_path / "none")
    c2.start()
    c2.save()
    assert not (tmp_path / "none").exists()
