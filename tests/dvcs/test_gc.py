"""``gc`` and ``reflog`` (docs/gc.md, local part): garbage from resets, rewritten commits,
deleted branches and killed writers goes once older than the grace period (ages by the packs'
mtimes, set into the past with ``os.utime``); everything reachable stays (fsck clean, every
version checks out byte for byte), including what only the staging index, MERGE_HEAD, an
interrupted operation or a reflog names; small packs are merged; a gc killed at random instants
leaves a valid repository, and a writer running beside gc loses nothing (the gc lock)."""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from dsrepo import EntryKind, Locked, ObjectId, Repository, RepositoryError, TreeEntry, parse_age
from dsrepo.dvcs import reflog
from dsrepo.dvcs.bare import BareRepository
from dsrepo.dvcs.gc import collect
from dsrepo.dvcs.lock import gc_lock, index_lock
from dsrepo.dvcs.refs import append_locked
from dsrepo.dvcs.stagingindex import StagingIndex
from dsrepo.dvcs.treecache import write_index_tree
from dsrepo.objects import repack
from dsrepo.objects.locindex import LocationIndex
from dsrepo.objects.model import Commit, Signature
from dsrepo.objects.repack import execute, plan, take_inventory
from dsrepo.objects.store import ObjectStore
from dsrepo.remotes.memory import MemoryBackend
from tests.dvcs.conftest import write
from tests.snapshots import snapshot

WEEK = 7 * 86400
Versions = dict[ObjectId, dict[str, bytes]]


# ---------------------------------------------------------------- helpers


def commit(repo: Repository, files: dict[str, bytes], message: str, versions: Versions) -> ObjectId:
    """Write ``files`` into the working copy, commit everything, remember the version."""
    for rel, data in files.items():
        write(repo.root, rel, data)
    repo.add(".")
    oid = repo.commit(message).id
    versions[oid] = snapshot(repo.root)
    return oid


def check_versions(repo: Repository, versions: Versions, tmp: Path) -> None:
    """fsck is clean and every version checks out byte for byte."""
    report = repo.fsck()
    assert report.ok, report.problems
    for i, (oid, files) in enumerate(versions.items()):
        into = tmp / f"check-{time.monotonic_ns()}-{i}"
        repo.checkout(oid.hex(), into=into)
        assert snapshot(into) == files, f"version {oid.hex()[:12]} differs"


def pack_files(repo: Repository) -> list[Path]:
    return sorted((repo.dsdir / "packs").glob("*.pack"))


def age(paths: list[Path], seconds: float) -> None:
    """Make files look written ``seconds`` ago (their mtime is what gc ages packs by)."""
    stamp = time.time() - seconds
    for p in paths:
        os.utime(p, (stamp, stamp))


def pack_of(repo: Repository, oid: ObjectId) -> Path:
    loc = repo.store.locate(oid)
    assert loc is not None
    return repo.dsdir / "packs" / f"{loc.pack}.pack"


def packs_of(repo: Repository, oid: ObjectId) -> list[Path]:
    """The packs holding a commit, its tree and its files (base.txt's too)."""
    tree = repo.store.get_commit(oid).tree
    return sorted(
        {pack_of(repo, oid), pack_of(repo, tree)}
        | {pack_of(repo, e.id) for _, e in repo.walk_tree(tree)}
    )


def versions_tip(repo: Repository) -> ObjectId:
    tip = repo.head_commit()
    assert tip is not None
    return tip


def reset_hard(repo: Repository, target: ObjectId) -> None:
    """git reset --hard, the way a user can: move the branch, then make the files match."""
    repo.update_ref("refs/heads/main", target.hex(), check_old=False)
    repo.checkout("main", force=True)


# ---------------------------------------------------------------- garbage goes


