"""Copying objects between two object stores: the bytes half of push, fetch, clone and get.

What to copy is decided above (reachability and ref rules live in :mod:`dsrepo.dvcs`); this
module only moves a set of ids from ``src`` to ``dst`` as cheaply as their packs allow:

- a source pack most of whose bytes are wanted is copied whole and kept as is (its index is
  re-derived from the verified records, so a pack is never re-packed for nothing);
- from the other packs only the wanted records are read, with coalesced range reads (gaps up to
  1 MiB, spans up to 16 MiB), and written into new packs by the destination's pack writers.

Every object is verified by its id exactly once, on the way in (:meth:`ObjectStore.put_stored`,
:meth:`ObjectStore.adopt_pack`). Reads run on a pool of ``jobs`` threads with a bound on the
bytes in flight, so memory does not follow the data size. The destination is flushed at the
end: when :func:`copy_objects` returns, every copied object is durable in ``dst`` and a ref may
name it; if it raises, nothing unflushed is kept.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from dsrepo.objects.errors import ObjectNotFound
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.locindex import Location
from dsrepo.objects.model import ObjectType
from dsrepo.objects.pack import IndexEntry, PackClass, iter_pack_records
from dsrepo.objects.store import ObjectStore

Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes in all)."""

RANGE_GAP = 1 << 20
RANGE_SPAN = 16 << 20
MAX_IN_FLIGHT_BYTES = 128 << 20
"""Bytes requested but not yet stored, at most (bounds a clone's memory)."""
DEFAULT_JOBS = 8


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
_Read = tuple[tuple[PackClass, list[IndexEntry]] | None, bytes]
"""What a job read: the pack's decoded index (whole packs only) and the bytes."""


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


def _plan(
    src: ObjectStore, want: list[ObjectId], policy: CopyPolicy
) -> tuple[list[_Job], dict[str, int]]:
    """Read jobs for ``want`` and the byte size of each source pack taken whole."""
    locations = src.locate_many(want)
    by_pack: dict[str, list[tuple[ObjectId, Location]]] = defaultdict(list)
    for oid in want:
        loc = locations.get(oid)
        if loc is None:
            raise ObjectNotFound(f"{src.backend.describe()} lacks object {oid.hex()}")
        by_pack[loc.pack].append((oid, loc))
    jobs: list[_Job] = []
    whole: dict[str, int] = {}
    for pack, members in by_pack.items():
        pack_bytes = sum(loc.stored_size for _, loc in src.pack_objects(pack))
        wanted = sum(loc.stored_size for _, loc in members)
        if pack_bytes >= policy.whole_pack_min and wanted >= policy.whole_pack_share * pack_bytes:
            jobs.append((pack, 0, -1, members))
            whole[pack] = pack_bytes
        else:
            jobs.extend(_coalesce(members))
    return jobs, whole


def copy_objects(
    src: ObjectStore,
    dst: ObjectStore,
    ids: Iterable[ObjectId],
    *,
    policy: CopyPolicy = FETCH_POLICY,
    jobs: int = DEFAULT_JOBS,
    progress: Progress | None = None,
    where: str | None = None,
) -> CopyStats:
    """Copy the objects ``ids`` that ``dst`` lacks from ``src``; verify each; flush ``dst``.

    Raises ObjectNotFound when ``src`` lacks one, CorruptObject when one fails verification
    (``where`` names the source in messages).
    """
    where = where or src.backend.describe()
    stats = CopyStats()
    wanted = list(dict.fromkeys(ids))
    missing = dst.missing(wanted)
    plan, whole = _plan(src, [oid for oid in wanted if oid in missing], policy)

    def size(job: _Job) -> int:
        return whole[job[0]] if job[2] < 0 else job[2]

    total = sum(size(j) for j in plan)
    done = 0

    def read(job: _Job) -> _Read:
        pack, start, length, _ = job
        if length < 0:
            pack_class, entries, data = src.read_pack(pack)
            return (pack_class, entries), data
        return None, src.read_range(pack, start, length)

    def store(job: _Job, got: _Read) -> None:
        nonlocal done
        pack, start, _, members = job
        header, data = got
        if header is not None:
            pack_class, entries = header
            dst.adopt_pack(pack, pack_class, entries, data, f"{where} pack {pack}")
            stats.objects += len(entries)
            stats.bytes += len(data)
        else:
            for oid, loc in members:
                piece = data[loc.offset - start : loc.offset - start + loc.stored_size]
                dst.put_stored(
                    oid, loc.type, piece, loc.raw_size, loc.flags, f"{where} pack {loc.pack}"
                )
                stats.objects += 1
                stats.bytes += loc.stored_size
        done += size(job)
        if progress:
            progress(done, total)

    try:
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="dsrepo-copy") as pool:
            window: list[tuple[_Job, int, Future[_Read]]] = []
            in_flight = 0
            for job in plan:
                n = size(job)
                # bounded by bytes too: whole packs are 32 MiB, and memory must not follow data
                while window and (len(window) >= 2 * jobs or in_flight + n > MAX_IN_FLIGHT_BYTES):
                    first, first_size, fut = window.pop(0)
                    store(first, fut.result())
                    in_flight -= first_size
                window.append((job, n, pool.submit(read, job)))
                in_flight += n
            for job, _, fut in window:
                store(job, fut.result())
        stats.packs = len(dst.flush())
    except BaseException:
        dst.abort()
        raise
    return stats


def copy_metadata(src: ObjectStore, dst: ObjectStore, *, where: str | None = None) -> int:
    """Copy every metadata object (commits, trees, manifests, tags) ``dst`` lacks: each source
    metadata pack holding one is read whole (they are small next to data), and only the missing
    records are stored, verified. Returns how many objects were copied; flushes ``dst``."""
    where = where or src.backend.describe()
    count = 0
    try:
        for name in sorted(src.pack_names()):
            objs = src.pack_objects(name)
            if not objs or objs[0][1].type == ObjectType.CHUNK:
                continue
            missing = dst.missing(oid for oid, _ in objs)
            if not missing:
                continue
            data = src.read_range(name, 0, None)
            for rec, stored in iter_pack_records(data, name):
                if rec.id in missing:
                    dst.put_stored(
                        rec.id, rec.type, stored, rec.raw_size, rec.flags, f"{where} pack {name}"
                    )
                    count += 1
        dst.flush()
    except BaseException:
        dst.abort()
        raise
    return count
