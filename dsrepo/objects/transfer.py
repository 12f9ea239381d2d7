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
from array import array
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

from dsrepo.gcpause import pausing
from dsrepo.objects import indexsync, layout
from dsrepo.objects.errors import CorruptObject, ObjectNotFound
from dsrepo.objects.ids import ID_BYTES, ObjectId
from dsrepo.objects.locindex import Location
from dsrepo.objects.model import TYPE_BY_NUMBER, Manifest, ObjectType
from dsrepo.objects.pack import IndexEntry, PackClass, decode_index, iter_pack_records
from dsrepo.objects.store import ObjectStore
from dsrepo.remotes.errors import KeyNotFound
from dsrepo.remotes.mapped import MappedFile

Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes in all)."""

RANGE_GAP = 1 << 20
RANGE_SPAN = 16 << 20
MAX_IN_FLIGHT_BYTES = 64 << 20
"""Bytes requested but not yet stored, at most (bounds a clone's memory)."""
COPY_SLICE = 131_072
"""Objects located at a time (~300 B each while located): a million-object copy does not hold
every location at once, only its tally (~58 B an object), so that packs are planned together."""
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
    found: list[str] = field(default_factory=list)
    """Packs whose keys ``dst`` already held (:meth:`PackWriter.take_found`)."""


_Members = list[tuple[ObjectId, Location]]


_Read = tuple[tuple[PackClass, list[IndexEntry]] | None, bytes | MappedFile] | None
"""What a job read: the pack's decoded index (whole packs only) and the bytes; None when the
pack was deleted since its index was cached."""
_Locate = Callable[[list[ObjectId]], list[tuple[ObjectId, Location]]]


class _PackTally:
    """The objects to copy from one source pack, packed (~58 bytes an object)."""

    __slots__ = ("flags", "ids", "offsets", "raw", "stored", "types")

    def __init__(self) -> None:
        self.ids = bytearray()  # 32 bytes apiece
        self.offsets = array("Q")
        self.stored = array("I")
        self.raw = array("I")
        self.types = bytearray()
        self.flags = bytearray()

    def add(self, oid: ObjectId, loc: Location) -> None:
        self.ids += oid
        self.offsets.append(loc.offset)
        self.stored.append(loc.stored_size)
        self.raw.append(loc.raw_size)
        self.types.append(loc.type)
        self.flags.append(loc.flags)

    def oids(self, which: list[int]) -> list[ObjectId]:
        """The ids of the objects at indexes ``which``."""
        ids = bytes(self.ids)
        return [ObjectId(ids[i * ID_BYTES : (i + 1) * ID_BYTES]) for i in which]

    def subset(self, which: list[int]) -> _PackTally:
        """A tally of the objects at indexes ``which``."""
        out = _PackTally()
        out.ids = bytearray(b"".join(self.oids(which)))
        out.offsets = array("Q", (self.offsets[i] for i in which))
        out.stored = array("I", (self.stored[i] for i in which))
        out.raw = array("I", (self.raw[i] for i in which))
        out.types = bytearray(self.types[i] for i in which)
        out.flags = bytearray(self.flags[i] for i in which)
        return out

    def distinct(self) -> list[int]:
        """The index of each object, the first time it was recorded (an object counted twice,
        at one offset, is one)."""
        first: dict[int, int] = {}
        for i, offset in enumerate(self.offsets):
            first.setdefault(offset, i)
        return list(first.values())

    def members(self, pack: str, which: list[int]) -> _Members:
        types = TYPE_BY_NUMBER
        offsets, stored, raw, kinds, flags = (
            self.offsets,
            self.stored,
            self.raw,
            self.types,
            self.flags,
        )
        return [
            (oid, Location(pack, offsets[i], stored[i], raw[i], types[kinds[i]], flags[i]))
            for oid, i in zip(self.oids(which), which, strict=True)
        ]


class Located:
    """Objects located in one store, by pack, held packed (~58 bytes an object): what a copy
    plans from. A reachability walk that looked the chunks up fills one for the copy after it
    (:func:`copy_objects`' ``located``); a million-object copy weighs every pack at once (one
    split across the caller's slices is still taken whole) without holding a million
    locations. An object added twice, at one offset, counts once."""

    def __init__(self, located: Iterable[tuple[ObjectId, Location]] = ()) -> None:
        self._packs: dict[str, _PackTally] = {}
        self.add(located)

    def add(self, located: Iterable[tuple[ObjectId, Location]]) -> None:
        packs = self._packs
        for oid, loc in located:
            got = packs.get(loc.pack)
            if got is None:
                got = packs[loc.pack] = _PackTally()
            got.add(oid, loc)

    def __bool__(self) -> bool:
        return bool(self._packs)

    def packs(self) -> Iterator[tuple[str, _PackTally, list[int]]]:
        """(pack, its tally, its distinct objects) for every pack, in name order."""
        for name in sorted(self._packs):
            got = self._packs[name]
            yield name, got, got.distinct()

    def ids(self) -> Iterator[ObjectId]:
        for _, got, distinct in self.packs():
            yield from got.oids(distinct)

    def lacking(self, dst: ObjectStore) -> Located:
        """The objects ``dst`` does not hold (one batched query per pack). A pack's tally is
        kept as it is when ``dst`` lacks all of it (a first push: no location is built)."""
        out = Located()
        if dst.is_empty():  # a first push: no id to look up, no tally to rebuild
            out._packs = dict(self._packs)
            return out
        for pack, got, distinct in self.packs():
            oids = got.oids(distinct)
            missing = dst.missing(oids)
            if len(missing) == len(oids) == len(got.offsets):
                out._packs[pack] = got
            elif missing:
                out._packs[pack] = got.subset(
                    [i for i, oid in zip(distinct, oids, strict=True) if oid in missing]
                )
        return out


class _Job(NamedTuple):
    pack: str
    start: int
    length: int
    """-1: the whole pack."""
    members: _Members
    """The wanted objects a range holds (a whole pack's: ``tally.members(pack, which)``)."""
    wanted: int = 0
    """The stored bytes of the wanted objects, or of a whole pack (what progress counts)."""
    tally: _PackTally | None = None
    which: list[int] | None = None

    def objects(self) -> _Members:
        if self.tally is None or self.which is None:
            return self.members
        return self.tally.members(self.pack, self.which)


def _coalesce(items: _Members) -> list[_Job]:
    """Group objects of one pack into (pack, start, length, members) ranges."""
    items.sort(key=lambda x: (x[1].pack, x[1].offset))
    out: list[_Job] = []
    for oid, loc in items:
        end = loc.offset + loc.stored_size
        if out:
            pack, start, length, members = out[-1][:4]
            if (
                pack == loc.pack
                and loc.offset - (start + length) <= RANGE_GAP
                and end - start <= RANGE_SPAN
            ):
                members.append((oid, loc))
                out[-1] = _Job(pack, start, max(start + length, end) - start, members)
                continue
        out.append(_Job(loc.pack, loc.offset, loc.stored_size, [(oid, loc)]))
    return [job._replace(wanted=sum(loc.stored_size for _, loc in job.members)) for job in out]


def _locator(src: ObjectStore) -> _Locate:
    """Where ``src`` holds each id (ObjectNotFound for one it lacks)."""

    def locate(want: list[ObjectId]) -> list[tuple[ObjectId, Location]]:
        locations = src.locate_many(want) if want else {}
        out = []
        for oid in want:
            loc = locations.get(oid)
            if loc is None:
                raise ObjectNotFound(f"{src.backend.describe()} lacks object {oid.hex()}")
            out.append((oid, loc))
        return out

    return locate


class _Plan:
    """The read jobs for a tally, made one source pack at a time (a job holds the locations of
    its objects: made all at once, a million of them would be held together). A pack is taken
    whole when ``policy`` says so, never with no ``policy`` nor when named like an avoided pack
    (it would keep that name)."""

    def __init__(
        self, src: ObjectStore, tally: Located, policy: CopyPolicy | None, avoid: frozenset[str]
    ) -> None:
        self.src, self.tally, self.policy, self.avoid = src, tally, policy, avoid
        self.total = 0
        """The bytes the jobs will count: whole packs, and the wanted objects of the rest."""
        for pack, got, distinct in tally.packs():
            wanted = sum(got.stored[i] for i in distinct)
            self.total += self._whole_bytes(pack, wanted) or wanted

    def _whole_bytes(self, pack: str, wanted: int) -> int | None:
        """The pack's bytes when it is taken whole (``wanted`` of them are), else None."""
        if self.policy is None or pack in self.avoid:
            return None
        pack_bytes = self.src.index.pack_bytes(pack)
        if (
            pack_bytes >= self.policy.whole_pack_min
            and pack_bytes > 0
            and wanted >= self.policy.whole_pack_share * pack_bytes
        ):
            return pack_bytes
        return None

    def __iter__(self) -> Iterator[_Job]:
        for pack, got, distinct in self.tally.packs():
            whole = self._whole_bytes(pack, sum(got.stored[i] for i in distinct))
            if whole is not None:  # its objects are listed only if it is gone
                yield _Job(pack, 0, -1, [], whole, got, distinct)
            else:
                yield from _coalesce(got.members(pack, distinct))


def _read_job(src: ObjectStore, job: _Job) -> _Read:
    pack, start, length = job.pack, job.start, job.length
    try:
        if length < 0:
            pack_class, entries = decode_index(src.backend.get(layout.index_key(pack)), pack)
            return (pack_class, entries), src.backend.get_mapped(layout.pack_key(pack))
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

    def copy(self, tally: Located, locate: _Locate, policy: CopyPolicy | None) -> None:
        """Copy what ``tally`` counts; the objects of source packs deleted meanwhile are located
        again (after the source's cache is synced: a collection moved them first)."""
        gone: list[ObjectId] = []
        for _ in range(RELOCATE_ROUNDS):
            if not tally:
                return
            gone = self._run(_Plan(self.src, tally, policy, self.avoid))
            if not gone:
                return
            self.src.sync_index()
            tally = Located(locate(gone))
        raise ObjectNotFound(
            f"{self.where} lacks object {gone[0].hex()} (its pack was deleted while read)"
        )

    def _run(self, plan: _Plan) -> list[ObjectId]:
        """Run the jobs; returns the objects of jobs whose pack was gone. Each job is read,
        verified and handed to ``dst``'s pack writers on a pool thread (hashing and zstd release
        the GIL, so verifying overlaps reading and writing); this thread keeps the count."""
        gone: list[ObjectId] = []
        self.total += plan.total

        def record(job: _Job, stored: tuple[int, int] | None) -> None:
            if stored is None:
                gone.extend(oid for oid, _ in job.objects())
            else:
                self.stats.objects += stored[0]
                self.stats.bytes += stored[1]
            self.done += job.wanted
            if self.progress:
                self.progress(self.done, self.total)

        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="dsrepo-copy")
        try:
            window: deque[tuple[_Job, int, Future[tuple[int, int] | None]]] = deque()
            in_flight = 0
            for job in plan:
                n = job.wanted if job.length < 0 else job.length
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
        where = f"{self.where} pack {job.pack}"
        if got[0] is not None:
            pack_class, entries = got[0]
            self.dst.adopt_pack(job.pack, pack_class, entries, got[1], where)
            return len(entries), len(got[1])
        data, start = got[1], job.start
        nbytes = 0
        for oid, loc in job.members:
            piece = data[loc.offset - start : loc.offset - start + loc.stored_size]
            self.dst.put_stored(oid, loc.type, piece, loc.raw_size, loc.flags, where)
            nbytes += loc.stored_size
        return len(job.members), nbytes

    def flush(self, locate: _Locate) -> None:
        """Flush ``dst``. A pack that came out named like an avoided one (the same objects in
        the same order) was set aside unwritten (:meth:`PackWriter.refuse`): its objects are
        copied again behind a salt object, so that none lives only in an avoided pack."""
        for _ in range(SALT_ROUNDS):
            self.stats.packs += len(self.dst.flush())
            self.stats.found.extend(self.dst.writer.take_found())
            refused = self.dst.writer.take_refused()
            if not refused:
                return
            self.stats.objects -= len(refused)  # counted when stored, then never written
            self.stats.bytes -= sum(e.stored_size for e in refused)
            again = {e.id: e.type for e in refused}
            salt(self.dst, {PackClass.for_type(t) for t in again.values()})
            self.copy(Located(locate(list(again))), locate, None)
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
    index.remove_packs(index.pack_names() - present)  # and packs they shadowed: re-added below
    for name in sorted(present - index.pack_names()):
        try:
            data = store.backend.get(layout.index_key(name))
        except KeyNotFound:
            continue  # removed since the listing
        pack_class, entries = decode_index(data, name)
        index.add_pack(name, pack_class, entries)