def test_reset_garbage_goes_after_reflog_expire(repo: Repository, tmp_path: Path) -> None:
    versions: Versions = {}
    first = commit(repo, {"a.bin": os.urandom(50_000)}, "first", versions)
    second = commit(repo, {"b.bin": os.urandom(60_000)}, "second", versions)
    reset_hard(repo, first)
    garbage = versions.pop(second)
    assert repo.gc(prune="now").objects_removed == 0  # the reflogs still name `second`
    assert repo.store.has(second)
    assert repo.reflog_expire(expire="now").removed > 0
    report = repo.gc(prune="now")
    assert report.objects_removed == 3  # the commit, its tree and b.bin's chunk
    assert not repo.store.has(second)
    assert report.bytes_reclaimed > 60_000 and report.packs_after < report.packs_before
    assert garbage  # (what it held)
    check_versions(repo, versions, tmp_path)


def test_amended_commit_goes(repo: Repository, tmp_path: Path) -> None:
    versions: Versions = {}
    base = commit(repo, {"data/x.bin": os.urandom(40_000)}, "base", versions)
    typo = commit(repo, {"data/y.bin": os.urandom(30_000)}, "tpyo", versions)
    versions.pop(typo)
    # commit --amend: the same change again on the parent, under another message
    repo.update_ref("refs/heads/main", base.hex(), typo.hex())
    fixed = repo.commit("typo fixed").id
    versions[fixed] = snapshot(repo.root)
    repo.reflog_expire(expire="now")
    report = repo.gc(prune="now")
    assert report.objects_removed == 1  # the old commit only: its tree and files live on
    assert not repo.store.has(typo) and repo.store.has(fixed)
    check_versions(repo, versions, tmp_path)


def test_deleted_branch_goes_and_main_stays(repo: Repository, tmp_path: Path) -> None:
    versions: Versions = {}
    commit(repo, {"keep.bin": os.urandom(30_000)}, "main", versions)
    repo.switch("feature", create=True)
    tip = commit(repo, {"feature.bin": os.urandom(70_000)}, "feature", {})
    repo.switch("main")
    repo.delete_branch("feature", force=True)
    repo.reflog_expire(expire="now")
    report = repo.gc(prune="now")
    assert not repo.store.has(tip)
    assert report.objects_removed == 3 and report.unreachable_kept == 0
    check_versions(repo, versions, tmp_path)


def test_orphan_pack_of_a_killed_writer_goes_after_the_grace(repo: Repository) -> None:
    commit(repo, {"a.txt": b"alive\n"}, "one", {})
    repo.store.put_chunk(os.urandom(20_000))
    (name,) = repo.store.flush()
    (repo.dsdir / "packs" / f"{name}.idx").unlink()  # killed between pack and index
    orphan = repo.dsdir / "packs" / f"{name}.pack"
    repo.store.sync_index()
    assert repo.gc().orphans_removed == []  # young: perhaps a writer still at work
    assert orphan.exists()
    age([orphan], 3 * WEEK)
    report = repo.gc()
    assert report.orphans_removed == [name] and not orphan.exists()
    assert repo.count_objects().orphan_packs == 0
    assert repo.fsck().ok


def test_the_grace_period_follows_pack_mtimes(repo: Repository, tmp_path: Path) -> None:
    versions: Versions = {}
    base = commit(repo, {"base.txt": b"base\n"}, "base", versions)
    old = commit(repo, {"old.bin": os.urandom(30_000)}, "old", {})
    reset_hard(repo, base)
    new = commit(repo, {"new.bin": os.urandom(30_000)}, "new", {})
    reset_hard(repo, base)
    repo.reflog_expire(expire="now")
    age(packs_of(repo, old), 2 * 3600)
    age(packs_of(repo, new), 600)
    report = repo.gc(prune="1.hour")
    assert not repo.store.has(old) and repo.store.has(new)
    assert report.unreachable_kept == 3 and report.objects_removed == 3
    assert repo.gc().objects_removed == 0  # 2 weeks: the young garbage stays
    age(pack_files(repo), 3 * WEEK)
    assert repo.gc().objects_removed == 3
    assert not repo.store.has(new)
    check_versions(repo, versions, tmp_path)


def test_a_fresh_unreferenced_object_survives(repo: Repository) -> None:
    commit(repo, {"a.txt": b"a\n"}, "one", {})
    loose = repo.hash_object(b"written by hash-object -w\n", write=True).content_id
    report = repo.gc()
    assert repo.store.has(loose) and report.unreachable_kept == 1
    assert repo.gc(prune="never").unreachable_kept == 1
    assert repo.gc(prune="now").objects_removed == 1
    assert not repo.store.has(loose)


