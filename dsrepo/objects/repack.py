"""Repacking and deleting packs: the objects half of gc (docs/gc.md), over any store.

What is alive is decided above (the mark phase walks refs, reflogs, the staging index...:
:mod:`dsrepo.dvcs.gc`); this module takes that set and the grace period and

1. takes an :class:`Inventory` of the backend: every pack with its index entries, size and the
   backend's own modification time, and the packs without an index (a killed writer's);
2. plans (:func:`plan`): a pack that holds garbage (unreachable objects, the pack older than the
   grace period) is rewritten without it, or dropped when nothing in it is alive; small packs are
   merged when there are more than a few; a pack holding unreachable objects *within* the grace
   period is never touched (copying them would make them young again); index-less packs older
   than the grace period are deleted;
3. executes it (:func:`execute`), crash-safe at every step: the live objects are copied into new
   packs of 16-64 MiB (each object verified on the way) and those are written, fsynced and
   indexed first; then the location index learns them; only then are the old packs' indexes
   deleted (readers stop seeing those packs, the location index forgets them), then the old pack
   files. A crash leaves at worst duplicate objects (an old pack not deleted yet) or an orphan
   pack without an index, which the next gc removes.

Ages are compared with the backend's clock only (:func:`backend_clock`: the mtime of a key just
written), never the local one, so a collector whose clock is off cannot shorten the window.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import secrets
from array import array
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass, field

from dsrepo.objects import layout
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.model import ObjectType
from dsrepo.objects.pack import (
    PACK_HEADER_SIZE,
    RECORD_HEADER_SIZE,
    IndexEntry,
    IndexTable,
    PackClass,
    decode_index_table,
    encode_index,
    record_payload,
)
from dsrepo.objects.packwriter import PackWriter
from dsrepo.objects.store import ObjectStore
from dsrepo.remotes.base import Backend
from dsrepo.remotes.errors import BackendError, KeyNotFound

SMALL_PACK = 16 << 20
"""A pack smaller than this is merged with others when there are more than a few."""
SMALL_PACKS_LIMIT = 4
"""How many small packs are "a few": more are merged (fewer are left alone: no churn)."""
MAX_TARGET = 48 << 20
"""New packs are sealed past an even share of the bytes of at most this much: 16-64 MiB."""
CLOCK_PREFIX = "gc/clock-"
"""A key under it is written and read back to learn the backend's time, then deleted."""

Progress = Callable[[int, int], None]


def backend_clock(backend: Backend) -> float | None:
    """The backend's current time: the modification time of a key written now. None when the
    backend does not report modification times or cannot be written (then nothing is old)."""
    key = CLOCK_PREFIX + secrets.token_hex(8)  # two collectors (or dry runs) never share one
    try:
        backend.put(key, b"")
        return backend.stat(key).mtime
    except BackendError:
        return None
    finally:
        with contextlib.suppress(BackendError):
            backend.delete(key)


# ---------------------------------------------------------------- inventory


@dataclass(frozen=True)
class PackInfo:
    """An indexed pack: its objects (from its own index) and the backend's view of its file."""

    name: str
    pack_class: PackClass
    entries: IndexTable
    """Its index's entries, kept packed (a collection holds every pack's at once)."""
    size: int | None
    """Bytes of the pack file; None when the index has no pack (a *stray* index)."""
    index_size: int
    mtime: float | None
    """The pack file's modification time by the backend's clock (a stray index: the index's;
    None: unknown, never old)."""

    @property
    def total_bytes(self) -> int:
        return (self.size or 0) + self.index_size


@dataclass(frozen=True)
class Orphan:
    """A pack file without an index: a killed writer's, or one being written right now."""

    name: str
    size: int
    mtime: float | None


@dataclass(frozen=True)
class Inventory:
    packs: dict[str, PackInfo]
    orphans: dict[str, Orphan]

    def counts(self, live: Container[ObjectId]) -> tuple[int, int]:
        """(distinct objects, how many of them ``live`` holds): each pack index is sorted by
        id, so merging them counts without a set of every id (~100 MB at a million)."""
        total = in_live = 0
        prev = None
        for oid in heapq.merge(*(p.entries.ids() for p in self.packs.values())):
            if oid != prev:
                total += 1
                in_live += oid in live
                prev = oid
        return total, in_live

    @property
    def total_bytes(self) -> int:
        return sum(p.total_bytes for p in self.packs.values()) + sum(
            o.size for o in self.orphans.values()
        )


