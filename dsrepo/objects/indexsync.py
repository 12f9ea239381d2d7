"""Keeping the location cache in step with the pack indexes, which are the truth.

- :func:`sync` (every open): packs whose ``.idx`` is gone are forgotten, new ones recorded.
- :func:`heal` (a lookup missed): ``sync``, then every pack with fewer cached rows than its index
  lists is re-derived from its ``.idx`` (rows deleted from the cache come back).
- :func:`refresh` (a read through a cached location failed verification): that one pack is
  re-derived from its ``.idx`` (offsets, lengths, types, flags corrected).
- :func:`rebuild` (the cache named a pack whose index does not list the object: the damage is
  not confined to one pack): everything is forgotten and recorded again from the ``.idx`` files.

Only if the object is still missing, or still fails verification, after this is it missing or
corrupt for real. None of these writes to the cache unless something differs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dsrepo.objects import layout
from dsrepo.objects.pack import decode_index
from dsrepo.remotes.errors import KeyNotFound

if TYPE_CHECKING:
    from dsrepo.objects.locindex import LocationIndex
    from dsrepo.remotes.base import Backend


def indexed_packs(backend: Backend) -> set[str]:
    """The packs the backend holds, complete: those whose ``.idx`` is listed."""
    present: set[str] = set()
    for info in backend.iter_keys(layout.PACKS_PREFIX):
        name = layout.pack_name_from_index_key(info.key)
        if name is not None:
            present.add(name)
    return present


def sync(backend: Backend, index: LocationIndex) -> None:
    """Make the cache list exactly the backend's indexed packs. If the cache lost its content
    meanwhile (damage found: ``generation`` changed), it is synced once more, from scratch."""
    for _ in range(2):
        generation = index.generation
        present = indexed_packs(backend)
        # Removals first: removing a pack also forgets packs whose objects it shadowed, which
        # the additions below then re-add.
        index.remove_packs(index.pack_names() - present)
        for name in sorted(present - index.pack_names()):
            try:
                pack_class, entries = decode_index(backend.get(layout.index_key(name)), name)
            except KeyNotFound:
                continue  # removed since the listing
            index.add_pack(name, pack_class, entries)
        if index.generation == generation:
            return


def heal(backend: Backend, index: LocationIndex) -> None:
    """After a miss: sync, then re-derive every pack that has fewer rows than its index."""
    sync(backend, index)
    for name in sorted(index.suspect_packs()):
        refresh(backend, index, name)


def rebuild(backend: Backend, index: LocationIndex) -> None:
    """Forget everything and record every indexed pack again."""
    index.clear()
    sync(backend, index)


def refresh(
    backend: Backend, index: LocationIndex, name: str, suspect: bytes | None = None
) -> None:
    """Re-derive pack ``name``'s rows from its ``.idx``; a pack that is gone is forgotten (and
    the objects it shadowed recorded again). ``suspect``: an id whose cached row named this pack
    and failed; it is dropped if the index does not list it."""
    try:
        data = backend.get(layout.index_key(name))
    except KeyNotFound:
        sync(backend, index)
        return
    pack_class, entries = decode_index(data, name)
    index.refresh_pack(name, pack_class, entries, suspect)
