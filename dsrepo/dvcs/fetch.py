"""``fetch``: bring the remote's new history here and move remote-tracking refs.

Order matters, because pushers may be writing the remote meanwhile: the remote's refs are read
first, then its pack indexes (any pack a ref can reach was indexed before the ref moved, so it
is listed). The metadata the local repository lacks is copied first; the data chunks that the
new commits need (only the sparse patterns' files, in a partial clone) next; every object is
verified on arrival and flushed before any ref moves. What arrived is also checked along every
reference (types, sizes, path limits: :mod:`dsrepo.dvcs.integrity`) before any ref moves; a
remote that fails is called damaged, and what it sent stays unreferenced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dsrepo.dvcs.errors import RemoteError
from dsrepo.dvcs.graph import is_ancestor
from dsrepo.dvcs.integrity import Closure, check_closure, summary
from dsrepo.dvcs.pathmatch import match_only, sparse_patterns
from dsrepo.dvcs.push import RefStatus, RefUpdate
from dsrepo.dvcs.reachability import complete_commits
from dsrepo.dvcs.refnames import HEADS, NOTES, REMOTES, TAGS
from dsrepo.dvcs.remote import Remote, TransferStats, open_remote
from dsrepo.dvcs.remote_config import is_remote
from dsrepo.dvcs.upstream import default_remote
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.transfer import DEFAULT_JOBS, Progress, copy_metadata, copy_objects

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository


@dataclass
class FetchResult:
    remote: str
    updated: list[RefUpdate] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    stats: TransferStats = field(default_factory=TransferStats)


def fetch(
    repo: Repository,
    remote_name: str | None = None,
    *,
    prune: bool = False,
    jobs: int = DEFAULT_JOBS,
    only: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> FetchResult:
    """Fetch from ``remote_name`` (default: the upstream remote, else ``origin``; a URL or path
    also works: then only tags are stored, as there is no remote-tracking namespace)."""
    with open_remote(repo, remote_name or default_remote(repo)) as remote:
        return _fetch(repo, remote, prune=prune, jobs=jobs, only=only, progress=progress)


def receive_history(repo: Repository, remote: Remote, refs: dict[str, ObjectId]) -> None:
    """Copy the metadata the remote has and ``repo`` lacks. A ref naming an object the remote
    does not hold, or a data chunk, is damage, named as such."""
    copy_metadata(remote.store, repo.store, where=remote.where)
    if repo.store.missing(refs.values()):
        # not damage yet: list the remote's indexes once more before calling anything missing
        remote.store.sync_index()
        copy_metadata(remote.store, repo.store, where=remote.where)
    for ref, oid in refs.items():
        if not repo.store.has(oid):
            what = (
                f"{remote.store.object_type(oid).label} {oid.hex()}, not a commit"
                if remote.store.has(oid)
                else f"object {oid.hex()}, which the remote does not hold"
            )
            refuse(remote, [f"{ref}: names {what}"])


def check_received(
    repo: Repository,
    remote: Remote,
    refs: dict[str, ObjectId],
    *,
    want_data: Callable[[str], bool] | None = None,
    data: bool = True,
) -> Closure:
    """Check what the remote's ``refs`` lead to, as far as it is new here (below the local refs
    everything is complete and was checked when it came): types, sizes and path limits
    (:mod:`dsrepo.dvcs.integrity`), after the metadata is stored and before any data moves;
    chunks not here yet are checked against the remote's index, which is what
    ``copy_objects`` verifies each arriving chunk against. Raises RemoteError naming the first
    problem; returns the walk (``chunks``: the data to copy)."""
    stop = complete_commits(repo, repo.refs.list("refs/").values())
    closure = check_closure(
        repo.store, refs.items(), stop=stop, want_data=want_data, data=data, source=remote.store
    )
    refuse(remote, closure.problems)
    return closure


def refuse(remote: Remote, problems: list[str]) -> None:
    """Raise RemoteError for damage received from ``remote`` (no ref has moved yet)."""
    if problems:
        raise RemoteError(f"the remote {remote.url} is damaged: {summary(problems)}")


def _fetch(
    repo: Repository,
    remote: Remote,
    *,
    prune: bool,
    jobs: int,
    only: Sequence[str] | None,
    progress: Progress | None,
) -> FetchResult:
    result = FetchResult(remote.name)
    remote_refs = remote.read_refs((HEADS, TAGS, NOTES))
    patterns = list(only) if only else sparse_patterns(repo)
    want_data = match_only(patterns) if patterns else None
    receive_history(repo, remote, remote_refs)
    closure = check_received(repo, remote, remote_refs, want_data=want_data)
    copied = copy_objects(
        remote.store, repo.store, closure.chunks, jobs=jobs, progress=progress, where=remote.where
    )
    result.updated, result.pruned = _update_refs(repo, remote.name, remote_refs, prune)
    result.stats = remote.stats(copied)
    return result


def _update_refs(
    repo: Repository, name: str, remote_refs: dict[str, ObjectId], prune: bool
) -> tuple[list[RefUpdate], list[str]]:
    """Branches become remote-tracking refs (for a configured remote); new tags are stored, a
    tag that differs locally is kept and reported."""
    updated: list[RefUpdate] = []
    pruned: list[str] = []
    who = repo.reflog_identity()
    tracked = f"{REMOTES}{name}/"
    is_named = is_remote(repo, name)
    for ref, oid in remote_refs.items():
        if ref.startswith(HEADS) and is_named:
            local = tracked + ref[len(HEADS) :]
            old = repo.refs.resolve(local)
            if old != oid:
                repo.refs.update(local, oid, old, who=who, message=f"fetch {name}")
                updated.append(RefUpdate(local, old, oid, RefStatus.OK))
        elif ref.startswith(TAGS):
            old = repo.refs.resolve(ref)
            if old is None:
                repo.refs.update(ref, oid, None, who=who, message=f"fetch {name}")
                updated.append(RefUpdate(ref, None, oid, RefStatus.OK))
            elif old != oid:
                updated.append(
                    RefUpdate(ref, old, oid, RefStatus.REJECTED, "tag differs locally; kept yours")
                )
        elif ref.startswith(NOTES):  # notes (dsrepo notes): taken when they fast-forward
            old = repo.refs.resolve(ref)
            if old == oid or (
                old is not None and is_ancestor(repo.parents_of, oid.hex(), old.hex())
            ):
                continue
            if old is None or is_ancestor(repo.parents_of, old.hex(), oid.hex()):
                repo.refs.update(ref, oid, old, who=who, message=f"fetch {name}")
                updated.append(RefUpdate(ref, old, oid, RefStatus.OK))
            else:
                updated.append(
                    RefUpdate(ref, old, oid, RefStatus.REJECTED, "notes diverged; kept yours")
                )
    if prune and is_named:
        present = {tracked + r[len(HEADS) :] for r in remote_refs if r.startswith(HEADS)}
        for ref, oid in repo.refs.list(tracked).items():
            if ref not in present:
                repo.refs.update(ref, None, oid, who=who, message=f"fetch --prune {name}")
                pruned.append(ref)
    return updated, pruned
