"""Upstream branches: which remote-tracking branch a local branch follows, and how far apart
they are (``status``), kept apart from the transfer code so ``status`` need not load it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dsrepo.dvcs.graph import ahead_behind
from dsrepo.dvcs.refnames import HEADS, REMOTES

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository


def upstream_of(repo: Repository, branch: str | None) -> tuple[str, str] | None:
    """(remote name, remote-tracking ref) configured for a local branch."""
    if branch is None:
        return None
    short = branch[len(HEADS) :]
    remote = repo.config.get(f"branch.{short}.remote")
    merge = repo.config.get(f"branch.{short}.merge")
    if not remote or not merge:
        return None
    return remote, f"{REMOTES}{remote}/{merge.removeprefix(HEADS)}"


def default_remote(repo: Repository) -> str:
    """The remote a bare push/fetch talks to: the current branch's upstream, else ``origin``."""
    up = upstream_of(repo, repo.head_branch())
    return up[0] if up else "origin"


def tracking_status(repo: Repository) -> tuple[str | None, int, int, bool]:
    """(upstream name, commits ahead, commits behind, whether the upstream ref is gone)."""
    up = upstream_of(repo, repo.head_branch())
    head = repo.head_commit()
    if up is None or head is None:
        return None, 0, 0, False
    theirs = repo.refs.resolve(up[1])
    if theirs is None:
        return up[1][len(REMOTES) :], 0, 0, True
    ahead, behind = ahead_behind(repo.parents_of, head.hex(), theirs.hex())
    return up[1][len(REMOTES) :], ahead, behind, False


def set_upstream(repo: Repository, branch: str, remote: str) -> None:
    assert repo.config.local is not None
    repo.config.local.set(f"branch.{branch}.remote", remote)
    repo.config.local.set(f"branch.{branch}.merge", HEADS + branch)
