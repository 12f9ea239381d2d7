"""The shared-remote collection protocol (docs/gc.md) under adversarial interleavings.

A pusher (the real ``push``) and a collector (the real ``collect_remote``) run in threads over one
in-memory backend. Every backend request either makes goes through a scheduler that lets exactly
one request run at a time, the one a hypothesis-drawn schedule picks among the actors waiting
(so requests are reordered between the two, deterministically); under it a fault wrapper drops
the answers of drawn writes (the write happens, the caller sees a transient error and retries,
as ``RetryingBackend`` does in production). Time is fake: backend modification times and the
pusher's clock read it, and only the collector's sleeps advance it.

Invariant, checked after every write: every remote ref's closure is present (each object listed
by an index whose pack file exists, of the type and size its referrer says). At the end, every
push succeeded and the remote holds what was pushed.

The one timing assumption of the protocol is modelled explicitly: a ref compare-and-swap that a
pusher sends within ``settle / 2`` of its last read of ``gc/generation`` lands before the
collector's clock can pass that deadline (a sleep that would pass it waits for the swap).
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsrepo.dvcs import push as push_module
from dsrepo.dvcs.bare import BareRepository
from dsrepo.dvcs.integrity import Closure
from dsrepo.dvcs.refs import RefStore
from dsrepo.dvcs.remote import Remote
from dsrepo.dvcs.remotegc import (
    GENERATION_KEY,
    Generation,
    RemoteGcReport,
    _Run,
    collect_remote,
    swap,
)
from dsrepo.dvcs.repository import Repository
from dsrepo.objects import layout
from dsrepo.objects.chunking import ChunkerParams, RepoFormat
from dsrepo.objects.locindex import LocationIndex
from dsrepo.objects.store import ObjectStore
from dsrepo.remotes.base import Backend, KeyInfo
from dsrepo.remotes.counting import CountingBackend
from dsrepo.remotes.errors import KeyNotFound, TransientBackendError
from dsrepo.remotes.memory import MemoryBackend
from dsrepo.remotes.retry import RetryingBackend
from dsrepo.remotes.wrapper import BackendWrapper

T = TypeVar("T")
FMT = RepoFormat(chunker=ChunkerParams())
GRACE, DELAY, SETTLE = 5.0, 2.0, 1.0
WRITES = {"put", "put_if_absent", "delete", "compare_and_swap"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class TimedBackend(BackendWrapper):
    """Stamps every write with the fake clock (the backend's own modification time)."""

    def __init__(self, inner: MemoryBackend, clock: Clock) -> None:
        super().__init__(inner)
        self.mem = inner
        self.clock = clock

    def _stamp(self, key: str) -> None:
        with contextlib.suppress(KeyNotFound):
            self.mem.set_mtime(key, self.clock.now)

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)
        self._stamp(key)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        created = self.inner.put_if_absent(key, data)
        if created:
            self._stamp(key)
        return created

    def put_parts_if_absent(self, key: str, parts: Sequence[bytes | memoryview]) -> bool:
        return self.put_if_absent(key, b"".join(parts))

    def compare_and_swap(self, key: str, expected: bytes | None, new: bytes | None) -> None:
        self.inner.compare_and_swap(key, expected, new)
        if new is not None:
            self._stamp(key)


