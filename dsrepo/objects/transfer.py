"""Copying objects between two object stores: the bytes half of push, fetch, clone and get.

What to copy is decided above (reachability and ref rules live in :mod:`dsrepo.dvcs`); this
module only moves a set of ids from ``src`` to ``dst`` as cheaply as their packs allow:

- a source pack most of whose bytes are wanted is copied whole and kept as is (its index is
  re-derived from the verified records, so a pack is never re-packed for nothing);
- from the other packs only the wanted records are read, with coalesced range reads (gaps up to
  1 MiB, spans up to 16 MiB), and written into new packs by the destination's pack writers.

Every object is verified by its id exactly once, on the way in (:meth:`ObjectStore.put_stored`,
:meth:`ObjectStore.adopt_pack`). Reading and verifying run on a pool of ``jobs`` threads (each
with its own zstd contexts), overlapping the destination's pack writers, with a bound on the bytes
in flight, so memory does not follow the data size. The destination is flushed at the
end: when :func:`copy_objects` returns, every copied object is durable in ``dst`` and a ref may
name it; if it raises, nothing unflushed is kept.

A shared remote may be garbage-collected while we read it (docs/gc.md): a source pack deleted
after its index was cached is not an error. Its objects are located again (the source's cache is
re-synced: a collection copies every live object to another pack before deleting one) and read
from there; only an object that is still nowhere is missing. The other way round, a pusher must
not rely on packs a collection has doomed (``avoid_packs``): the destination's cache then
forgets them, so what lives only there is sent again, into packs that are never named like a
doomed one (such a pack would be one write from deletion).
"""

from __future__ import annotations