def test_dry_run_changes_nothing(repo: Repository) -> None:
    commit(repo, {"a.txt": b"a\n"}, "one", {})
    repo.hash_object(b"garbage\n", write=True)
    before = sorted(p.name for p in (repo.dsdir / "packs").iterdir())
    report = repo.gc(prune="now", dry_run=True)
    assert report.dry_run and report.objects_removed == 1 and report.packs_removed
    assert sorted(p.name for p in (repo.dsdir / "packs").iterdir()) == before
    real = repo.gc(prune="now")
    assert (real.objects_removed, real.packs_after) == (1, report.packs_after)
    assert abs(real.bytes_after - report.bytes_after) < 512  # the estimate is close


# ---------------------------------------------------------------- what stays


def test_repack_merges_small_packs_and_reads_stay_verified(
    repo: Repository, tmp_path: Path
) -> None:
    versions: Versions = {}
    for i in range(8):
        commit(repo, {f"f{i}.bin": os.urandom(20_000 + i)}, f"v{i}", versions)
    other = Repository.open(repo.root)  # opened before: its location cache goes stale
    entries = list(other.walk_tree(other.store.get_commit(versions_tip(other)).tree))
    before = repo.count_objects()
    report = repo.gc()  # nothing is garbage: only the merge
    after = repo.count_objects()
    assert report.objects_removed == 0 and before.packs == 16 and after.packs == 2
    assert after.objects == before.objects
    for path, e in entries:  # the other instance reads through the new packs, verified
        assert b"".join(other.read_file(e)) == (repo.root / path).read_bytes()
    other.close()
    check_versions(repo, versions, tmp_path)
    assert repo.gc().packs_written == 0  # nothing left to merge: no churn


def test_aggressive_rewrites_everything(repo: Repository, tmp_path: Path) -> None:
    versions: Versions = {}
    for i in range(3):
        commit(repo, {f"f{i}.bin": os.urandom(10_000)}, f"v{i}", versions)
    report = repo.gc(aggressive=True)
    assert report.packs_before == 6 and report.packs_after == 2
    check_versions(repo, versions, tmp_path)
    again = repo.gc(aggressive=True)  # the same packs again: nothing to replace
    assert again.packs_after == 2 and again.packs_removed == []
    check_versions(repo, versions, tmp_path)


def test_staged_content_survives(repo: Repository, tmp_path: Path) -> None:
    """git-lfs #5636: prune must not delete what is staged but not committed yet."""
    versions: Versions = {}
    commit(repo, {"a.txt": b"a\n"}, "one", versions)
    big = os.urandom(3 * 1024 * 1024)  # chunked: a manifest and its chunks
    small = os.urandom(5_000)
    write(repo.root, "big.bin", big)
    write(repo.root, "small.bin", small)
    repo.add(".")
    age(pack_files(repo), 3 * WEEK)
    repo.gc(prune="now", aggressive=True)
    (repo.root / "big.bin").unlink()
    (repo.root / "small.bin").unlink()
    repo.restore("big.bin", "small.bin", cwd=repo.root)  # from the staging area
    assert (repo.root / "big.bin").read_bytes() == big
    assert (repo.root / "small.bin").read_bytes() == small
    versions[repo.commit("staged").id] = snapshot(repo.root)
    check_versions(repo, versions, tmp_path)


