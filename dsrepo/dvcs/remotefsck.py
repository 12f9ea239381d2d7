"""``fsck --remote NAME [--read-data]``: check a remote where it lies, without cloning it.

1. The refs are read, then the pack indexes are listed (the fetch order: every pack a ref read
   here reaches is listed).
2. Every pack (:func:`dsrepo.objects.packscan.scan_packs`): its index is intact and every entry
   lies inside its pack file; with ``read_data`` every pack is read whole and every object
   re-hashed and decoded.
3. Every ref's closure (:class:`dsrepo.dvcs.integrity.Closure`, the walk fetch checks with):
   each object present, of the type and size its referrer says, within the path limits. Without
   ``read_data`` the metadata objects are read (and so verified) and chunks are checked
   against the indexes; with it, against what the pack scan found intact.

A collection may run meanwhile: packs it deletes are skipped, and reads of objects it moved
find them in their new pack (the store re-syncs its index cache on a miss).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from dsrepo.dvcs.fsck import FsckReport
from dsrepo.dvcs.integrity import CHUNK_BATCH, Closure
from dsrepo.dvcs.refnames import TAGS
from dsrepo.dvcs.remote import Remote, open_remote
from dsrepo.dvcs.remotegc import read_generation
from dsrepo.objects.packscan import scan_packs

if TYPE_CHECKING:
    from dsrepo.dvcs.bare import BareRepository
    from dsrepo.dvcs.repository import Repository

Progress = Callable[[int, int], None]


def check_remote(
    remote: BareRepository, *, read_data: bool = False, progress: Progress | None = None
) -> FsckReport:
    """Check ``remote`` (a remote's objects and refs; see the module docstring). A check that
    found problems while a collection deleted packs under it is run once more."""
    report, vanished = _check(remote, read_data, progress)
    if report.problems and vanished:
        report, _ = _check(remote, read_data, progress)
    return report


def _check(
    remote: BareRepository, read_data: bool, progress: Progress | None
) -> tuple[FsckReport, bool]:
    report = FsckReport()
    try:
        refs = remote.refs.list("refs/")
    except Exception as exc:  # a ref that cannot be read is a problem, not a crash
        report.problems.append(f"refs: {exc}")
        refs = {}
    remote.store.sync_index()  # after the refs
    scan = scan_packs(remote.store, read_data=read_data, progress=progress)
    report.problems.extend(scan.problems)
    report.packs, report.objects = scan.packs, scan.objects
    report.bytes_checked = scan.bytes_checked
    report.orphan_packs = scan.orphan_packs
    closure = Closure(
        remote.store,
        data=False,
        known=scan.present if read_data else None,
        skip=scan.corrupt,
        missing_ok=False,
        batch=CHUNK_BATCH,
    )
    for name, oid in refs.items():
        closure.add_root(name, oid, any_type=name.startswith(TAGS))
    closure.run()
    closure.check_chunks()
    report.problems.extend(closure.problems)
    report.reachable = len(closure.visited)
    try:
        read_generation(remote.backend)
    except Exception as exc:
        report.problems.append(str(exc))
    return report, bool(scan.vanished)


def fsck_remote(
    repo: Repository,
    name_or_url: str,
    *,
    read_data: bool = False,
    progress: Progress | None = None,
) -> FsckReport:
    """Check the remote ``name_or_url`` (a configured name, a URL or a path)."""
    remote: Remote = open_remote(repo, name_or_url)
    with remote:
        return check_remote(remote, read_data=read_data, progress=progress)
