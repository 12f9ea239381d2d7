"""The remote verbs of :class:`~dsrepo.dvcs.repository.Repository`, as a mixin that keeps that
module short: remotes in the configuration (add, remove, rename, set-url), ``push``, ``fetch`` and
``pull``. Each delegates to the module named after it, like every verb of the API."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

from dsrepo.dvcs.lock import holds_gc_lock, holds_index_lock
from dsrepo.gcpause import pausing

if TYPE_CHECKING:
    from dsrepo.dvcs.fetch import FetchResult
    from dsrepo.dvcs.fsck import FsckReport
    from dsrepo.dvcs.merge import Strategy
    from dsrepo.dvcs.merging import MergeOutcome
    from dsrepo.dvcs.push import PushResult
    from dsrepo.dvcs.remote_config import RemoteSpec
    from dsrepo.dvcs.remotegc import RemoteGcReport
    from dsrepo.dvcs.repository import Repository

Progress = Callable[[int, int], None]


class RemoteVerbs:
    """``Repository``'s remote verbs (``fetch`` holds the gc lock shared: it writes objects,
    then moves remote-tracking refs to them; ``pull`` also the index lock)."""

    dsdir: Path
    lock_timeout: float
    gc_lock_timeout: float | None

    def _repo(self) -> Repository:
        return cast("Repository", self)

    def remotes(self) -> list[RemoteSpec]:
        from dsrepo.dvcs.remote_config import list_remotes

        return list_remotes(self._repo())

    def remote_add(
        self,
        name: str,
        url: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
    ) -> RemoteSpec:
        """Add a remote: a directory path, ``file://`` URL or ``s3://BUCKET/PREFIX``."""
        from dsrepo.dvcs.remote_config import add_remote

        return add_remote(
            self._repo(), name, url, endpoint_url=endpoint_url, region=region, profile=profile
        )

    def remote_remove(self, name: str) -> None:
        """Remove a remote, its remote-tracking refs and the upstreams naming it."""
        from dsrepo.dvcs.remote_config import remove_remote

        remove_remote(self._repo(), name)

    def remote_rename(self, old: str, new: str) -> None:
        from dsrepo.dvcs.remote_config import rename_remote

        rename_remote(self._repo(), old, new)

    def remote_set_url(self, name: str, url: str) -> None:
        from dsrepo.dvcs.remote_config import set_url

        set_url(self._repo(), name, url)

    @pausing
    def push(
        self,
        remote: str | None = None,
        refs: Sequence[str] = (),
        *,
        tags: bool = False,
        force: bool = False,
        dry_run: bool = False,
        jobs: int = 8,
        progress: Progress | None = None,
        delete: Sequence[str] = (),
    ) -> PushResult:
        """Send ``refs`` (default: the current branch) and the objects ``remote`` lacks; refs
        move last, by compare-and-swap. Rejected refs are in the result
        (``result.error()`` is the exception to raise for them). ``delete`` (and a ref
        ``:NAME``) deletes those branches or tags on the remote."""
        from dsrepo.dvcs.push import push

        return push(
            self._repo(),
            remote,
            refs,
            tags=tags,
            force=force,
            dry_run=dry_run,
            jobs=jobs,
            progress=progress,
            delete=delete,
        )

    @pausing
    def gc_remote(
        self,
        remote: str,
        *,
        prune: str | float = "2.weeks",
        dry_run: bool = False,
        delete_delay: float | None = None,
        settle_seconds: float | None = None,
        lease_seconds: float | None = None,
    ) -> RemoteGcReport:
        """One run of the shared-remote collection (docs/gc.md): delete the packs doomed at
        least ``delete_delay`` seconds ago, then doom the garbage older than ``prune``."""
        from dsrepo.dvcs import remotegc

        return remotegc.gc_remote(
            self._repo(),
            remote,
            prune=prune,
            dry_run=dry_run,
            delete_delay=remotegc.DEFAULT_DELETE_DELAY if delete_delay is None else delete_delay,
            settle_seconds=(
                remotegc.DEFAULT_SETTLE_SECONDS if settle_seconds is None else settle_seconds
            ),
            lease_seconds=remotegc.DEFAULT_LEASE_SECONDS
            if lease_seconds is None
            else lease_seconds,
        )

    @pausing
    def fsck_remote(
        self, remote: str, *, read_data: bool = False, progress: Progress | None = None
    ) -> FsckReport:
        """Check a remote without cloning it: every pack index entry lies inside its pack and
        every ref's closure is present; ``read_data`` re-hashes every object."""
        from dsrepo.dvcs.remotefsck import fsck_remote

        return fsck_remote(self._repo(), remote, read_data=read_data, progress=progress)

    @holds_gc_lock
    @pausing
    def fetch(
        self,
        remote: str | None = None,
        *,
        prune: bool = False,
        jobs: int = 8,
        progress: Progress | None = None,
    ) -> FetchResult:
        from dsrepo.dvcs.fetch import fetch

        return fetch(self._repo(), remote, prune=prune, jobs=jobs, progress=progress)

    @holds_index_lock
    @pausing
    def pull(
        self,
        remote: str | None = None,
        branch: str | None = None,
        *,
        strategy: str | Strategy | None = None,
        progress: Progress | None = None,
    ) -> MergeOutcome:
        """Fetch, then fast-forward or merge (with merge's rules)."""
        from dsrepo.dvcs.merge import Strategy
        from dsrepo.dvcs.pull import pull

        strat = Strategy(strategy) if isinstance(strategy, str) else strategy
        return pull(self._repo(), remote, branch, strategy=strat, progress=progress)