def test_staged_content_reached_through_the_tree_cache_survives(repo: Repository) -> None:
    """Staged entries are roots through the index's tree cache: a folder whose cached tree is
    stored (here in no commit) keeps its files through that tree; the entries of folders whose
    cache was dropped by a change are roots one by one, chunked files by their manifest."""
    commit(repo, {"keep.txt": b"k\n"}, "one", {})
    files = {f"y/{i}.bin": os.urandom(2_000) for i in range(5)}
    files |= {"x/a.bin": os.urandom(3_000), "x/big.bin": os.urandom(3 * 1024 * 1024)}
    for p, data in files.items():
        write(repo.root, p, data)
    repo.add(".")
    index = StagingIndex(repo.dsdir / "index")
    with index_lock(repo.dsdir).held():  # the trees of the staged snapshot, in no commit
        write_index_tree(repo.store, index)
        repo.store.flush()
        index.save_trees()
    files["x/a.bin"] = os.urandom(2_500)
    write(repo.root, "x/a.bin", files["x/a.bin"])
    repo.add("x/a.bin")  # drops x/ and the root from the cache; y/ stays
    trees = StagingIndex(repo.dsdir / "index").trees
    assert "y" in trees and "x" not in trees and "" not in trees
    age(pack_files(repo), 3 * WEEK)
    report = repo.gc(prune="now", aggressive=True)
    assert report.objects_removed > 0  # the first x/a.bin went
    for p in files:
        (repo.root / p).unlink()
    repo.restore(*files, cwd=repo.root)  # from the staging area
    assert {p: (repo.root / p).read_bytes() for p in files} == files
    repo.fsck()


def test_merge_head_and_an_interrupted_operation_keep_their_commits(
    repo: Repository, tmp_path: Path
) -> None:
    versions: Versions = {}
    commit(repo, {"a.txt": b"a\n"}, "base", versions)
    repo.switch("other", create=True)
    theirs = commit(repo, {"theirs.txt": b"theirs\n"}, "theirs", {})
    repo.switch("main")
    commit(repo, {"ours.txt": b"ours\n"}, "ours", versions)
    repo.merge("other", no_commit=True)  # MERGE_HEAD names theirs
    repo.delete_branch("other", force=True)
    repo.reflog_expire(expire="now")
    repo.gc(prune="now")
    assert repo.store.has(theirs)
    repo.merge_abort()
    (repo.dsdir / "OPERATION").write_text(f"checkout {theirs.hex()}\n")  # a killed checkout
    repo.gc(prune="now")
    assert repo.store.has(theirs)
    (repo.dsdir / "OPERATION").unlink()
    repo.gc(prune="now")
    assert not repo.store.has(theirs)
    check_versions(repo, versions, tmp_path)


def test_sharded_trees_keep_their_shards(repo: Repository, tmp_path: Path) -> None:
    store = repo.store
    entries = []
    for i in range(4500):  # more than 4096 entries: stored as shards
        data = b"file %d\n" % i
        entries.append(TreeEntry(f"f{i:05d}", EntryKind.FILE, len(data), store.put_chunk(data)))
    tree = store.put_tree(entries)
    assert store.get_tree(tree).shards
    who = repo.identity()
    cid = store.put(Commit(tree, (), who, who, "big directory\n"))
    store.put_chunk(b"garbage in the same pack\n")
    store.flush()
    repo.update_ref("refs/heads/big", cid.hex(), "")
    report = repo.gc(prune="now")
    assert report.objects_removed == 1
    assert store.missing([e.id for e in entries]) == set()
    assert repo.fsck().ok
    into = tmp_path / "big"
    repo.checkout("big", into=into)
    assert len(os.listdir(into)) == 4500


def test_damage_stops_gc_before_anything_is_deleted(repo: Repository) -> None:
    versions: Versions = {}
    commit(repo, {"a.txt": b"a\n"}, "one", versions)
    repo.hash_object(b"garbage\n", write=True)
    (repo.dsdir / "refs" / "heads" / "ghost").write_text("ab" * 32 + "\n")
    before = sorted(p.name for p in (repo.dsdir / "packs").iterdir())
    with pytest.raises(RepositoryError, match="damaged"):
        repo.gc(prune="now")
    assert sorted(p.name for p in (repo.dsdir / "packs").iterdir()) == before


def test_an_index_without_its_pack_holds_nothing(repo: Repository) -> None:
    """A live object whose only other copy is in a pack whose file is gone is still copied."""
    oid = commit(repo, {"x.bin": os.urandom(10_000)}, "x", {})
    chunk = next(e.id for _, e in repo.walk_tree(repo.store.get_commit(oid).tree))
    twin = ObjectStore(repo.backend, LocationIndex(None), repo.store.format)
    twin.put_chunk(repo.store.get_raw(chunk)[1])
    twin.put_chunk(b"another pack than the first: another name")
    (broken,) = twin.flush()
    twin.close()
    (repo.dsdir / "packs" / f"{broken}.pack").unlink()
    repo.gc(aggressive=True)
    intact = take_inventory(repo.backend).packs.values()
    assert any(p.size is not None and chunk in {e.id for e in p.entries} for p in intact)


