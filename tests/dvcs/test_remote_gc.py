"""Collecting a shared remote (``gc --remote``), ``push --delete`` and ``fsck --remote``, on a
directory remote and on S3 (a moto server): the protocol of docs/gc.md end to end.

The interleavings themselves are explored in ``test_gc_protocol.py``; here real pushers race a
real collector, and each mechanism is checked on its own: the lease, lost answers of conditional
writes, pushes that re-send what only doomed packs hold, the re-check before a ref moves, readers
holding a stale index cache, pack names that collide with doomed ones, and fsck's findings.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import threading
import time
from pathlib import Path

import pytest

import dsrepo
from dsrepo import RemoteGcBusy, Repository
from dsrepo.dvcs import push as push_module
from dsrepo.dvcs.bare import BareRepository
from dsrepo.dvcs.errors import RemoteError, UnknownRevision
from dsrepo.dvcs.refs import RefStore
from dsrepo.dvcs.remote import open_remote
from dsrepo.dvcs.remotegc import (
    GENERATION_KEY,
    LEASE_KEY,
    Generation,
    Lease,
    _Run,
    collect_remote,
    read_generation,
    swap,
    write_generation,
)
from dsrepo.objects import layout
from dsrepo.objects.chunking import ChunkerParams, RepoFormat
from dsrepo.objects.filereader import read_chunks
from dsrepo.objects.ids import hash_data
from dsrepo.objects.locindex import LocationIndex
from dsrepo.objects.store import ObjectStore
from dsrepo.objects.transfer import CopyStats, copy_metadata, copy_objects
from dsrepo.remotes.directory import DirectoryBackend
from dsrepo.remotes.errors import KeyNotFound
from dsrepo.remotes.faults import FlakyBackend
from dsrepo.remotes.memory import MemoryBackend
from dsrepo.remotes.retry import RetryingBackend
from dsrepo.server.config import ServeConfig
from tests.cli.conftest import Cli
from tests.server.conftest import Serve, commit_file
from tests.server.conftest import cli as cli
from tests.server.conftest import client_env as client_env
from tests.server.conftest import serve as serve
from tests.server.test_remote_api import at
from tests.snapshots import snapshot
from tests.sync_fixtures import Ds, RemoteSpec, commit_all, make_remote, new_repo, rand, write
from tests.sync_fixtures import ds_fixture as ds_fixture
from tests.sync_fixtures import remote_fixture as remote_fixture
from tests.sync_fixtures import sync_env_fixture as sync_env_fixture

SETTLE = 0.2
FAST = {"settle_seconds": SETTLE, "delete_delay": 0.0, "prune": "now"}
FMT = RepoFormat(chunker=ChunkerParams())


def init_generation(remote: RemoteSpec, settle: float = SETTLE) -> None:
    """What pushers are told to respect before any collection ran (the default is 10 s)."""
    backend = remote.backend()
    try:
        swap(backend, GENERATION_KEY, None, Generation(settle_seconds=settle).encode())
    finally:
        backend.close()


def published(tmp_path: Path, remote: RemoteSpec) -> Repository:
    """A repository whose main is on ``remote`` (files a.bin, b.bin, c.txt), and a deleted
    branch ``tmp`` whose objects (t.bin: 400 kB) are now garbage there."""
    repo = new_repo(tmp_path / "work")
    write(repo.root, "a.bin", rand(50_000, 1))
    write(repo.root, "b.bin", rand(30_000, 2))
    write(repo.root, "c.txt", "hello\n")
    commit_all(repo, "one")
    remote.add_to(repo)
    assert repo.push("origin").ok
    repo.switch("tmp", create=True)
    write(repo.root, "t.bin", rand(400_000, 3))
    commit_all(repo, "tmp")
    repo.switch("main")
    assert repo.push("origin", ["tmp"]).ok
    assert repo.push("origin", delete=["tmp"]).ok
    init_generation(remote)
    return repo


def remote_ids(remote: RemoteSpec) -> set[bytes]:
    return {e.id for name in remote.packs() for e in remote.index(name)[1]}


def assert_complete(repo: Repository, tmp_path: Path, label: str = "check") -> None:
    """fsck --remote --read-data is clean and a fresh clone equals the pushed main."""
    report = repo.fsck_remote("origin", read_data=True)
    assert report.ok, report.problems
    spec = repo.remotes()[0]
    fresh = Repository.clone(spec.url, tmp_path / label, s3=spec.s3)
    try:
        assert fresh.head_commit() == repo.refs.resolve("refs/heads/main")
        expected = {k: v for k, v in snapshot(repo.root).items() if k != "t.bin"}
        assert snapshot(fresh.root) == expected
    finally:
        fresh.close()


# ---------------------------------------------------------------- push --delete


def test_push_delete_and_colon_ref_delete_remote_refs(
    tmp_path: Path, remote: RemoteSpec, ds: Ds
) -> None:
    repo = new_repo(tmp_path / "w")
    write(repo.root, "x.txt", "x\n")
    commit_all(repo, "x")
    remote.add_to(repo)
    repo.branch("exp")
    repo.tag("v1")
    assert repo.push("origin", ["main", "exp", "v1"]).ok
    assert repo.refs.resolve("refs/remotes/origin/exp") is not None
    dry = repo.push("origin", delete=["exp"], dry_run=True)
    assert [(u.ref, u.new, str(u.status)) for u in dry.updates] == [
        ("refs/heads/exp", None, "would update")
    ]
    assert remote.ref("refs/heads/exp") is not None
    result = repo.push("origin", delete=["exp"])
    assert result.ok and result.updates[0].new is None
    assert remote.ref("refs/heads/exp") is None
    assert repo.refs.resolve("refs/remotes/origin/exp") is None  # the tracking ref follows
    out = ds(repo.root, "push", "origin", ":v1")
    assert remote.ref("refs/tags/v1") is None
    assert "-> (deleted)" in out.out
    ds.fail(4, repo.root, "push", "origin", ":nope")
    with pytest.raises(UnknownRevision):
        repo.push("origin", delete=["exp"])
    assert remote.ref("refs/heads/main") is not None
    ds(repo.root, "push", "origin", "exp")
    ds(repo.root, "push", "--delete", "origin", "exp")
    assert remote.ref("refs/heads/exp") is None


# ---------------------------------------------------------------- collecting


def test_garbage_is_doomed_by_one_run_and_deleted_by_a_later_one(
    tmp_path: Path, remote: RemoteSpec
) -> None:
    repo = published(tmp_path, remote)
    garbage = hash_data(rand(400_000, 3))
    assert garbage in remote_ids(remote)
    packs = remote.packs()
    dry = repo.gc_remote("origin", dry_run=True, **FAST)
    assert dry.doomed and not dry.deleted and remote.packs() == packs
    first = repo.gc_remote("origin", **FAST)
    assert first.doomed and not first.deleted
    assert remote.packs() >= set(first.doomed) - set(remote.pack_files())  # nothing deleted
    backend = remote.backend()
    gen = read_generation(backend)
    backend.close()
    assert gen.settled and set(first.doomed) <= set(gen.doomed) and gen.counter == 1
    assert_complete(repo, tmp_path, "after-doom")
    second = repo.gc_remote("origin", **FAST)
    assert set(first.doomed) <= set(second.deleted)
    assert second.bytes_deleted > 400_000 and second.bytes_after < first.bytes_after
    assert garbage not in remote_ids(remote)
    assert not set(second.deleted) & (remote.packs() | remote.pack_files())
    assert_complete(repo, tmp_path, "after-delete")


def test_gc_remote_command(tmp_path: Path, sync_env: Path, ds: Ds) -> None:
    remote = make_remote("dir", tmp_path, None)
    repo = published(tmp_path, remote)
    fast = ["--prune", "now", "--settle", str(SETTLE)]
    dry = ds(repo.root, "gc", "--remote", "origin", "--dry-run", *fast)
    doomed = [line.split()[-1] for line in dry.out.splitlines() if line.startswith("would doom")]
    assert doomed and "would delete 0 doomed pack(s)" in dry.out
    out = ds(repo.root, "gc", "--remote", "origin", *fast).out  # -q: the packs only
    assert out.splitlines() == [f"doomed pack {n}" for n in doomed]
    assert set(doomed) <= set(read_generation(remote.backend()).doomed)
    out = ds(repo.root, "gc", "--remote", "origin", "--delete-delay", "now", *fast).out
    assert out.splitlines()[: len(doomed)] == [f"deleted pack {n}" for n in sorted(doomed)]
    assert not set(doomed) & remote.packs()
    Lease(remote.backend(), "a teammate", 3600).acquire()
    busy = ds.fail(11, repo.root, "gc", "--remote", "origin", *fast)
    assert "a teammate" in busy.err
    assert ds.run(repo.root, "gc", "--remote", "origin", "--aggressive").code == 2


def test_young_garbage_and_a_recent_doom_wait(tmp_path: Path, sync_env: Path) -> None:
    remote = make_remote("dir", tmp_path, None)
    repo = published(tmp_path, remote)
    young = repo.gc_remote("origin", prune="1.hour", settle_seconds=SETTLE)
    assert not young.doomed and not young.deleted
    doom = repo.gc_remote("origin", prune="now", settle_seconds=SETTLE)
    assert doom.doomed
    wait = repo.gc_remote("origin", prune="now", settle_seconds=SETTLE)  # delay: 1 h
    assert not wait.deleted and wait.waiting == sorted(doom.doomed)


def test_one_collector_at_a_time(tmp_path: Path) -> None:
    mem = MemoryBackend()
    first, second = Lease(mem, "first", 60), Lease(mem, "second", 60)
    first.acquire()
    with pytest.raises(RemoteGcBusy, match="first"):
        second.acquire()
    mem.set_mtime(LEASE_KEY, time.time() - 61)  # expired
    second.acquire()
    with pytest.raises(RemoteError, match="lost"):
        first.renew()
    first.release()  # not ours any more: left alone
    assert b"second" in mem.get(LEASE_KEY)
    second.release()
    with pytest.raises(KeyNotFound):
        mem.get(LEASE_KEY)


def test_a_busy_lease_stops_a_second_collection(tmp_path: Path, sync_env: Path) -> None:
    remote = make_remote("dir", tmp_path, None)
    repo = published(tmp_path, remote)
    backend = remote.backend()
    Lease(backend, "someone else", 3600).acquire()
    with pytest.raises(RemoteGcBusy):
        repo.gc_remote("origin", **FAST)
    assert read_generation(backend).counter == 0
    backend.close()


def test_lost_answers_of_conditional_writes_are_not_conflicts() -> None:
    mem = MemoryBackend()
    flaky = FlakyBackend(mem, failures=1, operations=["compare_and_swap"], after=True)
    lease = Lease(flaky, "me", 60)
    lease.acquire()  # the swap landed, its answer was lost: read back, ours
    assert flaky.calls["compare_and_swap"] == 1 and b"me" in mem.get(LEASE_KEY)
    flaky.failures = 2
    gen = write_generation(flaky, Generation(), counter=1)
    assert read_generation(mem).counter == 1 and read_generation(mem).write_id == gen.write_id
    gen = write_generation(flaky, gen, counter=2)  # the 3rd swap: answered
    assert read_generation(mem) == gen
    # and a whole collection through a backend that loses answers, behind RetryingBackend
    ObjectStore.initialize(mem, FMT)
    lease.release()
    lossy = RetryingBackend(
        FlakyBackend(mem, failures=4, operations=["compare_and_swap", "put", "delete"], after=True),
        sleep=lambda _s: None,
    )
    bare = BareRepository(lossy, ObjectStore(lossy, LocationIndex(None), FMT), RefStore(lossy))
    report = collect_remote(bare, settle_seconds=0.01, delete_delay=0, prune="now")
    assert report.counter == 2
    assert LEASE_KEY not in {k.key for k in mem.list("gc/")}


# ---------------------------------------------------------------- pushers


def test_a_push_resends_what_only_doomed_packs_hold(
    tmp_path: Path, remote: RemoteSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = published(tmp_path, remote)
    doom = repo.gc_remote("origin", **FAST)
    assert doom.doomed
    result = repo.push("origin", ["tmp"])  # its objects are on the remote, but doomed
    assert result.ok and result.stats.objects >= 3
    monkeypatch.setattr(_Run, "remark_before_delete", False)  # the push alone must suffice
    done = repo.gc_remote("origin", **FAST)
    assert set(doom.doomed) <= set(done.deleted)
    assert repo.fsck_remote("origin", read_data=True).ok
    assert hash_data(rand(400_000, 3)) in remote_ids(remote)


def test_a_push_checks_the_generation_again_before_moving_refs(
    tmp_path: Path, sync_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A collection dooms what the push relied on between its copy and its ref update: the
    push sees the counter move and sends those objects again."""
    remote = make_remote("dir", tmp_path, None)
    repo = published(tmp_path, remote)
    real_copy = push_module.copy_objects
    calls: list[int] = []

    def copy_then_collect(*args: object, **kwargs: object) -> object:
        stats = real_copy(*args, **kwargs)  # type: ignore[arg-type]
        if not calls:
            calls.append(stats.objects)
            with open_remote(repo, "origin") as r:
                assert collect_remote(r, **FAST).doomed  # tmp is not on the remote yet
        else:
            calls.append(stats.objects)
        return stats

    monkeypatch.setattr(push_module, "copy_objects", copy_then_collect)
    assert repo.push("origin", ["tmp"]).ok
    assert calls[0] == 0 and calls[1] >= 3  # nothing sent at first, then what was doomed
    monkeypatch.setattr(_Run, "remark_before_delete", False)
    assert repo.gc_remote("origin", **FAST).deleted
    assert repo.fsck_remote("origin", read_data=True).ok


