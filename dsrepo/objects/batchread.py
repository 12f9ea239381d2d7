"""Reading many chunks at once: small files (checkout, ``checkout --into``) and the chunks of a
large file's manifest. One location query per 500 ids and coalesced range reads per pack (gaps
under 256 KiB, spans under 16 MiB) instead of a lookup and an open/seek/read per chunk (a 10k-file
clone's two 128 MiB files were 3,400 of each: 0.24 s of its 2.3 s).

Every object is verified. One whose cached location fails (not indexed, unflushed, its pack gone,
its bytes not matching) is read again one by one (:meth:`ObjectStore.read_all`,
:meth:`ObjectStore.get_raw`), which heals the location cache or says what is wrong.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, TypeVar

from dsrepo.objects import layout
from dsrepo.objects.errors import CorruptObject
from dsrepo.objects.ids import ObjectId, hash_data
from dsrepo.objects.model import Manifest, ObjectType, TreeEntry
from dsrepo.remotes.errors import KeyNotFound

if TYPE_CHECKING:
    from dsrepo.objects.locindex import Location
    from dsrepo.objects.store import ObjectStore

_GAP = 256 << 10
_SPAN = 16 << 20
T = TypeVar("T")


def read_small(
    store: ObjectStore, entries: Sequence[TreeEntry], budget: int
) -> Iterator[tuple[TreeEntry, bytes]]:
    """The verified content of single-chunk entries, in order, in batches of ~``budget`` bytes."""
    for batch in _batches(entries, budget, lambda e: e.size):
        content = _read_located(store, [e.id for e in batch])
        for e in batch:
            raw = content.get(e.id)
            if raw is None:
                raw = store.read_all(e)
            elif len(raw) != e.size:
                raise CorruptObject(f"file content {e.id.hex()} does not match its entry")
            yield e, raw


def read_manifest(
    store: ObjectStore, manifest: Manifest, manifest_id: ObjectId, budget: int
) -> Iterator[bytes]:
    """The verified chunks of ``manifest``, in order, read in batches of ~``budget`` bytes."""
    for batch in _batches(manifest.chunks, budget, lambda c: c[1]):
        content = _read_located(store, [cid for cid, _ in batch])
        for cid, length in batch:
            raw = content.get(cid)
            type_ = ObjectType.CHUNK
            if raw is None:
                type_, raw = store.get_raw(cid)  # heals the cache, or says what is wrong
            if type_ != ObjectType.CHUNK or len(raw) != length:
                raise CorruptObject(f"chunk {cid.hex()} of manifest {manifest_id.hex()} is wrong")
            yield raw


def _batches(items: Sequence[T], budget: int, size: Callable[[T], int]) -> Iterator[list[T]]:
    batch: list[T] = []
    total = 0
    for item in items:
        batch.append(item)
        total += size(item)
        if total >= budget:
            yield batch
            batch, total = [], 0
    if batch:
        yield batch


def _read_located(store: ObjectStore, ids: Sequence[ObjectId]) -> dict[bytes, bytes]:
    """The verified content of the chunks among ``ids`` whose cached location reads back right
    (the others are left out: the caller reads them one by one)."""
    # in id order: the location index is a B-tree on the id, so neighbouring probes share pages
    locs = store.index.lookup_many(sorted(set(ids)))
    by_pack: dict[str, list[tuple[ObjectId, Location]]] = {}
    for oid, loc in locs.items():
        by_pack.setdefault(loc.pack, []).append((ObjectId(oid), loc))
    content: dict[bytes, bytes] = {}
    for pack, items in by_pack.items():
        items.sort(key=lambda x: x[1].offset)
        start = 0
        while start < len(items):
            end = start + 1
            lo = items[start][1].offset
            hi = lo + items[start][1].stored_size
            while end < len(items):
                nxt = items[end][1]
                if nxt.offset - hi > _GAP or nxt.offset + nxt.stored_size - lo > _SPAN:
                    break
                hi = max(hi, nxt.offset + nxt.stored_size)
                end += 1
            try:
                data = store.backend.get(layout.pack_key(pack), lo, hi - lo)
            except KeyNotFound:
                data = b""  # read one by one: the cache is healed, or the loss reported
            for oid, loc in items[start:end] if data else ():
                if loc.type != ObjectType.CHUNK:
                    continue
                stored = data[loc.offset - lo : loc.offset - lo + loc.stored_size]
                if not loc.flags:  # stored as is (most data): verified right here
                    if len(stored) == loc.raw_size and hash_data(stored) == oid:
                        content[oid] = stored
                    continue  # else read one by one, which says what is wrong
                with contextlib.suppress(CorruptObject):
                    content[oid] = store.unpack_located(oid, loc, stored)
            start = end
    return content