class Scheduler:
    """Lets one request run at a time: the one ``schedule`` picks among the actors waiting.
    The driver (the test's thread) waits until every live actor waits, grants one request, waits
    for it to finish, then checks the invariant after a write."""

    def __init__(self, clock: Clock, schedule: Sequence[int], drops: frozenset[int]) -> None:
        self.clock = clock
        self.schedule = list(schedule) or [0]
        self.drops = drops
        self.cond = threading.Condition()
        self.waiting: dict[str, list[tuple[int, str, str, float]]] = {}
        self.alive: set[str] = set()
        self.granted: int | None = None
        self.running = False
        self.ticket = 0
        self.steps = 0
        self.writes = 0
        self.last_was_write = False
        self.gen_read: dict[str, float] = {}
        self.errors: list[BaseException] = []

    # -- actors

    def request(self, actor: str, op: str, key: str, call: Callable[[], T], sleep: float = 0) -> T:
        with self.cond:
            self.ticket += 1
            ticket = self.ticket
            self.waiting.setdefault(actor, []).append((ticket, op, key, sleep))
            self.cond.notify_all()
            while self.granted != ticket:
                self.cond.wait()
            self.granted = None
            self.waiting[actor] = [w for w in self.waiting[actor] if w[0] != ticket]
            self.running = True
            write_no = None
            if op in WRITES:
                self.writes += 1
                write_no = self.writes
        try:
            if op == "sleep":
                self.clock.now += sleep
                return None  # type: ignore[return-value]
            result = call()
            if op == "get" and key == GENERATION_KEY:
                self.gen_read[actor] = self.clock.now
            if write_no is not None and write_no in self.drops:
                raise TransientBackendError(f"injected: the answer to {op} {key} was lost")
            return result
        finally:
            with self.cond:
                self.running = False
                self.last_was_write = op in WRITES
                self.cond.notify_all()

    def start(self, actor: str, work: Callable[[], None]) -> threading.Thread:
        def run() -> None:
            try:
                work()
            except BaseException as exc:  # reported by the driver
                self.errors.append(exc)
            finally:
                with self.cond:
                    self.alive.discard(actor)
                    self.cond.notify_all()

        with self.cond:
            self.alive.add(actor)
        t = threading.Thread(target=run, name=actor, daemon=True)
        t.start()
        return t

    # -- the driver

    def drive(self, check: Callable[[], None], max_steps: int = 5000) -> None:
        while True:
            with self.cond:
                # every live actor waits (or 1 s passed: one is busy computing)
                self.cond.wait_for(
                    lambda: not self.alive or all(self.waiting.get(a) for a in self.alive),
                    timeout=1.0,
                )
                if not self.alive:
                    return
                ready = sorted(a for a in self.alive if self.waiting.get(a))
                if not ready:
                    if not self.cond.wait_for(
                        lambda: not self.alive or any(self.waiting.get(a) for a in self.alive),
                        timeout=60,
                    ):
                        raise AssertionError(f"deadlock: {self.alive} wait for nothing")
                    continue
                pick = ready[self.schedule[self.steps % len(self.schedule)] % len(ready)]
                ticket, op, _, sleep = self.waiting[pick][0]
                if op == "sleep":
                    pick, ticket = self._swap_first(pick, ticket, sleep)
                self.steps += 1
                assert self.steps < max_steps, "too many steps"
                self.granted = ticket
                self.cond.notify_all()
                self.cond.wait_for(lambda: self.granted is None and not self.running)
                wrote = self.last_was_write
            if wrote:
                check()

    def _swap_first(self, pick: str, ticket: int, sleep: float) -> tuple[str, int]:
        """A sleep may not carry the clock past the deadline of a ref swap already sent."""
        for actor, queue in self.waiting.items():
            for t, op, key, _ in queue:
                if (
                    actor != pick
                    and op == "compare_and_swap"
                    and key.startswith("refs/")
                    and self.clock.now + sleep > self.gen_read.get(actor, -1e18) + SETTLE / 2
                ):
                    return actor, t
        return pick, ticket


class ScheduledBackend(BackendWrapper):
    """One actor's view of the backend: each request waits for its turn."""

    def __init__(self, inner: Backend, sched: Scheduler, actor: str) -> None:
        super().__init__(inner)
        self.sched = sched
        self.actor = actor

    def _r(self, op: str, key: str, call: Callable[[], T]) -> T:
        return self.sched.request(self.actor, op, key, call)

    def stat(self, key: str) -> KeyInfo:
        return self._r("stat", key, lambda: self.inner.stat(key))

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        return self._r("get", key, lambda: self.inner.get(key, offset, length))

    def put(self, key: str, data: bytes) -> None:
        self._r("put", key, lambda: self.inner.put(key, data))

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self._r("put_if_absent", key, lambda: self.inner.put_if_absent(key, data))

    def put_parts_if_absent(self, key: str, parts: Sequence[bytes | memoryview]) -> bool:
        return self._r("put_if_absent", key, lambda: self.inner.put_parts_if_absent(key, parts))

    def list(
        self, prefix: str = "", start_after: str | None = None, limit: int = 1000
    ) -> list[KeyInfo]:
        return self._r("list", prefix, lambda: self.inner.list(prefix, start_after, limit))

    def delete(self, key: str) -> None:
        self._r("delete", key, lambda: self.inner.delete(key))

    def compare_and_swap(self, key: str, expected: bytes | None, new: bytes | None) -> None:
        self._r("compare_and_swap", key, lambda: self.inner.compare_and_swap(key, expected, new))

    def close(self) -> None:
        pass


