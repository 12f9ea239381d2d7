"""``pull``: fetch from a configured remote, then merge its branch into the current one (a
fast-forward when possible; otherwise merge's rules: conflicts stop, nothing is lost)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dsrepo.dvcs.errors import RemoteNotFound, StateError, UnknownRevision
from dsrepo.dvcs.fetch import fetch
from dsrepo.dvcs.merge import Strategy
from dsrepo.dvcs.merging import MergeOutcome, merge
from dsrepo.dvcs.refnames import HEADS, REMOTES
from dsrepo.dvcs.remote_config import is_remote
from dsrepo.dvcs.upstream import upstream_of
from dsrepo.objects.transfer import Progress

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository


def pull(
    repo: Repository,
    remote_name: str | None = None,
    branch: str | None = None,
    *,
    strategy: Strategy | None = None,
    progress: Progress | None = None,
) -> MergeOutcome:
    up = upstream_of(repo, repo.head_branch())
    name = (
        remote_name or (up[0] if up else None) or ("origin" if is_remote(repo, "origin") else None)
    )
    if name is None:
        raise RemoteNotFound(
            "no remote to pull from: name one, or set an upstream by cloning or pushing"
        )
    if not is_remote(repo, name):
        raise RemoteNotFound(
            f"pull needs a configured remote, not {name!r}: add it with 'dsrepo remote add NAME "
            "URL' (fetch and push also accept a URL)"
        )
    fetch(repo, name, progress=progress)
    if branch:
        ref = f"{REMOTES}{name}/{branch}"
    elif up and up[0] == name:
        ref = up[1]
    else:
        current = repo.head_branch()
        if current is None:
            raise StateError("HEAD is detached: name the branch to pull")
        ref = f"{REMOTES}{name}/{current[len(HEADS) :]}"
    if repo.refs.resolve(ref) is None:
        raise UnknownRevision(
            f"the remote {name!r} has no branch {ref[len(REMOTES) + len(name) + 1 :]!r}"
        )
    return merge(repo, repo.worktree, [ref], strategy=strategy)