import os
from collections import defaultdict, deque
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from dsrepo.objects import indexsync, layout
from dsrepo.objects.errors import CorruptObject, ObjectNotFound
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.locindex import Location
from dsrepo.objects.model import Manifest, ObjectType
from dsrepo.objects.pack import IndexEntry, PackClass, decode_index, iter_pack_records
from dsrepo.objects.store import ObjectStore
from dsrepo.remotes.errors import KeyNotFound

Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes in all)."""

RANGE_GAP = 1 << 20
RANGE_SPAN = 16 << 20
MAX_IN_FLIGHT_BYTES = 64 << 20
"""Bytes requested but not yet stored, at most (bounds a clone's memory)."""
COPY_SLICE = 131_072
"""Objects located and planned at a time (~300 B each while they wait): a million-object copy
does not hold every location at once. A source pack split by a slice boundary may be copied by
ranges (re-packed) instead of whole, or whole by the first slice (the next then lacks nothing)."""
DEFAULT_JOBS = 8
RELOCATE_ROUNDS = 3
"""Times the objects of source packs deleted meanwhile are located again before they are missing."""
SALT_ROUNDS = 8
"""Times packs that came out named like an avoided pack are written again (salted)."""


@dataclass(frozen=True)
class CopyPolicy:
    """When a source pack is copied whole instead of object by object."""

    whole_pack_share: float
    """Copy a pack whole when at least this share of its bytes is wanted."""
    whole_pack_min: int = 0
    """...and it holds at least this many bytes."""


FETCH_POLICY = CopyPolicy(whole_pack_share=0.5)
"""Into a local store: a pack mostly wanted is cheaper to take whole than to cut into ranges."""
PUSH_POLICY = CopyPolicy(whole_pack_share=1.0, whole_pack_min=4 << 20)
"""Onto a remote: only packs wanted entirely, and large ones (one small pack per commit would
otherwise fill the remote with tiny packs: those are merged into new ones)."""


@dataclass
class CopyStats:
    objects: int = 0
    bytes: int = 0
    packs: int = 0


_Job = tuple[str, int, int, list[tuple[ObjectId, Location]]]
"""(pack, start, length or -1 for the whole pack, members)."""
_Read = tuple[tuple[PackClass, list[IndexEntry]] | None, bytes] | None
"""What a job read: the pack's decoded index (whole packs only) and the bytes; None when the
pack was deleted since its index was cached."""
_Locate = Callable[[list[ObjectId]], list[tuple[ObjectId, Location]]]


def _coalesce(items: list[tuple[ObjectId, Location]]) -> list[_Job]:
    """Group objects of one pack into (pack, start, length, members) ranges."""
    items.sort(key=lambda x: (x[1].pack, x[1].offset))
    out: list[_Job] = []
    for oid, loc in items:
        end = loc.offset + loc.stored_size
        if out:
            pack, start, length, members = out[-1]
            if (
                pack == loc.pack
                and loc.offset - (start + length) <= RANGE_GAP
                and end - start <= RANGE_SPAN
            ):
                out[-1] = (pack, start, max(start + length, end) - start, [*members, (oid, loc)])
                continue
        out.append((loc.pack, loc.offset, loc.stored_size, [(oid, loc)]))
    return out


def _locator(src: ObjectStore, hints: dict[ObjectId, Location] | None = None) -> _Locate:
    """Where ``src`` holds each id (ObjectNotFound for one it lacks). ``hints``: locations the
    caller looked up already, each used once (an id located again, after a collection moved
    its pack, is looked up afresh)."""
    hints = hints if hints is not None else {}

    def locate(want: list[ObjectId]) -> list[tuple[ObjectId, Location]]:
        rest = [oid for oid in want if oid not in hints]
        locations = src.locate_many(rest) if rest else {}
        out = []
        for oid in want:
            loc = hints.pop(oid, None) or locations.get(oid)
            if loc is None:
                raise ObjectNotFound(f"{src.backend.describe()} lacks object {oid.hex()}")
            out.append((oid, loc))
        return out

    return locate


def _plan(
    src: ObjectStore,
    located: list[tuple[ObjectId, Location]],
    policy: CopyPolicy | None,
    avoid: frozenset[str],
) -> tuple[list[_Job], dict[str, int]]:
    """Read jobs for ``located`` and the byte size of each source pack taken whole (never with
    no ``policy``, nor one named like an avoided pack: it would keep that name)."""
    by_pack: dict[str, list[tuple[ObjectId, Location]]] = defaultdict(list)
    for oid, loc in located:
        by_pack[loc.pack].append((oid, loc))
    jobs: list[_Job] = []
    whole: dict[str, int] = {}
    for pack, members in by_pack.items():
        if policy is not None and pack not in avoid:
            pack_bytes = src.index.pack_bytes(pack)
            wanted = sum(loc.stored_size for _, loc in members)
            if (
                pack_bytes >= policy.whole_pack_min
                and wanted >= policy.whole_pack_share * pack_bytes
            ):
                jobs.append((pack, 0, -1, members))
                whole[pack] = pack_bytes
                continue
        jobs.extend(_coalesce(members))
    return jobs, whole


def _read_job(src: ObjectStore, job: _Job) -> _Read:
    pack, start, length, _ = job
    try:
        if length < 0:
            pack_class, entries = decode_index(src.backend.get(layout.index_key(pack)), pack)
            return (pack_class, entries), src.backend.get(layout.pack_key(pack))
        return None, src.backend.get(layout.pack_key(pack), start, length)
    except KeyNotFound:
        return None  # deleted by a collection since its index was cached


class _Copy:
    """One copy from ``src`` into ``dst``: read jobs run on a pool, what they read is stored."""

    def __init__(
        self,
        src: ObjectStore,
        dst: ObjectStore,
        *,
        jobs: int,
        progress: Progress | None,
        where: str,
        avoid: frozenset[str] = frozenset(),
    ) -> None:
        self.src, self.dst, self.jobs, self.progress, self.where = src, dst, jobs, progress, where
        self.avoid = avoid
        self.stats = CopyStats()
        self.done = 0
        self.total = 0

    def copy(self, todo: list[ObjectId], locate: _Locate, policy: CopyPolicy | None) -> None:
        """Copy ``todo``; the objects of source packs deleted meanwhile are located again."""
        for _ in range(RELOCATE_ROUNDS):
            if not todo:
                return
            plan, whole = _plan(self.src, locate(todo), policy, self.avoid)
            todo = [oid for oid, _ in self._run(plan, whole)]
            if todo:
                self.src.sync_index()  # a collection moved them: their packs are listed now
        if todo:
            raise ObjectNotFound(
                f"{self.where} lacks object {todo[0].hex()} (its pack was deleted while read)"
            )

    def _run(self, plan: list[_Job], whole: dict[str, int]) -> list[tuple[ObjectId, Location]]:
        """Run the jobs; returns the members of jobs whose pack was gone. Each job is read,
        verified and handed to ``dst``'s pack writers on a pool thread (hashing and zstd release
        the GIL, so verifying overlaps reading and writing); this thread keeps the count."""
        gone: list[tuple[ObjectId, Location]] = []

        def size(job: _Job) -> int:
            return whole[job[0]] if job[2] < 0 else job[2]

        self.total += sum(size(j) for j in plan)

        def record(job: _Job, stored: tuple[int, int] | None) -> None:
            if stored is None:
                gone.extend(job[3])
            else:
                self.stats.objects += stored[0]
                self.stats.bytes += stored[1]
            self.done += size(job)
            if self.progress:
                self.progress(self.done, self.total)

        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="dsrepo-copy")
        try:
            window: deque[tuple[_Job, int, Future[tuple[int, int] | None]]] = deque()
            in_flight = 0
            for job in plan:
                n = size(job)
                # bounded by bytes too: whole packs are 32 MiB, and memory must not follow data
                while window and (
                    len(window) >= 2 * self.jobs or in_flight + n > MAX_IN_FLIGHT_BYTES
                ):
                    first, first_size, fut = window.popleft()
                    record(first, fut.result())
                    in_flight -= first_size
                window.append((job, n, pool.submit(self._copy_job, job)))
                in_flight += n
            for job, _, fut in window:
                record(job, fut.result())
        finally:  # on an error: jobs not started never start, running ones end before we return
            pool.shutdown(wait=True, cancel_futures=True)
        return gone

    def _copy_job(self, job: _Job) -> tuple[int, int] | None:
        """Read one job, verify every object and buffer it in ``dst`` (on a pool thread): the
        (objects, bytes) stored, or None when the source pack is gone."""
        got = _read_job(self.src, job)
        if got is None:
            return None
        pack, start, _, members = job
        where = f"{self.where} pack {pack}"
        if got[0] is not None:
            pack_class, entries = got[0]
            self.dst.adopt_pack(pack, pack_class, entries, got[1], where)
            return len(entries), len(got[1])
        data = got[1]
        nbytes = 0
        for oid, loc in members:
            piece = data[loc.offset - start : loc.offset - start + loc.stored_size]
            self.dst.put_stored(oid, loc.type, piece, loc.raw_size, loc.flags, where)
            nbytes += loc.stored_size
        return len(members), nbytes

    def flush(self, locate: _Locate) -> None:
        """Flush ``dst``. A pack that came out named like an avoided one (the same objects in
        the same order: its writes found the avoided pack's keys and wrote nothing) is written
        again behind a salt object, so that no object we copied lives only in an avoided pack."""
        names = self.dst.flush()
        self.stats.packs += len(names)
        for _ in range(SALT_ROUNDS):
            clash = sorted(set(names) & self.avoid)
            if not clash:
                return
            self.stats.packs -= len(clash)
            again = {oid: loc.type for n in clash for oid, loc in self.dst.pack_objects(n)}
            exclude_packs(self.dst, self.avoid)
            salt(self.dst, {PackClass.for_type(t) for t in again.values()})
            self.copy(list(again), locate, None)
            names = self.dst.flush()
            self.stats.packs += len(names)
        raise CorruptObject(f"cannot write packs named unlike {sorted(self.avoid)[:3]}")


