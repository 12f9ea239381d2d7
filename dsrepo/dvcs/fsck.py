"""``fsck`` and ``count-objects``: verify every stored byte and every reference.

fsck re-reads each pack whole (:mod:`dsrepo.objects.packcheck`: every object re-hashed and
decoded, every record compared with the pack's index), then walks everything reachable from refs,
reflogs and an in-progress merge to check that it exists. Each problem is one line naming the
object, pack or ref.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dsrepo.dvcs.mergestate import merge_heads_in_progress
from dsrepo.dvcs.promisor import promisor_remote
from dsrepo.objects.errors import ObjectError
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.model import ObjectType, iter_ids
from dsrepo.objects.packcheck import ObjectCounts, check_packs
from dsrepo.objects.packcheck import count_objects as count_objects_in

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository


@dataclass
class FsckReport:
    problems: list[str] = field(default_factory=list)
    packs: int = 0
    objects: int = 0
    reachable: int = 0
    bytes_checked: int = 0
    orphan_packs: list[str] = field(default_factory=list)
    promised: int = 0
    """Data chunks a partial clone leaves on its promisor remote (fetched on demand)."""

    @property
    def ok(self) -> bool:
        return not self.problems


def fsck(repo: Repository, progress: Callable[[int, int], None] | None = None) -> FsckReport:
    packs = check_packs(repo.store, progress)
    report = FsckReport(
        problems=packs.problems,
        packs=packs.packs,
        objects=packs.objects,
        bytes_checked=packs.bytes_checked,
        orphan_packs=packs.orphan_packs,
    )
    _check_reachable(repo, packs.present, packs.corrupt, report)
    return report


def roots(repo: Repository, report: FsckReport | None = None) -> list[tuple[str, ObjectId]]:
    """Everything that keeps objects alive: refs, HEAD, reflog entries, an in-progress merge."""
    out: list[tuple[str, ObjectId]] = []
    try:
        for name, oid in repo.refs.list("refs/").items():
            out.append((name, oid))
    except Exception as exc:
        if report is not None:
            report.problems.append(f"refs: {exc}")
    try:
        head = repo.refs.resolve("HEAD")
        if head is not None:
            out.append(("HEAD", head))
    except Exception as exc:
        if report is not None:
            report.problems.append(f"HEAD: {exc}")
    for name in repo.refs.reflog_names():
        for entry in repo.refs.reflog(name):
            for logged in (entry.old, entry.new):
                if logged is not None:
                    out.append((f"reflog {name}", logged))
    for oid in merge_heads_in_progress(repo):
        out.append(("MERGE_HEAD", oid))
    return out


def _check_reachable(
    repo: Repository,
    present: dict[ObjectId, ObjectType],
    corrupt: set[ObjectId],
    report: FsckReport,
) -> None:
    store = repo.store
    partial = promisor_remote(repo) is not None
    seen: set[ObjectId] = set()
    stack: list[tuple[ObjectId, str, ObjectType | None]] = [
        (oid, where, None) for where, oid in roots(repo, report)
    ]
    while stack:
        oid, where, expected = stack.pop()
        if oid in seen:
            continue
        seen.add(oid)
        t = present.get(oid)
        if t is None:
            if oid in corrupt:
                continue  # reported once, as corrupt
            if partial and expected == ObjectType.CHUNK:
                report.promised += 1
                continue
            report.problems.append(f"missing object {oid.hex()} (referenced from {where})")
            continue
        if t == ObjectType.CHUNK:
            continue
        try:
            obj = store.get(oid)
        except ObjectError:
            continue  # already reported by the pack pass
        label = f"{t.label} {oid.hex()[:12]}"
        stack.extend((child, label, child_type) for child, child_type in iter_ids(obj))
    report.reachable = len(seen)


def count_objects(repo: Repository) -> ObjectCounts:
    return count_objects_in(repo.store)