# ---------------------------------------------------------------- the invariant


def closure_problems(mem: MemoryBackend) -> list[str]:
    """What is wrong with the remote's refs: an object their closures need that no index lists,
    whose pack file is gone, or that is not what its referrer says."""
    store = ObjectStore(mem, LocationIndex(None), FMT)
    try:
        store.sync_index()
        refs = RefStore(mem).list("refs/")
        closure = Closure(store, data=False, missing_ok=False)
        for name, oid in refs.items():
            closure.add_root(name, oid, any_type=name.startswith("refs/tags/"))
        closure.run()
        closure.check_chunks()
        problems = list(closure.problems)
        packs = {loc.pack for loc in store.locate_many(list(closure.visited)).values()}
        for name in sorted(packs):
            try:
                mem.stat(layout.pack_key(name))
            except KeyNotFound:
                problems.append(f"pack {name} is listed by its index, its file is gone")
        return problems
    finally:
        store.close()


# ---------------------------------------------------------------- the scenario


def _write(repo: Repository, name: str, seed: int, size: int = 3000) -> None:
    (repo.root / name).write_bytes(random.Random(seed).randbytes(size))


def _commit(repo: Repository, message: str) -> None:
    repo.add(".")
    repo.commit(message)


class World:
    """A remote in memory with garbage older than the grace period, and a local repository
    whose pushes will reuse that garbage."""

    def __init__(self, tmp: Path, clock: Clock) -> None:
        self.clock = clock
        self.mem = MemoryBackend()
        self.timed = TimedBackend(self.mem, clock)
        ObjectStore.initialize(self.timed, FMT)
        self.repo = Repository.init(tmp / "work")
        _write(self.repo, "a.bin", 1)
        _commit(self.repo, "one")
        self.repo.branch("tmp")
        self.repo.switch("tmp")
        _write(self.repo, "t.bin", 2)
        _commit(self.repo, "tmp")
        self.repo.switch("main")
        # unscheduled set-up: main and tmp pushed, tmp deleted (its objects are garbage)
        with self.remote(self.timed) as r:
            for refs in (["main"], ["tmp"]):
                assert push_module._push(self.repo, r, refs, **_PUSH).ok
            assert push_module._push(self.repo, r, [], delete=["tmp"], **_PUSH).ok
        swap(self.timed, GENERATION_KEY, None, Generation(settle_seconds=SETTLE).encode())
        clock.now += 2 * GRACE

    def remote(self, backend: Backend) -> Remote:
        counter = CountingBackend(backend)
        store = ObjectStore(counter, LocationIndex(None), FMT)
        return Remote("origin", "memory://remote", counter, store, RefStore(counter))

    def pusher(self, backend: Backend) -> None:
        """Pushes that rely on what the collector is collecting: tmp again (its objects are
        garbage on the remote), main with a file of tmp's, tmp deleted and pushed again, and
        under another name."""
        repo = self.repo
        with self.remote(backend) as r:
            assert push_module._push(repo, r, ["tmp"], **_PUSH).ok
            (repo.root / "t.bin").write_bytes(random.Random(2).randbytes(3000))
            _write(repo, "b.bin", 3)
            _commit(repo, "two")
            assert push_module._push(repo, r, ["main"], **_PUSH).ok
            for _ in range(2):
                assert push_module._push(repo, r, [], delete=["tmp"], **_PUSH).ok
                assert push_module._push(repo, r, ["tmp"], **_PUSH).ok
            assert push_module._push(repo, r, [], delete=["tmp"], **_PUSH).ok
            assert push_module._push(repo, r, ["tmp:tmp2"], **_PUSH).ok

    def collector(self, backend: Backend, sched: Scheduler) -> None:
        def sleep(seconds: float) -> None:
            sched.request("collector", "sleep", "", lambda: None, sleep=seconds)

        with BareRepository(
            backend, ObjectStore(backend, LocationIndex(None), FMT), RefStore(backend)
        ) as bare:
            for _ in range(4):
                collect_remote(
                    bare,
                    prune=GRACE,
                    delete_delay=DELAY,
                    settle_seconds=SETTLE,
                    lease_seconds=1000,
                    sleep=sleep,
                )
                sleep(GRACE)