def salt(store: ObjectStore, classes: Collection[PackClass]) -> None:
    """Put a random object of each class in ``classes`` into ``store``'s open packs (first in a
    pack opened after a flush), so that the packs written next are named like no earlier pack.
    A salt object is unreachable: the next collection drops it."""
    if PackClass.DATA in classes:
        store.put_chunk(os.urandom(32))
    if PackClass.META in classes:
        store.put(Manifest(ObjectId(os.urandom(32)), 0, ()))


def exclude_packs(store: ObjectStore, names: Collection[str]) -> None:
    """Make ``store``'s location cache list exactly the backend's indexed packs but ``names``:
    an object that lives only in those packs is then missing for ``store`` (a push sends it
    again, a collector copies it out); one that another pack holds too is located there.
    ``ObjectStore.sync_index`` lists them all again."""
    present = indexsync.indexed_packs(store.backend) - set(names)
    index = store.index
    for name in sorted(index.pack_names() - present):
        index.remove_pack(name)  # also forgets packs whose objects it shadowed: re-added below
    for name in sorted(present - index.pack_names()):
        try:
            data = store.backend.get(layout.index_key(name))
        except KeyNotFound:
            continue  # removed since the listing
        pack_class, entries = decode_index(data, name)
        index.add_pack(name, pack_class, entries)