def test_collect_runs_over_any_store() -> None:
    """The mark and sweep halves work on a bare repository over any backend (here in memory,
    its mtimes set by hand), as the remote gc needs."""
    bare = BareRepository.in_memory()
    store, backend = bare.store, bare.backend
    assert isinstance(backend, MemoryBackend)
    keep = store.put_chunk(b"keep\n")
    tree = store.put_tree([TreeEntry("k", EntryKind.FILE, 5, keep)])
    who = Signature("gc", "gc@example.com", 0, 0)
    tip = store.put(Commit(tree, (), who, who, "root\n"))
    store.flush()
    drop = store.put_chunk(b"drop\n")
    (garbage_pack,) = store.flush()
    bare.refs.update("refs/heads/main", tip, None)
    roots = list(bare.refs.list().items())
    report = collect(store, roots)
    assert (report.objects_removed, report.unreachable_kept) == (0, 1)
    backend.set_mtime(f"packs/{garbage_pack}.pack", time.time() - 3 * WEEK)
    report = collect(store, roots)
    assert (report.objects_removed, report.reachable) == (1, 3)
    assert not store.has(drop) and store.get_raw(keep)[1] == b"keep\n"


@pytest.mark.parametrize("window", [repack.READ_WINDOW, 100])
def test_an_object_two_leaving_packs_hold_is_copied_once_in_pack_order(
    window: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy list holds positions in each pack's index: every live object once (from the
    first leaving pack that holds it), each pack's in offset order, none of the garbage; the
    source packs are read a window at a time (here also one record a window)."""
    monkeypatch.setattr(repack, "READ_WINDOW", window)
    bare = BareRepository.in_memory()
    store, backend = bare.store, bare.backend
    first = [store.put_chunk(b"first %d\n" % i) for i in range(5)]
    store.flush()
    other = ObjectStore(backend, LocationIndex(None), store.format)  # knows nothing stored
    second = [other.put_chunk(b"first %d\n" % i) for i in (3, 1)]  # both already in the first
    second += [other.put_chunk(b"second %d\n" % i) for i in range(3)]
    other.flush()
    other.close()
    dead = second[-1]
    live = set(first) | set(second[:-1])
    todo = plan(take_inventory(backend), live, math.inf, aggressive=True)
    copied = [e.id for _, e in todo.copy]
    assert sorted(copied) == sorted(live) and len(copied) == len(set(copied)) == 7
    assert todo.garbage == {dead}
    for _, entries in todo.copy.packs():
        assert [e.offset for e in entries] == sorted(e.offset for e in entries)
    assert len(todo.copy) == 7 and todo.packs_to_write() == 1
    execute(store, take_inventory(backend), todo)
    store.sync_index()
    assert all(store.get_raw(oid)[1].startswith((b"first", b"second")) for oid in live)
    assert not store.has(dead)


# ---------------------------------------------------------------- the gc lock


HOLDER = """
    import sys, time
    from pathlib import Path
    from dsrepo.dvcs.lock import gc_lock
    lock = gc_lock(Path(sys.argv[1]))
    with (lock.exclusive() if sys.argv[2] == "exclusive" else lock.shared()):
        print("held", flush=True)
        time.sleep(60)
