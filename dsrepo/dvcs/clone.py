"""``clone``: a new repository with ``origin`` set to a remote, its history fetched and its main
branch (or ``branch``) checked out. With ``only``, a partial clone: every commit, tree and
manifest, but only the data of matching files; the rest is fetched on demand
(:mod:`dsrepo.dvcs.promisor`). A failed clone leaves nothing behind."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dsrepo.dvcs.checkout import apply_files
from dsrepo.dvcs.errors import StateError, UnknownRevision
from dsrepo.dvcs.pathmatch import set_sparse_patterns
from dsrepo.dvcs.promisor import PROMISOR_KEY
from dsrepo.dvcs.refnames import HEADS, REMOTES
from dsrepo.dvcs.remote_config import add_remote, normalize_url
from dsrepo.dvcs.upstream import set_upstream
from dsrepo.objects.transfer import DEFAULT_JOBS, Progress
from dsrepo.remotes.urls import S3Options, parse_url

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository


def default_directory(url: str) -> str:
    """The folder ``clone URL`` creates: the last component of the path or prefix."""
    _scheme, location, prefix = parse_url(url)
    return Path(prefix or location).name or "dataset"


def clone(
    repo_class: type[Repository],
    url: str,
    directory: str | Path | None = None,
    *,
    branch: str | None = None,
    only: Sequence[str] | None = None,
    s3: S3Options | None = None,
    jobs: int = DEFAULT_JOBS,
    progress: Progress | None = None,
) -> Repository:
    target = Path(directory or default_directory(url)).absolute()
    if target.exists() and any(target.iterdir()):
        raise StateError(f"destination {target} exists and is not empty")
    created = not target.exists()
    try:
        repo = repo_class.init(target, branch=branch or "main")
        _populate(repo, url, branch=branch, only=only, s3=s3, jobs=jobs, progress=progress)
        return repo
    except BaseException:
        if created:
            shutil.rmtree(target, ignore_errors=True)
        else:  # it was empty: leave it empty (no half-made .dsrepo blocking a retry)
            for child in target.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise


def _populate(
    repo: Repository,
    url: str,
    *,
    branch: str | None,
    only: Sequence[str] | None,
    s3: S3Options | None,
    jobs: int,
    progress: Progress | None,
) -> None:
    url = normalize_url(url)
    s3 = s3 or S3Options()
    add_remote(
        repo, "origin", url, endpoint_url=s3.endpoint_url, region=s3.region, profile=s3.profile
    )
    if only:
        set_sparse_patterns(repo, only)
        assert repo.config.local is not None
        repo.config.local.set(PROMISOR_KEY, "origin")
    repo.fetch("origin", jobs=jobs, progress=progress)
    heads = repo.refs.list(f"{REMOTES}origin/")
    if not heads:
        return  # an empty remote: an empty clone
    chosen = branch or (
        "main" if f"{REMOTES}origin/main" in heads else next(iter(heads))[len(REMOTES) + 7 :]
    )
    tip = heads.get(f"{REMOTES}origin/{chosen}")
    if tip is None:
        raise UnknownRevision(f"the remote has no branch {chosen!r}")
    who = repo.reflog_identity()
    repo.refs.update(HEADS + chosen, tip, None, who=who, message=f"clone: from {url}")
    set_upstream(repo, chosen, "origin")
    repo.refs.set_symbolic("HEAD", HEADS + chosen, who=who, message="clone")
    # HEAD already names the tip: materialize it over an empty index
    apply_files(
        repo,
        repo.worktree,
        {},
        repo.flatten(repo.commit_tree(tip)),
        commit=tip,
        force=False,
        progress=progress,
    )
