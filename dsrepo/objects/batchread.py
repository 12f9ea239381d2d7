"""Reading many small files at once (checkout, ``checkout --into``): one location query per 500
ids and coalesced range reads per pack (gaps under 256 KiB, spans under 16 MiB) instead of an
open/seek/read per file.

Every object is verified. One whose cached location fails (not indexed, unflushed, its pack gone,
its bytes not matching) is read again one by one through :meth:`ObjectStore.read_all`, which heals
the location cache or says what is wrong.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from dsrepo.objects import layout
from dsrepo.objects.errors import CorruptObject
from dsrepo.objects.ids import ObjectId, hash_data
from dsrepo.objects.model import ObjectType, TreeEntry
from dsrepo.remotes.errors import KeyNotFound

if TYPE_CHECKING:
    from dsrepo.objects.locindex import Location
    from dsrepo.objects.store import ObjectStore

_GAP = 256 << 10
_SPAN = 16 << 20


def read_small(
    store: ObjectStore, entries: Sequence[TreeEntry], budget: int
) -> Iterator[tuple[TreeEntry, bytes]]:
    """The verified content of single-chunk entries, in order, in batches of ~``budget`` bytes."""
    batch: list[TreeEntry] = []
    size = 0
    for e in entries:
        batch.append(e)
        size += e.size
        if size >= budget:
            yield from _read_batch(store, batch)
            batch, size = [], 0
    if batch:
        yield from _read_batch(store, batch)


def _read_batch(store: ObjectStore, batch: list[TreeEntry]) -> Iterator[tuple[TreeEntry, bytes]]:
    # in id order: the location index is a B-tree on the id, so neighbouring probes share pages
    locs = store.index.lookup_many(sorted({e.id for e in batch}))
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
                data = b""  # read one by one below: the cache is healed, or the loss reported
            for oid, loc in items[start:end] if data else ():
                if loc.type != ObjectType.CHUNK:
                    continue
                stored = data[loc.offset - lo : loc.offset - lo + loc.stored_size]
                if not loc.flags:  # stored as is (most data): verified right here
                    if len(stored) == loc.raw_size and hash_data(stored) == oid:
                        content[oid] = stored
                    continue  # else read one by one below, which says what is wrong
                with contextlib.suppress(CorruptObject):
                    content[oid] = store.unpack_located(oid, loc, stored)
            start = end
    for e in batch:
        raw = content.get(e.id)
        if raw is None:
            raw = store.read_all(e)
        elif len(raw) != e.size:
            raise CorruptObject(f"file content {e.id.hex()} does not match its entry")
        yield e, raw