def test_a_pack_named_like_a_doomed_one_is_written_again_salted() -> None:
    src = ObjectStore(MemoryBackend(), LocationIndex(None), FMT)
    ObjectStore.initialize(src.backend, FMT)
    ids = [src.put_chunk(random.Random(i).randbytes(1000)) for i in range(5)]
    src.flush()
    dst_backend = MemoryBackend()
    ObjectStore.initialize(dst_backend, FMT)
    dst = ObjectStore(dst_backend, LocationIndex(None), FMT)
    copy_objects(src, dst, ids)
    (doomed,) = dst.pack_names()
    stats = copy_objects(src, dst, ids, avoid_packs={doomed})  # same objects, same order
    assert stats.objects >= 5
    located = dst.locate_many(ids)
    assert located and all(loc.pack != doomed for loc in located.values())
    assert len(dst.pack_names()) == 1 and doomed not in dst.pack_names()
    dst.sync_index()
    assert len(dst.pack_names()) == 2


def test_a_push_between_a_deletions_index_and_pack_leaves_no_stray_index(
    tmp_path: Path, sync_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Phase 2 deletes a doomed pack's index, then its pack. A push that re-sends the same
    objects in between builds a pack of the same name: it must not write that index again (the
    pack under it is about to go), nor rely on it."""
    remote = make_remote("dir", tmp_path, None)
    repo = published(tmp_path, remote)
    assert repo.gc_remote("origin", **FAST).doomed
    real_delete = DirectoryBackend.delete
    pushes: list[bool] = []

    def delete_then_push(self: DirectoryBackend, key: str) -> None:
        real_delete(self, key)
        if layout.pack_name_from_index_key(key) is not None and not pushes:
            pushes.append(repo.push("origin", ["tmp"]).ok)  # tmp's objects, as first sent

    monkeypatch.setattr(DirectoryBackend, "delete", delete_then_push)
    assert repo.gc_remote("origin", **FAST).deleted
    monkeypatch.setattr(DirectoryBackend, "delete", real_delete)
    assert pushes == [True]
    assert_readable(repo, tmp_path, "origin/tmp", "t.bin", rand(400_000, 3))


def assert_readable(repo: Repository, tmp_path: Path, rev: str, path: str, data: bytes) -> None:
    """fsck --remote --read-data is clean and a fresh clone reads ``path`` of ``rev``."""
    report = repo.fsck_remote("origin", read_data=True)
    assert report.ok, report.problems
    spec = repo.remotes()[0]
    fresh = Repository.clone(spec.url, tmp_path / "fresh", s3=spec.s3)
    try:
        with fresh.open_file(rev, path) as f:
            assert f.read() == data
    finally:
        fresh.close()


def test_a_push_that_found_a_pack_being_deleted_does_not_rely_on_it(
    tmp_path: Path, sync_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two pushers send the same objects: the second finds the first's pack keys there. If a
    collection doomed that pack after the second read the record, and deletes it while the
    second writes, the second's index write lands over a pack about to go. The counter moved:
    the second relies on no pack it found, and sends those objects again."""
    remote = make_remote("dir", tmp_path, None)
    repo = published(tmp_path, remote)
    repo.switch("new", create=True)
    write(repo.root, "n.bin", rand(300_000, 4))
    commit_all(repo, "new")
    twin = Repository(shutil.copytree(repo.root, tmp_path / "twin", symlinks=True))
    real_copy = push_module.copy_objects
    real_delete = DirectoryBackend.delete
    rounds: list[CopyStats] = []
    twin_pushing: list[bool] = []
    twins: set[str | None] = set()

    def delete_then_copy(args: tuple[object, ...], kwargs: dict[str, object]) -> object:
        def hook(self: DirectoryBackend, key: str) -> None:
            real_delete(self, key)
            if layout.pack_name_from_index_key(key) in twins and not rounds:
                rounds.append(real_copy(*args, **kwargs))  # type: ignore[arg-type]

        return hook

    def copy_racing_a_collection(*args: object, **kwargs: object) -> object:
        if twin_pushing:
            return real_copy(*args, **kwargs)  # type: ignore[arg-type]
        if rounds:
            rounds.append(real_copy(*args, **kwargs))  # type: ignore[arg-type]
            return rounds[-1]
        twin_pushing.append(True)
        before = set(remote.packs())
        assert twin.push("origin", ["new:refs/heads/twin"]).ok  # the same packs, by another
        assert twin.push("origin", delete=["twin"]).ok
        twin_pushing.clear()
        twins.update(set(remote.packs()) - before)
        assert twin.gc_remote("origin", **FAST).doomed  # after this push read the record
        monkeypatch.setattr(DirectoryBackend, "delete", delete_then_copy(args, kwargs))
        assert twin.gc_remote("origin", **FAST).deleted
        monkeypatch.setattr(DirectoryBackend, "delete", real_delete)
        return rounds[0]

    monkeypatch.setattr(push_module, "copy_objects", copy_racing_a_collection)
    assert repo.push("origin", ["new"]).ok
    assert len(rounds) == 2 and rounds[0].found and rounds[1].bytes >= 300_000  # n.bin again
    (stray,) = repo.fsck_remote("origin", read_data=True).problems  # the index written again
    assert "is missing (its index exists)" in stray
    runs = [repo.gc_remote("origin", **FAST) for _ in range(2)]  # doomed, then deleted
    assert stray.split()[1] in {n for r in runs for n in r.deleted}
    assert_readable(repo, tmp_path, "origin/new", "n.bin", rand(300_000, 4))


# ---------------------------------------------------------------- readers


def test_readers_with_a_stale_index_cache_find_moved_objects(
    tmp_path: Path, sync_env: Path
) -> None:
    """Small packs are merged: their objects move to a new pack, then the old ones are deleted
    under readers whose index caches still list them. Each read finds its object again."""
    remote = make_remote("dir", tmp_path, None)
    repo = new_repo(tmp_path / "work")
    remote.add_to(repo)
    write(repo.root, "keep.bin", rand(300_000, 7))
    for n in range(3):
        write(repo.root, f"small{n}.txt", f"{n}\n")
        commit_all(repo, f"c{n}")
        assert repo.push("origin").ok
    init_generation(remote)
    assert remote.path is not None
    fmt = repo.store.format

    def stale_store() -> ObjectStore:
        store = ObjectStore(DirectoryBackend(remote.path), LocationIndex(None), fmt)  # type: ignore[arg-type]
        store.sync_index()
        return store

    stores = [stale_store() for _ in range(4)]
    handle = dsrepo.open(remote.url, "main")
    keep = hash_data(rand(300_000, 7))
    old = stores[0].locate(keep)
    assert old is not None and handle.read_bytes("keep.bin") == rand(300_000, 7)
    assert old.pack in repo.gc_remote("origin", **FAST).doomed  # small packs merged
    assert old.pack in repo.gc_remote("origin", **FAST).deleted
    into = ObjectStore(MemoryBackend(), LocationIndex(None), fmt)
    ObjectStore.initialize(into.backend, fmt)
    try:
        assert stores[0].get_raw(keep)[1] == rand(300_000, 7)  # the store heals its cache
        assert copy_objects(stores[1], into, [keep]).objects >= 1  # fetch's copy
        assert into.get_raw(keep)[1] == rand(300_000, 7)
        assert copy_metadata(stores[2], into) > 0
        assert read_chunks(stores[3], [(keep, 300_000)])[keep] == rand(300_000, 7)
        assert handle.read_bytes("keep.bin") == rand(300_000, 7)  # dsrepo.open's handle
    finally:
        for store in [*stores, into]:
            store.close()
        handle.close()


# ---------------------------------------------------------------- fsck --remote


def test_fsck_remote_finds_damage(tmp_path: Path, remote: RemoteSpec, ds: Ds) -> None:
    repo = published(tmp_path, remote)
    ds(repo.root, "fsck", "--remote", "origin")
    ds(repo.root, "fsck", "--remote", "origin", "--read-data")
    main_id = remote.ref("refs/heads/main")
    assert main_id is not None
    big = max(remote.packs(), key=lambda n: sum(e.stored_size for e in remote.index(n)[1]))
    data = remote.read(layout.pack_key(big))
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 1
    remote.write(layout.pack_key(big), bytes(flipped))
    assert repo.fsck_remote("origin").ok  # the sizes still agree: only reading finds it
    bad = ds.run(repo.root, "fsck", "--remote", "origin", "--read-data")
    assert bad.code == 7 and f"in pack {big} at offset" in bad.err, bad
    remote.write(layout.pack_key(big), data[: len(data) // 2])  # truncated
    report = repo.fsck_remote("origin")
    assert any("outside the pack" in p for p in report.problems), report.problems
    remote.write(layout.pack_key(big), data)
    remote.write("refs/heads/broken", b"ab" * 32 + b"\n")
    report = repo.fsck_remote("origin")
    assert report.problems == [f"refs/heads/broken: names object {'ab' * 32}, which is missing"]


# ---------------------------------------------------------------- the race


ROUNDS = {"dir": 3, "s3": 2}
"""Rounds per pusher: each pushes main (pulling when another was first), a scratch branch of
fresh data (force), and deletes it every other round. On moto every request costs CPU."""


def _pusher(
    i: int, url: str, s3: object, work: Path, rounds: int, pushed: list[str], errors: list[str]
) -> None:
    try:
        repo = Repository.clone(url, work, s3=s3)  # type: ignore[arg-type]
        try:
            for r in range(rounds):
                write(repo.root, f"p{i}/r{r}.txt", f"pusher {i} round {r}\n" * 100)
                commit_all(repo, f"p{i} r{r}")
                pushed.append(repo.head_commit().hex())  # type: ignore[union-attr]
                for _ in range(60):
                    if repo.push("origin").ok:
                        break
                    repo.pull()
                else:
                    errors.append(f"p{i}: main never accepted")
                # garbage: a scratch branch of fresh data, force-pushed, then deleted
                repo.switch(f"scratch{i}", create=True)
                write(repo.root, f"scratch{i}.bin", rand(150_000, 1000 * i + r))
                commit_all(repo, f"scratch {i} {r}")
                assert repo.push("origin", [f"scratch{i}"], force=True).ok
                repo.switch("main")
                repo.delete_branch(f"scratch{i}", force=True)
                if r % 2:
                    assert repo.push("origin", delete=[f"scratch{i}"]).ok
            if rounds % 2 and not repo.push("origin", [f":refs/heads/scratch{i}"]).ok:
                errors.append(f"p{i}: scratch not deleted")  # (the last round kept it)
        finally:
            repo.close()
    except Exception as exc:
        errors.append(f"p{i}: {type(exc).__name__}: {exc}")


@pytest.mark.slow
def test_four_pushers_and_a_collector(tmp_path: Path, remote: RemoteSpec) -> None:
    rounds = ROUNDS[remote.kind]
    seed = new_repo(tmp_path / "seed")
    write(seed.root, "seed.txt", "seed\n")
    commit_all(seed, "seed")
    remote.add_to(seed)
    assert seed.push("origin").ok
    init_generation(remote, settle=0.4)
    pushed: list[str] = []
    errors: list[str] = []
    threads = [
        threading.Thread(
            target=_pusher,
            args=(i, remote.url, remote.s3, tmp_path / f"p{i}", rounds, pushed, errors),
        )
        for i in range(4)
    ]
    for t in threads:
        t.start()
    runs = []
    gc_kwargs = {"prune": 1, "delete_delay": 1.0, "settle_seconds": 0.4}
    while any(t.is_alive() for t in threads):
        with contextlib.suppress(RemoteGcBusy):  # (there is one collector: never busy)
            runs.append(seed.gc_remote("origin", **gc_kwargs))
        time.sleep(0.5)
    for t in threads:
        t.join()
    assert not errors, errors
    time.sleep(1.1)  # the last scratch data is past the grace period
    runs.append(seed.gc_remote("origin", **gc_kwargs))
    time.sleep(1.1)  # and its doom past the delete delay
    last = seed.gc_remote("origin", **gc_kwargs)
    runs.append(last)
    assert len(runs) >= 4 and sum(len(r.deleted) for r in runs) > 0
    for i in range(4):  # every scratch byte is gone
        for r in range(rounds):
            assert hash_data(rand(150_000, 1000 * i + r)) not in remote_ids(remote)
    assert last.bytes_after < 400_000
    report = seed.fsck_remote("origin", read_data=True)
    assert report.ok, report.problems
    final = Repository.clone(remote.url, tmp_path / "final", s3=remote.s3)
    try:
        history = {e.id.hex() for e in final.log("HEAD")}
        assert set(pushed) <= history
        expected = {
            f"p{i}/r{r}.txt": (f"pusher {i} round {r}\n" * 100).encode()
            for i in range(4)
            for r in range(rounds)
        }
        got = snapshot(final.root)
        assert {k: v for k, v in got.items() if k != "seed.txt"} == expected
    finally:
        final.close()


# ---------------------------------------------------------------- an HTTP remote


def test_push_delete_over_http_and_no_collection_there(
    cli: Cli, serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``dsrepo serve`` remote deletes unprotected refs, refuses protected ones (exit 5), and
    is not collected over HTTP (it never deletes objects; its pushers do not see ``gc/``)."""
    server = serve(config=ServeConfig(fast_forward_only=("main",), protected_tags=("v*",)))
    monkeypatch.setenv("DSREPO_TOKEN", server.token("write"))
    work = tmp_path / "w"
    cli("init", "-q", str(work))
    commit_file(cli, work, "a.txt", "a\n", "first")
    with at(work):
        cli("remote", "add", "origin", server.url)
        cli("branch", "exp")
        cli("tag", "v1")
        cli("push", "origin", "main", "exp", "v1")
        assert "-> (deleted)" in cli("push", "--delete", "origin", "exp").out
        for ref in (":v1", ":main"):  # a protected tag, a fast-forward-only branch
            r = cli.run("push", "origin", ref)
            assert r.code == 5 and "refused" in r.err, r
        r = cli.run("gc", "--remote", "origin")
        assert r.code == 8 and "cannot age packs" in r.err, r
        cli("fsck", "--remote", "origin")
