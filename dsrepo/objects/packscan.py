"""Checking the packs of a store that others write and collect at the same time (``fsck --remote``).

For every indexed pack: its index decodes (and hashes to the pack's name), its pack file exists,
and every entry lies inside it (the record header after the pack header, the payload before the
end of the pack file as the listing sizes it). With ``read_data`` each pack is also read whole,
every record compared with its index entry and every object decompressed, re-hashed and
decoded (:mod:`dsrepo.objects.packcheck`'s checks).

A shared remote may be collected while it is checked: a pack whose index disappeared since the
listing was deleted by the collection (its live objects were copied first), not damaged, and is
skipped. Packs without an index are listed (an interrupted or ongoing write), not problems.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dsrepo.objects import layout
from dsrepo.objects.errors import ObjectError
from dsrepo.objects.pack import PACK_HEADER_SIZE, RECORD_HEADER_SIZE, decode_index
from dsrepo.objects.packcheck import PackCheck, verify_records
from dsrepo.objects.store import ObjectStore
from dsrepo.remotes.errors import KeyNotFound


@dataclass
class PackScan(PackCheck):
    """A remote's packs, checked without downloading them unless ``read_data``: ``present``
    holds every object whose entry (and with ``read_data``, whose bytes) checked out."""

    vanished: list[str] = field(default_factory=list)
    """Packs deleted while they were checked (a collection's): skipped."""


def scan_packs(
    store: ObjectStore,
    *,
    read_data: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> PackScan:
    """Check every indexed pack of ``store``'s backend (module docstring)."""
    backend = store.backend
    indexed: set[str] = set()
    sizes: dict[str, int] = {}
    for info in backend.iter_keys(layout.PACKS_PREFIX):
        if (name := layout.pack_name_from_index_key(info.key)) is not None:
            indexed.add(name)
        elif (name := layout.pack_name_from_pack_key(info.key)) is not None:
            sizes[name] = info.size
    out = PackScan(orphan_packs=sorted(set(sizes) - indexed))
    names = sorted(indexed)
    for i, name in enumerate(names):
        if not _scan(store, name, sizes.get(name), read_data, out):
            out.vanished.append(name)
        if progress:
            progress(i + 1, len(names))
    return out


def _gone(store: ObjectStore, name: str) -> bool:
    """Whether pack ``name``'s index is gone now (deleted by a collection)."""
    try:
        store.backend.stat(layout.index_key(name))
    except KeyNotFound:
        return True
    return False


def _scan(store: ObjectStore, name: str, size: int | None, read_data: bool, out: PackScan) -> bool:
    """Check one pack; False when it vanished meanwhile."""
    try:
        pack_class, entries = decode_index(store.backend.get(layout.index_key(name)), name)
    except KeyNotFound:
        return False
    except ObjectError as exc:
        out.packs += 1
        out.problems.append(str(exc))
        return True
    if size is None:
        try:
            size = store.backend.stat(layout.pack_key(name)).size  # written since the listing
        except KeyNotFound:
            if _gone(store, name):
                return False
            out.packs += 1
            out.problems.append(f"pack {name} is missing (its index exists)")
            return True
    if read_data:
        try:
            data = store.backend.get(layout.pack_key(name))
        except KeyNotFound:
            if _gone(store, name):
                return False
            out.packs += 1
            out.problems.append(f"pack {name} is missing (its index exists)")
            return True
        out.packs += 1
        verify_records(store, name, pack_class, entries, data, out)
        return True
    out.packs += 1
    for e in entries:
        out.objects += 1
        start = e.offset - RECORD_HEADER_SIZE
        if start < PACK_HEADER_SIZE or e.offset + e.stored_size > size:
            out.corrupt.add(e.id)
            out.problems.append(
                f"pack {name}: the index places object {e.id.hex()} at {start}..."
                f"{e.offset + e.stored_size}, outside the pack ({size} bytes)"
            )
        else:
            out.present[e.id] = e.type
    return True