def take_inventory(backend: Backend) -> Inventory:
    """Every pack of ``backend``: indexed ones with their decoded (verified) index, and the
    orphans. A damaged index raises CorruptObject: gc must not guess what a pack holds."""
    return Inventories(backend).take()


class Inventories:
    """:func:`take_inventory` for a collection that lists the packs several times: a pack index
    never changes, so each is downloaded and decoded once (a listing is one request, and the
    mtimes and sizes come from it)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._indexes: dict[str, tuple[PackClass, IndexTable]] = {}

    def take(self) -> Inventory:
        packs: dict[str, tuple[int, float | None]] = {}
        indexes: dict[str, tuple[int, float | None]] = {}
        for info in self.backend.iter_keys(layout.PACKS_PREFIX):
            if (name := layout.pack_name_from_index_key(info.key)) is not None:
                indexes[name] = (info.size, info.mtime)
            elif (name := layout.pack_name_from_pack_key(info.key)) is not None:
                packs[name] = (info.size, info.mtime)
        indexed: dict[str, PackInfo] = {}
        for name, (index_size, index_mtime) in sorted(indexes.items()):
            known = self._indexes.get(name)
            if known is None:
                try:
                    data = self.backend.get(layout.index_key(name))
                except KeyNotFound:
                    continue  # removed since the listing
                known = self._indexes[name] = decode_index_table(data, name)
            size, mtime = packs.get(name, (None, index_mtime))
            indexed[name] = PackInfo(name, known[0], known[1], size, index_size, mtime)
        orphans = {
            name: Orphan(name, size, mtime)
            for name, (size, mtime) in sorted(packs.items())
            if name not in indexes
        }
        return Inventory(indexed, orphans)


# ---------------------------------------------------------------- planning


@dataclass
class Plan:
    """What a repack will do; every list holds pack names."""

    rewrite: list[str] = field(default_factory=list)
    """Packs that leave the store: their live objects (``copy``) go to new packs first."""
    orphans: list[str] = field(default_factory=list)
    """Index-less packs older than the grace period."""
    kept_young: list[str] = field(default_factory=list)
    """Packs holding unreachable objects within the grace period: left as they are."""
    copy: CopyList = field(default_factory=lambda: CopyList())
    """Each object copied to the new packs, by source pack, in pack order."""
    garbage: set[ObjectId] = field(default_factory=set)
    """Objects that leave the store (unreachable, no copy kept anywhere)."""
    unreachable_kept: set[ObjectId] = field(default_factory=set)
    """Unreachable objects that stay (within the grace period)."""

    @property
    def empty(self) -> bool:
        return not (self.rewrite or self.orphans)

    def bytes_deleted(self, inv: Inventory) -> int:
        return sum(inv.packs[n].total_bytes for n in self.rewrite) + sum(
            inv.orphans[n].size for n in self.orphans
        )

    def packs_to_write(self) -> int:
        """How many new packs the copy makes (about: they are cut at object boundaries)."""
        return sum(_pack_count(records) for records, _ in self.copy.classes().values())

    def bytes_to_write(self) -> int:
        """The size of the new packs and their indexes (exact but for how they are split)."""
        total = 0
        for records, count in self.copy.classes().values():
            total += records + _pack_count(records) * (PACK_HEADER_SIZE + _INDEX_EMPTY)
            total += count * _INDEX_ENTRY
        return total


class CopyList:
    """The objects a repack copies: per source pack, their positions in its index, in the order
    added (4 bytes an object; entries are built when read). A list of (pack, IndexEntry) held
    ~300 bytes an object: 550 MB of ``gc --aggressive`` at a million objects."""

    def __init__(self) -> None:
        self._packs: dict[str, tuple[IndexTable, array[int]]] = {}
        self._count = 0

    def add(self, name: str, entries: IndexTable, position: int) -> None:
        """Copy ``entries[position]`` of pack ``name``."""
        got = self._packs.get(name)
        if got is None:
            got = self._packs[name] = (entries, array("L"))
        got[1].append(position)
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def packs(self) -> Iterator[tuple[str, list[IndexEntry]]]:
        """Each source pack with the entries to copy from it (one pack's built at a time)."""
        for name, (entries, positions) in self._packs.items():
            yield name, [entries[i] for i in positions]

    def __iter__(self) -> Iterator[tuple[str, IndexEntry]]:
        for name, entries in self.packs():
            for e in entries:
                yield name, e

    def classes(self) -> dict[PackClass, tuple[int, int]]:
        """Per pack class: (bytes of the records copied, how many)."""
        out: dict[PackClass, tuple[int, int]] = {}
        for _, e in self:
            pc = PackClass.for_type(e.type)
            records, count = out.get(pc, (0, 0))
            out[pc] = (records + RECORD_HEADER_SIZE + e.stored_size, count + 1)
        return out


def in_pack_order(entries: IndexTable) -> Iterator[tuple[int, IndexEntry]]:
    """(position in the index, entry) of every entry of a pack, by offset."""
    listed = list(entries)
    for i in sorted(range(len(listed)), key=lambda i: listed[i].offset):
        yield i, listed[i]


def _shared(packs: list[PackInfo]) -> set[ObjectId]:
    """The ids more than one of ``packs`` holds (each index is sorted: merged, no set of all)."""
    out: set[ObjectId] = set()
    prev = None
    for oid in heapq.merge(*(p.entries.ids() for p in packs)):
        if oid == prev:
            out.add(oid)
        prev = oid
    return out


def plan(
    inv: Inventory,
    live: Container[ObjectId],
    cutoff: float | None,
    *,
    aggressive: bool = False,
) -> Plan:
    """Decide which packs leave the store. ``cutoff``: a pack (or orphan) whose backend mtime is
    at or before it is past the grace period (None: none is). ``aggressive``: every pack is
    rewritten (but those holding young unreachable objects)."""

    def old(mtime: float | None) -> bool:
        if cutoff is None:
            return False
        return cutoff == math.inf or (mtime is not None and mtime <= cutoff)

    out = Plan()
    keep: list[PackInfo] = []
    small: list[PackInfo] = []
    leaving: list[PackInfo] = []
    by_age = sorted(
        inv.packs.values(), key=lambda p: (math.inf if p.mtime is None else p.mtime, p.name)
    )
    for p in by_age:
        unreachable = [e.id for e in p.entries if e.id not in live]
        if p.size is None:
            continue  # an index without its pack: fsck reports it; it holds nothing to keep
        if unreachable and not old(p.mtime):
            keep.append(p)
            out.kept_young.append(p.name)
            out.unreachable_kept.update(unreachable)
        elif unreachable or aggressive:
            leaving.append(p)
        elif p.size < SMALL_PACK:
            small.append(p)
        else:
            keep.append(p)
    copies_live = any(e.id in live for p in leaving for e in p.entries)
    if len(small) > SMALL_PACKS_LIMIT or (small and copies_live):
        leaving.extend(small)
    else:
        keep.extend(small)
    # what a staying pack holds too needs no copy; only leaving packs' ids are looked for (a
    # set of every id of a million-object store was ~100 MB of a collection's peak)
    leaving_ids = {e.id for p in leaving for e in p.entries} if keep else set()
    held = {e.id for p in keep for e in p.entries if e.id in leaving_ids}
    del leaving_ids
    shared = _shared(leaving)  # copied once: from the first leaving pack met
    copied: set[ObjectId] = set()
    for p in leaving:
        out.rewrite.append(p.name)
        for i, e in in_pack_order(p.entries):
            if e.id in held or e.id in copied:
                continue
            if e.id in live:
                if e.id in shared:
                    copied.add(e.id)
                out.copy.add(p.name, p.entries, i)
            else:
                out.garbage.add(e.id)
    out.orphans = [o.name for o in inv.orphans.values() if old(o.mtime)]
    return out


# ---------------------------------------------------------------- executing


@dataclass
class Outcome:
    packs_written: list[str] = field(default_factory=list)
    """New packs (a pack identical to one it replaces keeps its name and is not listed)."""
    bytes_written: int = 0
    packs_deleted: list[str] = field(default_factory=list)
    orphans_deleted: list[str] = field(default_factory=list)
    bytes_deleted: int = 0


def execute(
    store: ObjectStore,
    inv: Inventory,
    todo: Plan,
    *,
    progress: Progress | None = None,
) -> Outcome:
    """Carry out ``todo`` on ``store``'s backend in the crash-safe order (module docstring)."""
    backend = store.backend
    out = Outcome()
    written = _copy(store, todo.copy, progress) if todo.copy else []
    # a new pack identical to an old one (all of its objects, in the same order) has its name:
    # it was not written again, and must not be deleted
    out.packs_written = [name for name in written if name not in inv.packs]
    leaving = [name for name in todo.rewrite if name not in set(written)]
    for name in out.packs_written:
        out.bytes_written += backend.stat(layout.pack_key(name)).size
        out.bytes_written += backend.stat(layout.index_key(name)).size
    store.sync_index()  # the location index learns the new packs
    for name in leaving:  # readers stop seeing the old packs...
        backend.delete(layout.index_key(name))
    store.sync_index()  # ...and the location index forgets them (the new packs take over)
    for name in leaving:
        backend.delete(layout.pack_key(name))
        out.packs_deleted.append(name)
        out.bytes_deleted += inv.packs[name].total_bytes
    for name in todo.orphans:
        with contextlib.suppress(KeyNotFound):
            backend.stat(layout.index_key(name))
            continue  # completed since the listing: no orphan any more
        backend.delete(layout.pack_key(name))
        out.orphans_deleted.append(name)
        out.bytes_deleted += inv.orphans[name].size
    return out


def pack_totals(backend: Backend) -> tuple[int, int]:
    """(indexed packs, bytes of every pack file and pack index) in ``backend``: one listing."""
    indexed = 0
    total = 0
    for info in backend.iter_keys(layout.PACKS_PREFIX):
        if layout.pack_name_from_index_key(info.key) is not None:
            indexed += 1
            total += info.size
        elif layout.pack_name_from_pack_key(info.key) is not None:
            total += info.size
    return indexed, total


def _copy(store: ObjectStore, copy: CopyList, progress: Progress | None) -> list[str]:
    """Write the objects ``copy`` names into new packs (verified on the way: a damaged one
    stops everything before anything is deleted); returns the new packs' names, all durable
    and indexed."""
    sizes = [records for records, _ in copy.classes().values()]
    target = max(-(-total // _pack_count(total)) for total in sizes)
    # the objects are distinct (the plan copies each once) and the location index is synced
    # after: no lookups, and no index of the new packs in memory (~100 MB at a million)
    writer = PackWriter(store.backend, None, pack_target=target, overlap=False)
    total = sum(sizes)
    done = 0
    try:
        for name, entries in copy.packs():
            for start, end, run in _windows(entries):
                data = store.read_range(name, start, end - start)
                for e in run:
                    stored = record_payload(data, name, e, start)
                    where = f"pack {name} at offset {e.offset - RECORD_HEADER_SIZE}"
                    store.verify_stored(e.id, e.type, stored, e.flags, e.raw_size, where)
                    writer.add(e.id, e.type, stored, e.raw_size, e.flags)
                    done += RECORD_HEADER_SIZE + e.stored_size
                del data
            if progress is not None:
                progress(done, total)
        return writer.flush()
    except BaseException:
        writer.abort()
        raise
    finally:
        writer.close()


READ_WINDOW = 8 << 20
"""A repack reads its source packs this much at a time (a whole 48 MiB pack beside the two the
writer holds was most of ``gc --aggressive``'s peak past the mark)."""


def _windows(entries: list[IndexEntry]) -> Iterator[tuple[int, int, list[IndexEntry]]]:
    """(start, end, entries): runs of ``entries`` (in pack order) whose records span at most
    :data:`READ_WINDOW` bytes of the pack (a larger record alone)."""
    run: list[IndexEntry] = []
    start = end = 0
    for e in entries:
        lo, hi = e.offset - RECORD_HEADER_SIZE, e.offset + e.stored_size
        if run and (lo < end or hi - start > READ_WINDOW):
            yield start, end, run
            run = []
        if not run:
            start = lo
        run.append(e)
        end = max(end, hi) if len(run) > 1 else hi
    if run:
        yield start, end, run


def _pack_count(total: int) -> int:
    return max(1, -(-total // MAX_TARGET))


_INDEX_EMPTY = len(encode_index(PackClass.DATA, [])[1])
_INDEX_ENTRY = (
    len(
        encode_index(
            PackClass.DATA, [IndexEntry(ObjectId(bytes(32)), 0, 0, 0, ObjectType.CHUNK, 0)]
        )[1]
    )
    - _INDEX_EMPTY
)
