"""Garbage collection of a shared remote: the protocol of docs/gc.md, "Shared remote".

Other machines push while a collection runs and nothing can be locked, so the collector and
the pushers agree through two records written only by compare-and-swap:

- ``gc/lease`` (:class:`Lease`): one collector at a time. Taken when absent or expired (its
  backend modification time plus its ``seconds`` is past the backend's clock), renewed before
  every step that changes something, released at the end.
- ``gc/generation`` (:class:`Generation`): a counter, the **doomed** packs (scheduled for
  deletion, with the backend time they were doomed), the settle time pushers must respect, and
  whether the last doom was **settled**. Written only by the lease holder.

Every value written carries a random write id, so a compare-and-swap whose answer was lost is
decided by reading the key back (:func:`swap`): our bytes there mean it happened.

A run (:func:`collect_remote`) does phase 2, then phase 1:

- **phase 2**: packs doomed at least ``delete_delay`` ago are deleted, after bumping the counter,
  waiting ``settle`` seconds and marking again from the refs read then (a live object that only
  doomed packs hold is first copied to a new pack: resurrected); index first, then pack.
- **phase 1**: mark from the refs (read before the pack indexes are listed), plan as a local gc
  does (:func:`dsrepo.objects.repack.plan`: garbage older than the grace period, small packs),
  copy the live objects of the packs that go to new packs, then doom those packs and the old
  index-less ones (counter + 1, *unsettled*), wait ``settle``, mark again, resurrect what became
  reachable meanwhile, and record the doom settled. Nothing is deleted in phase 1.

Once settled, no ref reaches an object that only doomed packs hold, so a pusher may rely on
what is under the remote's refs; while unsettled it walks its whole closure
(:mod:`dsrepo.dvcs.push`). Ages are the backend's clock only (:func:`backend_clock`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from dsrepo.dvcs.bare import BareRepository
from dsrepo.dvcs.errors import Locked, RemoteError
from dsrepo.dvcs.gc import DEFAULT_PRUNE, mark
from dsrepo.dvcs.reflog import parse_age
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.repack import (
    Inventories,
    Inventory,
    Plan,
    backend_clock,
    execute,
    in_pack_order,
    pack_totals,
    plan,
)
from dsrepo.remotes.base import Backend
from dsrepo.remotes.errors import BackendError, KeyConflict, KeyNotFound

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository

LEASE_KEY = "gc/lease"
GENERATION_KEY = "gc/generation"
DEFAULT_LEASE_SECONDS = 3600.0
DEFAULT_DELETE_DELAY = 3600.0
"""Phase 2 deletes a pack doomed at least this long ago (longer than any push takes)."""
DEFAULT_SETTLE_SECONDS = 10.0
"""What a collector waits after bumping the counter; pushers re-check within half of it."""
SWAP_ATTEMPTS = 5
RECORD_VERSION = 1

Sleep = Callable[[float], None]
Progress = Callable[[int, int], None]


class RemoteGcBusy(Locked):
    """Another collector holds the remote's ``gc/lease`` and it has not expired."""


def new_write_id() -> str:
    return secrets.token_hex(16)


def _read(backend: Backend, key: str) -> bytes | None:
    try:
        return backend.get(key)
    except KeyNotFound:
        return None


def swap(backend: Backend, key: str, expected: bytes | None, new: bytes | None) -> None:
    """``compare_and_swap`` whose lost answer is recovered: after a transient failure the key is
    read back, and holding ``new`` (unique: it carries a write id) means the write happened;
    holding ``expected`` means it did not (then it is tried again). KeyConflict otherwise."""
    failed = False
    for attempt in range(SWAP_ATTEMPTS):
        try:
            backend.compare_and_swap(key, expected, new)
            return
        except KeyConflict:
            if failed and _read(backend, key) == new:
                return  # an earlier attempt landed; its answer was lost
            raise
        except BackendError as exc:
            if not exc.transient or attempt == SWAP_ATTEMPTS - 1:
                raise
            failed = True
            try:
                current = _read(backend, key)
            except BackendError as again:
                if not again.transient:
                    raise
                continue
            if current == new:
                return
            if current != expected:
                raise KeyConflict(f"compare-and-swap on {key!r} lost: the key changed") from None
    raise AssertionError("unreachable")  # pragma: no cover