@pausing
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
    located: Located | None = None,
) -> CopyStats:
    """Copy the objects ``ids`` that ``dst`` lacks from ``src``; verify each; flush ``dst``.

    ``avoid_packs``: packs of ``dst`` that must not be relied on (doomed by a collection): what
    lives only there is copied too, into packs named like none of them. Raises ObjectNotFound
    when ``src`` lacks one, CorruptObject when one fails verification (``where`` names the
    source in messages). ``located``: more objects to copy, already located in ``src`` (a
    push's walk looked its chunks up): those ``dst`` lacks are copied too, located again only
    if their pack is gone.
    """
    avoid = frozenset(avoid_packs)
    run = _Copy(
        src, dst, jobs=jobs, progress=progress, where=where or src.backend.describe(), avoid=avoid
    )
    # no copy of a Sequence (a million chunk ids); duplicates go within a slice by the dict,
    # across slices by the tally (one offset each)
    wanted = ids if isinstance(ids, Sequence) else list(ids)
    dst.writer.refuse(avoid)
    try:
        if avoid:
            exclude_packs(dst, avoid)
        locate = _locator(src)
        tally = located.lacking(dst) if located is not None else Located()
        for i in range(0, len(wanted), COPY_SLICE):
            part = list(dict.fromkeys(wanted[i : i + COPY_SLICE]))
            missing = dst.missing(part)
            tally.add(locate([oid for oid in part if oid in missing]))
        run.copy(tally, locate, policy)
        run.flush(locate)
    except BaseException:
        dst.abort()
        raise
    finally:
        dst.writer.refuse(())
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
