"""Checks run before a checkout, merge, clone or ``checkout --into`` changes anything, so that a
refused version leaves the working copy (or the target directory) as it was: every name valid and
short enough for this filesystem, every manifest agreeing with its tree entry (content id, size),
every symlink target allowed (:func:`~dsrepo.dvcs.paths.check_link_target`), every chunk present
(fetched first from the promisor remote in a partial clone, :func:`prefetch`) and stored as file
data of the length its entry or manifest records. The one thing left to the write itself is the
whole-file hash of a multi-chunk file (its chunks are each verified on read, but only their
concatenation can be hashed to the content id): :class:`~dsrepo.dvcs.paths.SafeWriter` hashes the
bytes as they stream and refuses the file; the checkout then puts back what it had changed.

Deliberately small and independent of fsck's checks: it reads only what the write will need.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dsrepo.dvcs.errors import PathError
from dsrepo.dvcs.paths import (
    UnsafePath,
    check_link_target,
    validate_entry_name,
    validate_relpath,
)
from dsrepo.dvcs.promisor import ensure_present, promisor_remote
from dsrepo.dvcs.reachability import chunk_ids
from dsrepo.objects.errors import CorruptObject, FormatError, ObjectNotFound
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import ObjectType, TreeEntry

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository


def preflight(
    repo: Repository,
    root: Path,
    items: Sequence[tuple[str, TreeEntry]],
    *,
    allow_outside_links: bool = False,
    data: bool = True,
) -> None:
    """Check what can be checked before writing, so that a refusal changes nothing: names this
    filesystem can hold, manifests agreeing with their entries, symlink targets, every chunk
    present (fetched in a partial clone) as data of the recorded length. PathError (names, links),
    CorruptObject (kinds, sizes, manifests), ObjectNotFound. SafeWriter checks whole-file hashes.
    Without ``data``, the chunks of files are fetched but not looked up (symlink targets still
    are: they are read here): for a caller that removes what it wrote when a read refuses
    (:mod:`dsrepo.dvcs.materialize`); reading checks every chunk anyway."""
    try:
        name_max = os.pathconf(root, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    links: list[tuple[str, TreeEntry]] = []
    folder: str | None = None  # checked already (a folder's files come together)
    for p, e in items:
        parent, _, name = p.rpartition("/")
        names = (name,) if parent == folder and p[:1] not in ("", "/") else p.split("/")
        try:
            if len(names) == 1:
                validate_entry_name(name)
            else:
                validate_relpath(p)
        except UnsafePath:
            try:
                validate_relpath(p)  # its message names the whole path
            except UnsafePath as exc:
                raise PathError(str(exc)) from None
            raise
        if any(len(n.encode("utf-8", "surrogateescape")) > name_max for n in names):
            raise PathError(
                f"cannot write {p!r}: a name is longer than this filesystem allows ({name_max} bytes)"
            )
        folder = parent
        if e.kind == EntryKind.SYMLINK:
            links.append((p, e))
        elif e.manifest is not None:
            _manifest_chunks(repo, p, e)
    prefetch(repo, [e for _, e in items])
    if not data:
        items = links  # only the targets read below
    want: list[tuple[ObjectId, int, str]] = []
    for p, e in items:
        if e.manifest is None:
            want.append((e.id, e.size, p))
        else:
            want.extend((cid, n, p) for cid, n in _manifest_chunks(repo, p, e))
        if len(want) >= 10_000:
            _check_data(repo, want)
            want = []
    _check_data(repo, want)
    for (p, _e), (_, raw) in zip(links, repo.store.read_small([e for _, e in links]), strict=True):
        try:
            check_link_target(p, os.fsdecode(raw), allow_outside=allow_outside_links)
        except UnsafePath as exc:
            raise PathError(str(exc)) from None


def _manifest_chunks(repo: Repository, path: str, e: TreeEntry) -> tuple[tuple[ObjectId, int], ...]:
    assert e.manifest is not None
    try:
        m = repo.store.get_manifest(e.manifest)
    except FormatError as exc:
        raise CorruptObject(f"cannot write {path!r}: {exc}") from None
    if m.content_id != e.id or m.size != e.size:
        raise CorruptObject(
            f"cannot write {path!r}: its manifest {e.manifest.hex()} describes "
            f"{m.content_id.hex()} ({m.size} bytes), its tree entry {e.id.hex()} ({e.size} bytes)"
        )
    return m.chunks


def _check_data(repo: Repository, want: Sequence[tuple[ObjectId, int, str]]) -> None:
    store = repo.store
    locs = store.locate_many([oid for oid, _, _ in want])
    for oid, length, p in want:
        loc = locs.get(oid)
        if loc is not None:
            type_, size = loc.type, loc.raw_size
        elif store.has(oid):  # written but not flushed yet
            type_, size = store.object_type(oid), store.object_size(oid)
        else:
            raise ObjectNotFound(f"cannot write {p!r}: object {oid.hex()} is missing")
        if type_ != ObjectType.CHUNK:
            raise CorruptObject(
                f"cannot write {p!r}: its content {oid.hex()} is a {type_.label}, not file data"
            )
        if size != length:
            raise CorruptObject(
                f"cannot write {p!r}: chunk {oid.hex()} holds {size} bytes, "
                f"its entry or manifest says {length}"
            )


def prefetch(repo: Repository, entries: Sequence[TreeEntry]) -> None:
    """In a partial clone, fetch the chunks these entries need in one batch before writing."""
    if not promisor_remote(repo):
        return
    ensure_present(repo, chunk_ids(repo, entries))