def _json(data: bytes, key: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        value = None
    if not isinstance(value, dict) or value.get("version") != RECORD_VERSION:
        raise RemoteError(f"the remote's {key} is damaged or of a newer version: {data[:80]!r}")
    return value


# ---------------------------------------------------------------- the generation record


@dataclass(frozen=True)
class Generation:
    """The content of ``gc/generation`` (all defaults: no collection ever ran)."""

    counter: int = 0
    doomed: Mapping[str, float] = field(default_factory=dict)
    """Pack name → the backend time it was doomed."""
    settled: bool = True
    """False between a doom and the mark that follows it: a ref may then still reach objects
    that only doomed packs hold, so pushers must not rely on the remote's refs."""
    settle_seconds: float = DEFAULT_SETTLE_SECONDS
    holder: str = ""
    write_id: str = ""
    raw: bytes | None = None
    """The bytes read (what a compare-and-swap expects); None when the record is absent."""

    def encode(self) -> bytes:
        body = {
            "version": RECORD_VERSION,
            "counter": self.counter,
            "settled": self.settled,
            "settle_seconds": self.settle_seconds,
            "doomed": dict(sorted(self.doomed.items())),
            "holder": self.holder,
            "write_id": self.write_id,
        }
        return json.dumps(body, indent=1).encode() + b"\n"

    @classmethod
    def decode(cls, data: bytes) -> Generation:
        v = _json(data, GENERATION_KEY)
        try:
            doomed = {str(k): float(t) for k, t in dict(v["doomed"]).items()}
            return cls(
                counter=int(v["counter"]),
                doomed=doomed,
                settled=bool(v["settled"]),
                settle_seconds=float(v["settle_seconds"]),
                holder=str(v.get("holder", "")),
                write_id=str(v.get("write_id", "")),
                raw=data,
            )
        except (KeyError, TypeError, ValueError):
            raise RemoteError(f"the remote's {GENERATION_KEY} is damaged") from None


def read_generation(backend: Backend) -> Generation:
    """The remote's generation record (defaults when no collection ever ran)."""
    data = _read(backend, GENERATION_KEY)
    return Generation() if data is None else Generation.decode(data)


def write_generation(backend: Backend, old: Generation, **changes: Any) -> Generation:
    """Replace ``old`` by ``old`` with ``changes`` and a new write id, by compare-and-swap.
    RemoteError when another writer changed it (only a lease holder may: ours was lost)."""
    new = replace(old, write_id=new_write_id(), raw=None, **changes)
    data = new.encode()
    try:
        swap(backend, GENERATION_KEY, old.raw, data)
    except KeyConflict:
        raise RemoteError(
            f"{GENERATION_KEY} changed under this collection (its lease was lost); nothing more "
            "was done"
        ) from None
    return replace(new, raw=data)


# ---------------------------------------------------------------- the lease


def default_holder() -> str:
    return f"{socket.gethostname()} pid {os.getpid()}"


class Lease:
    """``gc/lease``: taken by compare-and-swap when absent or expired, renewed by
    compare-and-swap from the value we wrote (RemoteError if it changed: lost)."""

    def __init__(self, backend: Backend, holder: str, seconds: float) -> None:
        self.backend = backend
        self.holder = holder
        self.seconds = seconds
        self._value: bytes | None = None

    def _encode(self) -> bytes:
        body = {
            "version": RECORD_VERSION,
            "holder": self.holder,
            "seconds": self.seconds,
            "write_id": new_write_id(),
        }
        return json.dumps(body).encode() + b"\n"

    def acquire(self) -> None:
        """Take the lease; RemoteGcBusy if another collector holds one that has not expired."""
        now = backend_clock(self.backend)
        if now is None:
            raise RemoteError(
                f"{self.backend.describe()} does not tell when keys were written: a collection "
                "cannot age packs there"
            )
        current = _read(self.backend, LEASE_KEY)
        if current is not None:
            value = _json(current, LEASE_KEY)
            try:
                written = self.backend.stat(LEASE_KEY).mtime
            except KeyNotFound:
                written = None
            expires = (written or now) + float(value.get("seconds", DEFAULT_LEASE_SECONDS))
            if expires > now:
                raise RemoteGcBusy(
                    f"another collection holds {LEASE_KEY} on {self.backend.describe()} "
                    f"({value.get('holder', '?')}, {expires - now:.0f} s left); try again later"
                )
        mine = self._encode()
        try:
            swap(self.backend, LEASE_KEY, current, mine)
        except KeyConflict:
            raise RemoteGcBusy(
                f"another collection took {LEASE_KEY} on {self.backend.describe()} just now"
            ) from None
        self._value = mine

    def renew(self) -> None:
        """Write the lease again (its expiry restarts); RemoteError if it is no longer ours."""
        mine = self._encode()
        try:
            swap(self.backend, LEASE_KEY, self._value, mine)
        except KeyConflict:
            self._value = None
            raise RemoteError(
                f"the collection lost {LEASE_KEY} (it expired and another took it); nothing "
                "more was done"
            ) from None
        self._value = mine

    def release(self) -> None:
        if self._value is None:
            return
        with contextlib.suppress(KeyConflict, BackendError):  # lost or unreachable: it expires
            swap(self.backend, LEASE_KEY, self._value, None)
        self._value = None


# ---------------------------------------------------------------- a run


@dataclass
class RemoteGcReport:
    """What one run did (with ``dry_run``: would do). Pack lists hold pack names."""

    dry_run: bool = False
    deleted: list[str] = field(default_factory=list)
    """Doomed packs deleted by phase 2 (their index, then the pack)."""
    doomed: list[str] = field(default_factory=list)
    """Packs doomed by phase 1 (deleted by a later run, ``delete_delay`` after)."""
    waiting: list[str] = field(default_factory=list)
    """Packs doomed earlier whose delay has not passed."""
    kept: list[str] = field(default_factory=list)
    """Packs undoomed: they turned out to hold the only copy of a live object."""
    objects_copied: int = 0
    """Live objects copied out of packs that go (including resurrected ones)."""
    packs_written: int = 0
    bytes_deleted: int = 0
    packs_before: int = 0
    packs_after: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    counter: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class Marked:
    refs: dict[str, ObjectId]
    inventory: Inventory
    live: set[ObjectId]


def _mark(repo: BareRepository, packs: Inventories) -> Marked:
    """Refs, then the packs (listed after: every pack a ref read here reaches is listed), then
    everything the refs reach. IntegrityError on damage: then nothing may go."""
    refs = repo.refs.list("refs/")
    repo.store.sync_index()
    inventory = packs.take()
    return Marked(refs, inventory, mark(repo.store, refs.items()))


def _secure(
    repo: BareRepository,
    packs: Inventories,
    marked: Marked,
    going: Iterable[str],
    report: RemoteGcReport,
) -> set[str]:
    """Copy every live object that only packs in ``going`` hold into new packs. Returns the
    packs of ``going`` that must stay after all: a new pack came out identical to one of them
    (same objects, same places, same name), so that one holds the only copy."""
    going = set(going)
    inv, live = marked.inventory, marked.live
    going_ids = {e.id for n in going if (p := inv.packs.get(n)) is not None for e in p.entries}
    held = _held(inv, going, going_ids)
    todo = Plan()
    taken: set[ObjectId] = set()
    for name in sorted(going):
        p = inv.packs.get(name)
        if p is None or p.size is None:
            continue
        for i, e in in_pack_order(p.entries):
            if e.id in live and e.id not in held and e.id not in taken:
                taken.add(e.id)
                todo.copy.add(name, p.entries, i)
    if not todo.copy:
        return set()
    done = execute(repo.store, inv, todo)
    report.objects_copied += len(todo.copy)
    report.packs_written += len(done.packs_written)
    held = _held(packs.take(), going, {e.id for _, e in todo.copy})
    return {name for name, e in todo.copy if e.id not in held}


def _held(inv: Inventory, going: set[str], among: set[ObjectId]) -> set[ObjectId]:
    """The ids of ``among`` that a pack not ``going`` holds (with its file)."""
    return {
        e.id
        for p in inv.packs.values()
        if p.name not in going and p.size is not None
        for e in p.entries
        if e.id in among
    }


def collect_remote(
    repo: BareRepository,
    *,
    prune: str | float = DEFAULT_PRUNE,
    delete_delay: float = DEFAULT_DELETE_DELAY,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    dry_run: bool = False,
    holder: str | None = None,
    sleep: Sleep = time.sleep,
) -> RemoteGcReport:
    """One run of the protocol on ``repo`` (a remote's objects and refs): phase 2 for packs
    doomed at least ``delete_delay`` seconds ago, then phase 1 with the grace period ``prune``
    (``now``, ``2.weeks``, seconds...). RemoteGcBusy when another collection holds the lease."""
    start = time.monotonic()
    grace = parse_age(prune)
    report = RemoteGcReport(dry_run=dry_run)
    backend = repo.backend
    report.packs_before, report.bytes_before = pack_totals(backend)
    if dry_run:
        _dry_run(repo, grace, delete_delay, report)
    else:
        lease = Lease(backend, holder or default_holder(), lease_seconds)
        lease.acquire()
        try:
            run = _Run(repo, lease, report, settle_seconds, sleep)
            gen = read_generation(backend)
            run.wait = max(gen.settle_seconds, settle_seconds)
            if not gen.settled:  # a collector stopped between its doom and its re-mark
                gen = run.settle(gen)
            gen = run.phase2(gen, delete_delay)
            gen = run.phase1(gen, grace)
            report.counter = gen.counter
        finally:
            lease.release()
    report.packs_after, report.bytes_after = pack_totals(backend)
    report.seconds = time.monotonic() - start
    return report


def _cutoff(backend: Backend, grace: float) -> tuple[float, float | None]:
    """(the backend's time now, the mtime at or before which a pack is past the grace)."""
    now = backend_clock(backend)
    if now is None:
        raise RemoteError(
            f"{backend.describe()} does not tell when keys were written: a collection cannot age "
            "packs there"
        )
    return now, (None if math.isinf(grace) else now - grace)


def _plan(
    marked: Marked, doomed: Mapping[str, float], cutoff: float | None
) -> tuple[Plan, set[str]]:
    """What phase 1 dooms among the packs not doomed yet: the plan (:func:`plan`), and the names
    of the packs it makes leave, the old orphans and the old *stray* indexes (whose pack is
    gone). A pusher that found a doomed pack's keys while phase 2 deleted them may have written
    its index again; it names nothing readable, and no push relies on it (a push distrusts the
    packs it found once the counter moved: :mod:`dsrepo.dvcs.push`)."""
    inv = marked.inventory
    todo = plan(
        Inventory(
            {n: p for n, p in inv.packs.items() if n not in doomed},
            {n: o for n, o in inv.orphans.items() if n not in doomed},
        ),
        marked.live,
        cutoff,
    )
    limit = -math.inf if cutoff is None else cutoff  # None: nothing is old
    strays = {
        n
        for n, p in inv.packs.items()
        if p.size is None and n not in doomed and p.mtime is not None and p.mtime <= limit
    }
    return todo, {*todo.rewrite, *todo.orphans, *strays}


def _dry_run(repo: BareRepository, grace: float, delay: float, report: RemoteGcReport) -> None:
    gen = read_generation(repo.backend)
    now, cutoff = _cutoff(repo.backend, grace)
    for name, at in sorted(gen.doomed.items()):
        (report.deleted if at + delay <= now else report.waiting).append(name)
    marked = _mark(repo, Inventories(repo.backend))
    todo, dooms = _plan(marked, gen.doomed, cutoff)
    report.doomed = sorted(dooms)
    report.objects_copied = len(todo.copy)
    report.counter = gen.counter
    inv = marked.inventory
    report.bytes_deleted = sum(inv.packs[n].total_bytes for n in report.deleted if n in inv.packs)


class _Run:
    """The steps of one collection, holding the lease."""

    remark_before_delete = True
    """Phase 2 bumps the counter, waits and marks again before deleting (docs/gc.md). Once a
    doom is settled no ref reaches a doomed-only object, so this is a second line of defence;
    tests turn it off to check that phase 1's settle and the pushers' checks suffice alone."""

    def __init__(
        self,
        repo: BareRepository,
        lease: Lease,
        report: RemoteGcReport,
        settle_seconds: float,
        sleep: Sleep,
    ) -> None:
        self.repo = repo
        self.backend = repo.backend
        self.lease = lease
        self.report = report
        self.settle_seconds = settle_seconds
        self.wait = settle_seconds
        """What a settle waits: at least what the pushers were told (the record read first)."""
        self.sleep = sleep
        self.packs = Inventories(repo.backend)

    def mark(self) -> Marked:
        return _mark(self.repo, self.packs)

    def secure(self, marked: Marked, going: Iterable[str]) -> set[str]:
        return _secure(self.repo, self.packs, marked, going, self.report)

    def write(self, gen: Generation, **changes: Any) -> Generation:
        self.lease.renew()
        changes.setdefault("settle_seconds", self.settle_seconds)
        return write_generation(self.backend, gen, holder=self.lease.holder, **changes)

    def settle(self, gen: Generation) -> Generation:
        """After a doom: wait, mark again, copy out what became reachable, record it settled
        (a pusher that read the record before the doom moved its refs within half the wait)."""
        self.sleep(max(gen.settle_seconds, self.wait))
        kept = self.secure(self.mark(), gen.doomed)
        self.report.kept.extend(sorted(kept))
        doomed = {n: t for n, t in gen.doomed.items() if n not in kept}
        return self.write(gen, settled=True, doomed=doomed)

    def phase2(self, gen: Generation, delay: float) -> Generation:
        now, _ = _cutoff(self.backend, 0)
        ripe = {n for n, at in gen.doomed.items() if at + delay <= now}
        self.report.waiting = sorted(set(gen.doomed) - ripe)
        if not ripe:
            return gen
        kept: set[str] = set()
        if self.remark_before_delete:
            # pushers that read the record before this bump move their refs within settle / 2
            gen = self.write(gen, counter=gen.counter + 1)
            self.sleep(self.wait)
            marked = self.mark()
            kept = self.secure(marked, gen.doomed)
            self.report.kept.extend(sorted(kept))
            ripe -= kept
            inv = marked.inventory
        else:
            inv = self.packs.take()
        self.lease.renew()
        # indexes first (readers stop seeing the packs), then the packs
        done = execute(
            self.repo.store,
            inv,
            Plan(
                rewrite=sorted(n for n in ripe if n in inv.packs),
                orphans=sorted(n for n in ripe if n in inv.orphans),
            ),
        )
        self.report.bytes_deleted += done.bytes_deleted
        self.report.deleted = sorted([*done.packs_deleted, *done.orphans_deleted])
        doomed = {n: t for n, t in gen.doomed.items() if n not in ripe and n not in kept}
        return self.write(gen, doomed=doomed)

    def phase1(self, gen: Generation, grace: float) -> Generation:
        _, cutoff = _cutoff(self.backend, grace)
        marked = self.mark()
        _, new = _plan(marked, gen.doomed, cutoff)
        if not new:
            return gen
        kept = self.secure(marked, new | set(gen.doomed))
        self.report.kept.extend(sorted(kept & set(gen.doomed)))
        new -= kept
        doomed = {n: t for n, t in gen.doomed.items() if n not in kept}
        now, _ = _cutoff(self.backend, 0)  # the copies are durable: what is doomed goes now
        doomed.update(dict.fromkeys(sorted(new), now))
        self.report.doomed = sorted(new)
        gen = self.write(gen, counter=gen.counter + 1, settled=False, doomed=doomed)
        return self.settle(gen)


def gc_remote(
    repo: Repository,
    name_or_url: str,
    *,
    prune: str | float = DEFAULT_PRUNE,
    delete_delay: float = DEFAULT_DELETE_DELAY,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    dry_run: bool = False,
) -> RemoteGcReport:
    """:func:`collect_remote` on the remote ``name_or_url`` of ``repo`` (a configured name, a
    URL or a path); its index cache is the one push and fetch use."""
    from dsrepo.dvcs.remote import open_remote

    with open_remote(repo, name_or_url) as remote:
        if remote.working:  # its owner's index and gc lock are not the remote protocol's
            raise RemoteError(f"{remote.url} is a working repository: run 'dsrepo gc' in it")
        if not remote.counter.capabilities.conditional_writes:
            raise RemoteError(f"{remote.url} has no atomic conditional writes: cannot collect")
        remote.check_conditional_writes()  # an S3 server that ignores them is refused
        return collect_remote(
            remote,
            prune=prune,
            delete_delay=delete_delay,
            settle_seconds=settle_seconds,
            lease_seconds=lease_seconds,
            dry_run=dry_run,
        )