"""


def hold(repo: Repository, mode: str) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), str(repo.dsdir), mode],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdout is not None and p.stdout.readline() == "held\n"
    return p


@pytest.mark.slow
def test_writers_wait_for_gc_and_gc_for_writers(repo: Repository) -> None:
    commit(repo, {"a.txt": b"a\n"}, "one", {})
    repo.gc_lock_timeout = 0.3
    write(repo.root, "b.txt", "b\n")
    holder = hold(repo, "exclusive")  # a gc at work
    try:
        with pytest.raises(Locked, match="running gc"):
            repo.add(".")
        with pytest.raises(Locked):
            repo.commit("nope", all=True)
        with pytest.raises(Locked):
            repo.tag("v1", message="annotated")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    repo.add(".")  # a killed gc leaves no stale lock
    holder = hold(repo, "shared")  # a writer at work
    try:
        with pytest.raises(Locked, match="writing objects"):
            repo.gc()
        repo.gc(dry_run=True)  # deletes nothing: runs beside writers
        repo.commit("two")  # writers share the lock
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    repo.gc()


def test_gc_inside_a_shared_hold_is_refused(repo: Repository) -> None:
    with gc_lock(repo.dsdir).shared(), pytest.raises(RepositoryError, match="exclusively"):
        repo.gc()
    with gc_lock(repo.dsdir).exclusive():
        repo.add(".")  # gc may call writers: shared inside exclusive is granted


# ---------------------------------------------------------------- reflog


def test_reflog_lists_newest_first_and_expires_by_age(repo: Repository) -> None:
    one = commit(repo, {"a.txt": b"1\n"}, "one", {})
    two = commit(repo, {"a.txt": b"2\n"}, "two", {})
    log = repo.reflog()
    assert [e.new for e in log] == [two, one]
    assert [e.message for e in log] == ["commit: two", "commit (initial): one"]
    assert repo.reflog("main") == repo.reflog("refs/heads/main") == log
    with pytest.raises(RepositoryError):
        repo.reflog("nosuch")
    assert reflog.expire(repo.refs, None, "1.day").removed == 0
    later = time.time() + 2 * 86400
    result = reflog.expire(repo.refs, ["main"], "1.day", now=later, dry_run=True)
    assert (result.removed, len(repo.reflog("main"))) == (2, 2)
    assert reflog.expire(repo.refs, ["main"], "1.day", now=later).removed == 2
    assert repo.reflog("main") == [] and len(repo.reflog()) == 2


def test_expire_loses_no_concurrent_update(repo: Repository) -> None:
    one = commit(repo, {"a.txt": b"1\n"}, "one", {})
    two = commit(repo, {"a.txt": b"2\n"}, "two", {})
    log = repo.dsdir / "logs" / "refs" / "heads" / "x"
    repo.update_ref("refs/heads/x", one.hex(), "")
    updates = 100
    stop = threading.Event()

    def expire_loop() -> None:
        old = f"{'0' * 64} {one.hex()} old <old@x> 1 +0000\told\n".encode()
        while not stop.is_set():
            append_locked(log, old)  # an entry from 1970: each round has one to drop
            reflog.expire(repo.refs, ["refs/heads/x"], "1.day")

    expirer = threading.Thread(target=expire_loop)
    expirer.start()
    try:
        current = one
        for _ in range(updates):
            nxt = two if current == one else one
            repo.refs.update("refs/heads/x", nxt, current, message="flip")
            current = nxt
    finally:
        stop.set()
        expirer.join()
    reflog.expire(repo.refs, ["refs/heads/x"], "1.day")
    assert len(repo.reflog("refs/heads/x")) == updates + 1


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("now", 0),
        ("1h", 3600),
        ("14d", 14 * 86400),
        ("2.weeks", 2 * WEEK),
        ("2 weeks ago", 2 * WEEK),
        ("90.days", 90 * 86400),
        ("3.months", 90 * 86400),
        ("30min", 1800),
        ("1.5h", 5400),
        ("never", float("inf")),
    ],
)
def test_parse_age(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "2", "-1h", "2.fortnights", "h1"])
def test_parse_age_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="invalid age"):
        parse_age(text)


# ---------------------------------------------------------------- kills and races

GC_RUNNER = """
    import sys, time
    from dsrepo import Repository
    repo = Repository.open(sys.argv[1])
    print("start", flush=True)
    start = time.monotonic()
    repo.gc(prune="now", aggressive=sys.argv[2] == "1")
    print(time.monotonic() - start, flush=True)
