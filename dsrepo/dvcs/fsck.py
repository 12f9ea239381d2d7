"""``fsck`` and ``count-objects``: verify every stored byte and every reference.

fsck re-reads each pack whole (:mod:`dsrepo.objects.packcheck`: every object re-hashed and
decoded, every record compared with the pack's index), then walks everything reachable from refs,
reflogs and an in-progress merge to check that it exists and is what its referrer says: type,
size and path limits, the same checks fetch applies on receipt (:mod:`dsrepo.dvcs.integrity`).
Each problem is one line naming the object, pack or ref.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dsrepo.dvcs.errors import StateError
from dsrepo.dvcs.integrity import CHUNK_BATCH, Closure
from dsrepo.dvcs.mergestate import MERGE_HEAD, merge_heads_in_progress
from dsrepo.dvcs.promisor import promisor_remote
from dsrepo.dvcs.refnames import TAGS
from dsrepo.objects.errors import InvalidId
from dsrepo.objects.ids import ObjectId, from_hex
from dsrepo.objects.model import ObjectType
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
    """Everything that keeps objects alive: refs, HEAD, reflog entries, an in-progress merge.
    What cannot be read (a garbage ref or MERGE_HEAD line) is a problem in ``report``."""
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
    out.extend((MERGE_HEAD, oid) for oid in _merge_heads(repo, report))
    return out


def _merge_heads(repo: Repository, report: FsckReport | None) -> list[ObjectId]:
    """The ids MERGE_HEAD lists; each line that is not one is a problem, not a crash."""
    try:
        return merge_heads_in_progress(repo)
    except (StateError, OSError):
        pass
    out: list[ObjectId] = []
    try:
        text = (repo.dsdir / MERGE_HEAD).read_bytes().decode("utf-8", "replace")
    except OSError as exc:
        if report is not None:
            report.problems.append(f"{MERGE_HEAD}: cannot be read ({exc.strerror})")
        return out
    for number, line in enumerate(text.splitlines(), 1):
        try:
            if line.strip():
                out.append(from_hex(line.strip()))
        except InvalidId:
            if report is not None:
                report.problems.append(
                    f"{MERGE_HEAD} line {number}: {line.strip()[:80]!r} is not an object id"
                )
    return out


def _may_name_any(where: str) -> bool:
    """Tags (and their reflogs) may name any object (``tag NAME REV^{tree}``); every other root
    must lead to a commit."""
    return where.removeprefix("reflog ").startswith(TAGS)


def _check_reachable(
    repo: Repository,
    present: dict[ObjectId, ObjectType],
    corrupt: set[ObjectId],
    report: FsckReport,
) -> None:
    """Walk from every root with the receiving checks (:mod:`dsrepo.dvcs.integrity`): each
    reference must name an object of the type and size it says, within the path limits."""
    partial = promisor_remote(repo) is not None
    closure = Closure(
        repo.store, data=False, known=present, skip=corrupt, missing_ok=partial, batch=CHUNK_BATCH
    )
    for where, oid in roots(repo, report):
        closure.add_root(where, oid, any_type=_may_name_any(where))
    closure.run()
    closure.check_chunks()
    report.problems.extend(closure.problems)
    report.promised = closure.promised
    report.reachable = len(closure.visited)


def count_objects(repo: Repository) -> ObjectCounts:
    return count_objects_in(repo.store)
