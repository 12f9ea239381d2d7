"""Checking and counting a store's packs as they lie in the backend (``fsck``, ``count-objects``).

Unlike reads, which verify one object at a time and stop at the first bad byte, the check reads
every pack whole and reports every problem it finds: a pack without an index (an interrupted
write: harmless, left for gc), an index without its pack, records that disagree with the index,
and objects that do not decompress, hash to their id or decode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dsrepo.objects import layout
from dsrepo.objects.errors import CorruptObject, ObjectError
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.model import ObjectType
from dsrepo.objects.pack import (
    RECORD_HEADER_SIZE,
    IndexEntry,
    PackClass,
    check_pack_header,
    decode_index,
    record_payload,
    unindexed_spans,
)
from dsrepo.objects.store import ObjectStore


@dataclass(frozen=True)
class PackListing:
    """The packs a backend holds: the indexed ones, and the byte size of every pack file."""

    indexed: frozenset[str]
    pack_sizes: dict[str, int]

    @property
    def orphans(self) -> list[str]:
        """Packs without an index: interrupted writes, never read."""
        return sorted(set(self.pack_sizes) - self.indexed)


def list_packs(store: ObjectStore) -> PackListing:
    indexed: set[str] = set()
    sizes: dict[str, int] = {}
    for info in store.backend.iter_keys(layout.PACKS_PREFIX):
        name = layout.pack_name_from_index_key(info.key)
        if name is not None:
            indexed.add(name)
        elif (name := layout.pack_name_from_pack_key(info.key)) is not None:
            sizes[name] = info.size
    return PackListing(frozenset(indexed), sizes)


@dataclass
class PackCheck:
    packs: int = 0
    objects: int = 0
    bytes_checked: int = 0
    orphan_packs: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    present: dict[ObjectId, ObjectType] = field(default_factory=dict)
    """Every object found intact, with its type."""
    corrupt: set[ObjectId] = field(default_factory=set)


def check_packs(
    store: ObjectStore, progress: Callable[[int, int], None] | None = None
) -> PackCheck:
    """Read every indexed pack whole; verify it against its index and every object in it."""
    listing = list_packs(store)
    out = PackCheck(orphan_packs=listing.orphans)
    names = sorted(listing.indexed)
    for i, name in enumerate(names):
        out.packs += 1
        _check_pack(store, name, name in listing.pack_sizes, out)
        if progress:
            progress(i + 1, len(names))
    return out


def _check_pack(store: ObjectStore, name: str, has_pack: bool, out: PackCheck) -> None:
    """Every record is found through the pack's index, so one damaged record (even a header whose
    length field was hit) spoils only itself: each is reported with its offset, the rest checked."""
    try:
        pack_class, entries = decode_index(store.backend.get(layout.index_key(name)), name)
    except ObjectError as exc:
        out.problems.append(str(exc))
        return
    if not has_pack:
        out.problems.append(f"pack {name} is missing (its index exists)")
        return
    verify_records(store, name, pack_class, entries, store.read_range(name), out)


def verify_records(
    store: ObjectStore,
    name: str,
    pack_class: PackClass,
    entries: list[IndexEntry],
    data: bytes,
    out: PackCheck,
) -> None:
    """Check a whole pack's bytes against its index: the header, every record (found through
    the index, so one damaged record spoils only itself), and bytes no record covers."""
    out.bytes_checked += len(data)
    try:
        check_pack_header(data, name, pack_class)
    except ObjectError as exc:
        out.problems.append(str(exc))
    for e in sorted(entries, key=lambda e: e.offset):
        out.objects += 1
        try:
            stored = record_payload(data, name, e)
            at = e.offset - RECORD_HEADER_SIZE
            store.verify_stored(
                e.id, e.type, stored, e.flags, e.raw_size, f"pack {name} at offset {at}"
            )
        except CorruptObject as exc:
            out.corrupt.add(e.id)
            out.problems.append(str(exc))
        else:
            out.present[e.id] = e.type
    for at, length in unindexed_spans(data, entries):
        out.problems.append(
            f"pack {name}: damaged pack at offset {at}: {length} bytes belong to no indexed record"
        )


@dataclass(frozen=True)
class ObjectCounts:
    packs: int
    objects: int
    data_objects: int
    meta_objects: int
    pack_bytes: int
    orphan_packs: int


def count_objects(store: ObjectStore) -> ObjectCounts:
    listing = list_packs(store)
    data = store.index.count_objects(PackClass.DATA)
    meta = store.index.count_objects(PackClass.META)
    return ObjectCounts(
        packs=len(listing.indexed),
        objects=data + meta,
        data_objects=data,
        meta_objects=meta,
        pack_bytes=sum(
            size for name, size in listing.pack_sizes.items() if name in listing.indexed
        ),
        orphan_packs=len(listing.orphans),
    )