_PUSH: dict[str, Any] = {
    "tags": False,
    "force": False,
    "dry_run": False,
    "jobs": 1,
    "progress": None,
}


def _actor_backend(world: World, sched: Scheduler, actor: str) -> Backend:
    return RetryingBackend(
        ScheduledBackend(world.timed, sched, actor), attempts=8, sleep=lambda _s: None
    )


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("DSREPO_AUTHOR_NAME", "Protocol")
    monkeypatch.setenv("DSREPO_AUTHOR_EMAIL", "protocol@example.com")
    monkeypatch.setenv("DSREPO_CONFIG_GLOBAL", str(tmp_path / "g"))
    yield


def run_interleaving(schedule: Sequence[int], drops: frozenset[int]) -> Scheduler:
    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp:
        world = World(Path(tmp), clock)
        sched = Scheduler(clock, schedule, drops)
        old_clock = push_module.CLOCK
        push_module.CLOCK = clock
        try:
            threads = [
                sched.start("pusher", lambda: world.pusher(_actor_backend(world, sched, "pusher"))),
                sched.start(
                    "collector",
                    lambda: world.collector(_actor_backend(world, sched, "collector"), sched),
                ),
            ]

            def check() -> None:
                problems = closure_problems(world.mem)
                assert not problems, f"after step {sched.steps}: {problems}"

            sched.drive(check)
            for t in threads:
                t.join(timeout=30)
        finally:
            push_module.CLOCK = old_clock
            world.repo.close()
        if sched.errors:
            raise sched.errors[0]
        assert not closure_problems(world.mem)
        refs = RefStore(world.mem).list("refs/")
        assert refs["refs/heads/main"] == world.repo.refs.resolve("refs/heads/main")
        assert refs["refs/heads/tmp2"] == world.repo.refs.resolve("refs/heads/tmp")
        assert "refs/heads/tmp" not in refs
        return sched


@settings(
    max_examples=int(os.environ.get("DSREPO_PROTOCOL_EXAMPLES", "25")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    schedule=st.lists(st.integers(0, 7), min_size=1, max_size=600),
    drops=st.frozensets(st.integers(1, 200), max_size=8),
)
def test_every_ref_stays_complete_under_any_interleaving(
    schedule: list[int], drops: frozenset[int]
) -> None:
    run_interleaving(schedule, drops)


@pytest.mark.parametrize("remark", [True, False], ids=["protocol", "without-phase-2-remark"])
@pytest.mark.parametrize("seed", range(6))
def test_random_interleavings_keep_refs_complete_and_collect(
    seed: int, remark: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also without phase 2's re-mark (a second line of defence): once a doom is settled no
    ref reaches an object only doomed packs hold, and pushers never rely on one."""
    monkeypatch.setattr(_Run, "remark_before_delete", remark)
    rng = random.Random(seed)
    deleted: list[str] = []
    original = collect_remote

    def counting(*args: Any, **kwargs: Any) -> RemoteGcReport:
        report = original(*args, **kwargs)
        deleted.extend(report.deleted)
        return report

    monkeypatch.setattr(sys.modules[__name__], "collect_remote", counting)
    run_interleaving(
        [rng.randrange(8) for _ in range(600)], frozenset(rng.sample(range(1, 200), 6))
    )
    assert deleted  # garbage older than the grace period went
