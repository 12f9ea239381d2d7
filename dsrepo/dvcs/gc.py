"""``gc``: remove what nothing refers to any more and merge small packs (docs/gc.md).

Three steps, each reusable over any object store (a local repository, a remote's
:class:`~dsrepo.dvcs.bare.BareRepository`):

- **roots** (:func:`local_roots`): refs (all of ``refs/``: branches, tags, remote-tracking,
  ``refs/cache`` of the get cache, notes), HEAD, every id in a reflog, the staging index (each
  entry's chunk or manifest, and its cache-tree), MERGE_HEAD, ORIG_HEAD and the target of an
  interrupted operation (``.dsrepo/OPERATION``). A remote's roots are its refs.
- **mark** (:func:`mark`): everything reachable from the roots, walked with the checking walk
  of :mod:`dsrepo.dvcs.integrity` (tags, commits and their parents, trees and their shards,
  manifests, chunks). Damage stops gc: what a damaged tree names cannot be known, so nothing
  may be deleted (run ``fsck``). Chunks a partial clone leaves on its remote are not needed.
- **sweep** (:func:`collect`): with the live set and the grace period, the objects layer
  (:mod:`dsrepo.objects.repack`) plans and carries out the repack and the deletions, ages taken
  from the backend's clock.

Locally, :func:`gc` runs all three holding ``.dsrepo/gc.lock`` exclusively: every command that
writes objects holds it shared from its first object write until its refs moved, so nothing is
about to be referenced while gc decides what is garbage (:mod:`dsrepo.dvcs.lock`).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dsrepo.dvcs import opstate, reflog
from dsrepo.dvcs.errors import IntegrityError
from dsrepo.dvcs.integrity import CHUNK_BATCH, Closure, summary
from dsrepo.dvcs.lock import gc_lock
from dsrepo.dvcs.mergestate import MERGE_HEAD, merge_heads_in_progress
from dsrepo.dvcs.refs import HEAD
from dsrepo.dvcs.stagingindex import StagingIndex, parent_dirs
from dsrepo.objects.ids import ObjectId, from_hex
from dsrepo.objects.repack import backend_clock, execute, pack_totals, plan, take_inventory
from dsrepo.objects.store import ObjectStore

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository

DEFAULT_PRUNE = "2.weeks"
"""The grace period: unreachable objects in packs younger than this stay (git's default)."""
ORIG_HEAD = "ORIG_HEAD"

Root = tuple[str, ObjectId]
"""(where it was found, for messages; an object id)."""
Progress = Callable[[int, int], None]
_HEX_ID = re.compile(r"\b[0-9a-f]{64}\b")


@dataclass
class GcReport:
    """What a gc removed and wrote (for ``dry_run``: what it would). Packs are indexed packs;
    bytes are those of every pack file and pack index, orphans included."""

    dry_run: bool = False
    aggressive: bool = False
    prune_seconds: float = 0.0
    """The grace period (``math.inf``: nothing unreachable is old enough)."""
    objects_before: int = 0
    objects_after: int = 0
    reachable: int = 0
    objects_removed: int = 0
    """Unreachable objects removed (their packs were older than the grace period)."""
    unreachable_kept: int = 0
    """Unreachable objects kept, in packs within the grace period."""
    packs_before: int = 0
    packs_after: int = 0
    packs_written: int = 0
    packs_removed: list[str] = field(default_factory=list)
    """Indexed packs deleted (their live objects copied to the new packs first)."""
    orphans_removed: list[str] = field(default_factory=list)
    """Packs without an index (a killed writer's) deleted."""
    bytes_before: int = 0
    bytes_after: int = 0
    seconds: float = 0.0

    @property
    def bytes_reclaimed(self) -> int:
        return self.bytes_before - self.bytes_after


# ---------------------------------------------------------------- roots


def local_roots(repo: Repository) -> list[Root]:
    """Everything that keeps objects alive in a local repository (module docstring). A ref,
    HEAD or MERGE_HEAD that cannot be read raises: gc never guesses what it meant."""
    out: list[Root] = list(repo.refs.list("refs/").items())
    head = repo.refs.read(HEAD)
    if head is not None and head.target is not None:
        out.append((HEAD, head.target))
    out.extend(reflog.roots(repo.refs))
    out.extend((MERGE_HEAD, oid) for oid in merge_heads_in_progress(repo))
    for name in (ORIG_HEAD, opstate.OPERATION):
        try:
            text = (repo.dsdir / name).read_text("utf-8", errors="replace")
        except FileNotFoundError:
            continue
        out.extend((name, from_hex(h)) for h in _HEX_ID.findall(text.lower()))
    index = StagingIndex(repo.dsdir / "index")
    # the tree cache: a commit reuses these trees without writing them again (absent: rebuilt)
    cached = {d: tid for d, (tid, _) in index.trees.items()}
    absent = repo.store.missing(cached.values())
    covered = {d for d, tid in cached.items() if tid not in absent}
    out.extend(("index tree cache", cached[d]) for d in sorted(covered))
    # A staged entry under a folder whose cached tree is here is an entry of that tree (the
    # cache is dropped above any change): reached through it. After a commit the root's tree
    # is cached and no entry is a root of its own (a million roots cost ~500 MB).
    if "" not in covered:
        cols = index.columns()
        staged = []
        for i, p in enumerate(cols.paths):
            if any(d in covered for d in parent_dirs(p)):
                continue
            m = cols.manifests.get(p)
            if m is not None:
                out.append((f"index entry {p!r}", m))
            else:
                staged.append(cols.content_id(i))
        absent = repo.store.missing(staged)  # in a partial clone: nothing to keep then
        out.extend(("index", oid) for oid in staged if oid not in absent)
    return out


# ---------------------------------------------------------------- mark


def mark(store: ObjectStore, roots: Iterable[Root]) -> set[ObjectId]:
    """Every object reachable from ``roots`` (which may name any type of object). Raises
    IntegrityError when the walk meets damage (a missing or corrupt object, a reference that
    does not match): then nothing may be deleted."""
    closure = Closure(store, data=False, missing_ok=True, batch=CHUNK_BATCH)
    for where, oid in roots:
        closure.add_root(where, oid, any_type=True)
    closure.run()
    closure.check_chunks()
    if closure.problems:
        raise IntegrityError(
            f"gc stopped, nothing was removed: the repository is damaged "
            f"({summary(closure.problems)}); run 'dsrepo fsck'"
        )
    return closure.visited


# ---------------------------------------------------------------- sweep


def collect(
    store: ObjectStore,
    roots: Iterable[Root],
    *,
    prune: str | float = DEFAULT_PRUNE,
    dry_run: bool = False,
    aggressive: bool = False,
    progress: Progress | None = None,
) -> GcReport:
    """Mark from ``roots``, then repack and delete in ``store``'s backend (the caller excludes
    concurrent writers). ``prune``: the grace period (``"now"``: none; ``"never"``: nothing
    unreachable is removed, packs are still merged)."""
    start = time.monotonic()
    grace = reflog.parse_age(prune)
    report = GcReport(dry_run=dry_run, aggressive=aggressive, prune_seconds=grace)
    clock = backend_clock(store.backend)  # before listing: what is listed is older
    if math.isinf(grace):
        cutoff: float | None = None
    elif clock is None:
        cutoff = math.inf if grace == 0 else None  # no clock: only "now" can say what is old
    else:
        cutoff = clock - grace
    inv = take_inventory(store.backend)
    live = mark(store, roots)
    todo = plan(inv, live, cutoff, aggressive=aggressive)
    report.objects_before, report.reachable = inv.counts(live)
    del live  # ~100 MB at a million objects: the plan says what to copy, the copy needs no more
    report.objects_removed = len(todo.garbage)
    report.objects_after = report.objects_before - report.objects_removed
    report.unreachable_kept = len(todo.unreachable_kept - todo.garbage)
    report.packs_before = len(inv.packs)
    report.bytes_before = inv.total_bytes
    report.packs_removed = list(todo.rewrite)
    report.orphans_removed = list(todo.orphans)
    if dry_run:
        report.packs_written = todo.packs_to_write()
        report.packs_after = report.packs_before - len(todo.rewrite) + report.packs_written
        report.bytes_after = report.bytes_before - todo.bytes_deleted(inv) + todo.bytes_to_write()
    else:
        if not todo.empty:
            done = execute(store, inv, todo, progress=progress)
            report.packs_written = len(done.packs_written)
            report.packs_removed = done.packs_deleted
            report.orphans_removed = done.orphans_deleted
        report.packs_after, report.bytes_after = pack_totals(store.backend)
    report.seconds = time.monotonic() - start
    return report


def gc(
    repo: Repository,
    *,
    prune: str | float = DEFAULT_PRUNE,
    dry_run: bool = False,
    aggressive: bool = False,
    progress: Progress | None = None,
) -> GcReport:
    """gc of a local repository, holding the gc lock exclusively (shared for ``dry_run``,
    which deletes nothing): writers wait for it, and it waits for running writers."""
    lock = gc_lock(repo.dsdir)
    held = lock.shared if dry_run else lock.exclusive
    with held(repo.gc_lock_timeout):
        return collect(
            repo.store,
            local_roots(repo),
            prune=prune,
            dry_run=dry_run,
            aggressive=aggressive,
            progress=progress,
        )