"""


def read_versions(repo: Repository, versions: Versions) -> None:
    """fsck is clean and every version reads back byte for byte (through the store, verified)."""
    report = repo.fsck()
    assert report.ok, report.problems
    for oid, files in versions.items():
        tree = repo.store.get_commit(oid).tree
        got = {p: repo.store.read_all(e) for p, e in repo.walk_tree(tree)}
        assert got == files, f"version {oid.hex()[:12]} differs"


def start_gc(repo: Repository, aggressive: bool) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(GC_RUNNER), str(repo.root), str(int(aggressive))],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdout is not None and p.stdout.readline() == "start\n"
    return p


@pytest.mark.slow
def test_gc_killed_at_random_instants_leaves_a_valid_repository(repo: Repository) -> None:
    rng = random.Random(5636)
    versions: Versions = {}
    for i in range(4):
        commit(repo, {f"d/f{i}.bin": os.urandom(6 << 20)}, f"v{i}", versions)

    def make_garbage(n: int) -> None:
        tip = repo.head_commit()
        assert tip is not None
        commit(repo, {f"junk{n}.bin": os.urandom(1 << 20)}, "junk", {})
        reset_hard(repo, tip)
        repo.reflog_expire(expire="now")

    duration = math.inf  # of a whole run here: the shortest seen
    for n in (-2, -1):
        make_garbage(n)
        out, _ = start_gc(repo, aggressive=True).communicate(timeout=120)
        duration = min(duration, float(out))
    kills = 0
    deadline = time.monotonic() + 90
    for n in range(10):
        if time.monotonic() > deadline:
            break
        make_garbage(n)
        p = start_gc(repo, aggressive=n % 5 != 4)  # aggressive: rewrites all, takes longer
        time.sleep(rng.uniform(0.0, 0.9 * duration))
        p.send_signal(signal.SIGKILL)
        out, _ = p.communicate()
        if out:  # it finished first
            duration = min(duration, float(out))
        else:
            kills += 1
        fresh = Repository.open(repo.root)
        read_versions(fresh, versions)
        fresh.close()
    assert kills >= 5, f"{kills} kills landed inside a run of {duration:.2f} s"
    report = repo.gc(prune="now")  # finishes whatever the killed runs left
    assert repo.count_objects().orphan_packs == 0 and report.packs_after <= 3
    read_versions(repo, versions)


WRITER = """
    import sys
    from pathlib import Path
    from dsrepo import Repository
    root, pool = Path(sys.argv[1]), Path(sys.argv[2])
    repo = Repository.open(root)
    for i, src in enumerate(sorted(pool.iterdir())):
        (root / f"w{i:02d}.bin").write_bytes(src.read_bytes())  # content only garbage holds
        repo.add(".")
        print(repo.commit(f"w{i}").id.hex(), flush=True)
"""


@pytest.mark.slow
def test_a_writer_beside_gc_loses_nothing(repo: Repository, tmp_path: Path) -> None:
    """The writer adds content that, when it starts, only garbage packs hold: without the gc
    lock, add finds it present (and writes nothing), gc deletes it, the commit names nothing."""
    base = commit(repo, {"base.txt": b"base\n"}, "base", {})
    pool = tmp_path / "pool"
    pool.mkdir()
    for i in range(16):
        data = os.urandom(30_000 + i)
        (pool / f"p{i:02d}").write_bytes(data)
        write(repo.root, f"w{i:02d}.bin", data)
    repo.add(".")
    repo.commit("the pool, soon garbage")
    reset_hard(repo, base)
    repo.reflog_expire(expire="now")
    writer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WRITER), str(repo.root), str(pool)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    runs = 0
    while writer.poll() is None:
        repo.reflog_expire(expire="now")
        repo.gc(prune="now")
        runs += 1
        time.sleep(0.005)  # let the writer take the lock between two runs
    out, err = writer.communicate()
    assert writer.returncode == 0, err
    assert len(out.split()) == 16 and runs > 1
    repo.gc(prune="now")
    assert repo.fsck().ok
    tip = repo.head_commit()
    assert tip is not None and tip.hex() == out.split()[-1]
    into = tmp_path / "tip"
    repo.checkout(tip.hex(), into=into)
    files = snapshot(into)
    for i in range(16):
        assert files[f"w{i:02d}.bin"] == (pool / f"p{i:02d}").read_bytes()