def copy_objects(
    src: ObjectStore,
    dst: ObjectStore,
    ids: Iterable[ObjectId],
    *,
    policy: CopyPolicy = FETCH_POLICY,
    jobs: int = DEFAULT_JOBS,
    progress: Progress | None = None,
    where: str | None = None,
    avoid_packs: Collection[str] = (),
    located: dict[ObjectId, Location] | None = None,
) -> CopyStats:
    """Copy the objects ``ids`` that ``dst`` lacks from ``src``; verify each; flush ``dst``.

    ``avoid_packs``: packs of ``dst`` that must not be relied on (doomed by a collection): what
    lives only there is copied too, into packs named like none of them. Raises ObjectNotFound
    when ``src`` lacks one, CorruptObject when one fails verification (``where`` names the
    source in messages). ``located``: where ``src`` holds some of ``ids``, already looked up
    (consumed: each location is used once).
    """
    avoid = frozenset(avoid_packs)
    run = _Copy(
        src, dst, jobs=jobs, progress=progress, where=where or src.backend.describe(), avoid=avoid
    )
    # no copy of a Sequence (a million chunk ids); duplicates go within a slice, and across
    # slices because ``missing`` is asked after the slices before were stored
    wanted = ids if isinstance(ids, Sequence) else list(ids)
    try:
        if avoid:
            exclude_packs(dst, avoid)
        locate = _locator(src, located)
        for i in range(0, len(wanted), COPY_SLICE):
            part = list(dict.fromkeys(wanted[i : i + COPY_SLICE]))
            missing = dst.missing(part)  # after the slices before: a pack taken whole counts
            run.copy([oid for oid in part if oid in missing], locate, policy)
        run.flush(locate)
    except BaseException:
        dst.abort()
        raise
    return run.stats


def copy_metadata(src: ObjectStore, dst: ObjectStore, *, where: str | None = None) -> int:
    """Copy every metadata object (commits, trees, manifests, tags) ``dst`` lacks: each source
    metadata pack holding one is read whole (they are small next to data), and only the missing
    records are stored, verified. A pack deleted meanwhile (a collection copied its live objects
    elsewhere first) is skipped and the packs listed again. Returns how many objects were
    copied; flushes ``dst``."""
    where = where or src.backend.describe()
    count = 0
    seen: set[str] = set()
    try:
        for _ in range(RELOCATE_ROUNDS):
            gone = False
            for name in sorted(src.pack_names() - seen):
                seen.add(name)
                objs = src.pack_objects(name)
                if not objs or objs[0][1].type == ObjectType.CHUNK:
                    continue
                missing = dst.missing(oid for oid, _ in objs)
                if not missing:
                    continue
                try:
                    index = src.backend.get(layout.index_key(name))
                    data = src.backend.get(layout.pack_key(name))
                except KeyNotFound:
                    gone = True
                    continue
                # every record header is checked against the pack's own index: a damaged one
                # is corruption naming the pack and offset, not an object "not found" later
                pack_class, entries = decode_index(index, name)
                for rec, stored in iter_pack_records(data, name, entries, pack_class):
                    if rec.id in missing:
                        dst.put_stored(
                            rec.id,
                            rec.type,
                            stored,
                            rec.raw_size,
                            rec.flags,
                            f"{where} pack {name}",
                        )
                        count += 1
            if not gone:
                break
            src.sync_index()
        dst.flush()
    except BaseException:
        dst.abort()
        raise
    return count
