"""``clone``: a new repository with ``origin`` set to a remote, its history fetched and its main
branch (or ``branch``) checked out. With ``only``, a partial clone: every commit, tree and
manifest, but only the data of matching files; the rest is fetched on demand
(:mod:`dsrepo.dvcs.promisor`).

Interrupted clones resume. ``.dsrepo/CLONING`` (URL, branch, patterns) is written before anything
else and removed last (:mod:`dsrepo.dvcs.opstate`). The same clone into a directory holding that
marker resumes: the repository is reopened, the fetch copies only the objects still missing, and
files already materialized are kept. Any other non-empty destination is refused.

A failed clone leaves nothing behind, except when it was interrupted (Ctrl-C, a lost connection,
a full disk: :data:`RESUMABLE`) after data arrived: that partial clone is kept for the resume. A
refused remote (corrupt or hostile objects) is removed: running it again would not help. A resumed clone that fails removes nothing (the
directory holds more than that run made). A killed clone leaves its marker anyway."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dsrepo.dvcs import opstate
from dsrepo.dvcs.errors import StateError, UnknownRevision, path_errors
from dsrepo.dvcs.lock import index_lock
from dsrepo.dvcs.materialize import populate
from dsrepo.dvcs.pathmatch import set_sparse_patterns
from dsrepo.dvcs.promisor import PROMISOR_KEY
from dsrepo.dvcs.refnames import HEADS, REMOTES
from dsrepo.dvcs.remote_config import add_remote, is_remote, normalize_url
from dsrepo.dvcs.upstream import set_upstream
from dsrepo.objects.errors import StorageUnavailable
from dsrepo.objects.transfer import DEFAULT_JOBS, Progress
from dsrepo.remotes.errors import BackendError
from dsrepo.remotes.urls import S3Options, parse_url

RESUMABLE = (KeyboardInterrupt, BackendError, OSError, StorageUnavailable)
"""Failures after which a partial clone is kept (interrupted, connection lost, disk full):
retrying the same clone may well succeed. Refusals (RemoteError, CorruptObject...) are not."""

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
    dsdir = target / opstate.DSDIR
    marker = opstate.clone_marker(normalize_url(url), branch, only)
    with path_errors(target, "destination"):
        resuming = target.exists() and any(target.iterdir())
    if resuming:
        found = opstate.read_clone_marker(dsdir)
        if found is None:
            raise StateError(f"destination {target} exists and is not empty")
        if found != marker:
            raise StateError(
                f"destination {target} holds an interrupted clone of {found.get('url')} with "
                "other options: run that clone again, or remove the directory"
            )
    created = not target.exists()
    try:
        if not resuming:
            with path_errors(target, "destination"):
                opstate.write_clone_marker(dsdir, marker)
        if (dsdir / "format").exists():
            repo = repo_class.open(target, search_parents=False)
        else:
            repo = repo_class.init(target, branch=branch or "main")
        _populate(repo, url, branch=branch, only=only, s3=s3, jobs=jobs, progress=progress)
        opstate.clear_clone_marker(dsdir)
        return repo
    except BaseException as exc:
        if resuming or (isinstance(exc, RESUMABLE) and _has_packs(dsdir)):
            raise  # keep what was fetched (and all a resumed clone found): the clone resumes
        if created:
            shutil.rmtree(target, ignore_errors=True)
        else:  # leave it empty (no half-made .dsrepo blocking a retry)
            for child in target.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise


def _has_packs(dsdir: Path) -> bool:
    try:
        return any((dsdir / "packs").iterdir())
    except OSError:
        return False


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
    if not is_remote(repo, "origin"):  # when resuming, the interrupted run configured it
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
    old = repo.refs.resolve(HEADS + chosen)  # set already when resuming
    if old != tip:
        repo.refs.update(HEADS + chosen, tip, old, who=who, message=f"clone: from {url}")
    set_upstream(repo, chosen, "origin")
    repo.refs.set_symbolic("HEAD", HEADS + chosen, who=who, message="clone")
    # HEAD already names the tip: materialize it over an empty index
    with index_lock(repo.dsdir).held(repo.lock_timeout):
        populate(repo, repo.worktree, tip, progress=progress)
