"""``push``: send refs and the objects the remote lacks; refs move last, by compare-and-swap.

Objects reachable from the pushed tips and not from the remote's complete commits, minus what
the remote's pack indexes list, are copied (:func:`dsrepo.objects.transfer.copy_objects`:
large local packs wanted whole go as they are, the rest is packed anew) and flushed — every pack
and its index durable on the remote — before any ref moves. Each ref then moves by
compare-and-swap from the value read at the start, so a concurrent push makes this one lose
cleanly (fetch first) instead of overwriting it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dsrepo.dvcs.errors import (
    FetchFirst,
    NonFastForward,
    PushRejected,
    RefConflict,
    RemoteError,
    RemoteRefChanged,
    StateError,
    TagExists,
    UnknownRevision,
)
from dsrepo.dvcs.graph import is_ancestor
from dsrepo.dvcs.reachability import complete_commits, peel_tags, reachable_objects
from dsrepo.dvcs.refnames import HEADS, REMOTES, TAGS, check_refname, shorten
from dsrepo.dvcs.remote import Remote, TransferStats, open_remote, resolve_remote
from dsrepo.dvcs.remote_config import is_remote
from dsrepo.dvcs.upstream import default_remote, set_upstream
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.store import DEFAULT_PACK_TARGET
from dsrepo.objects.transfer import DEFAULT_JOBS, PUSH_POLICY, Progress, copy_objects
from dsrepo.remotes.errors import BackendError, KeyConflict

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository


class RefStatus(enum.StrEnum):
    PENDING = "pending"
    OK = "ok"
    UP_TO_DATE = "up-to-date"
    WOULD_UPDATE = "would update"
    """A dry run: the ref would move."""
    REJECTED = "rejected"


@dataclass
class RefUpdate:
    """One ref a push or fetch considered: from ``old`` to ``new`` (None: absent)."""

    ref: str
    old: ObjectId | None
    new: ObjectId | None
    status: RefStatus = RefStatus.PENDING
    reason: str = ""
    rejection: type[PushRejected] | None = None
    """For a rejected push: the error class naming why."""

    def reject(self, rejection: type[PushRejected], reason: str) -> None:
        self.status, self.rejection, self.reason = RefStatus.REJECTED, rejection, reason


@dataclass
class PushResult:
    remote: str
    updates: list[RefUpdate] = field(default_factory=list)
    stats: TransferStats = field(default_factory=TransferStats)
    upstream_set: str | None = None
    """The branch whose upstream this push set (a first push of a branch without one)."""

    @property
    def ok(self) -> bool:
        return all(u.status != RefStatus.REJECTED for u in self.updates)

    def error(self) -> PushRejected | None:
        """The error to raise for the rejected refs: the precise class when they were all
        rejected for one reason, else :class:`PushRejected`; None when nothing was rejected."""
        rejected = [u for u in self.updates if u.status == RefStatus.REJECTED]
        if not rejected:
            return None
        kinds = {u.rejection or PushRejected for u in rejected}
        cls = kinds.pop() if len(kinds) == 1 else PushRejected
        return cls(
            "some refs were rejected: "
            + ", ".join(f"{shorten(u.ref)} ({u.reason})" for u in rejected)
        )


def _push_specs(repo: Repository, refs: Sequence[str], tags: bool) -> list[tuple[str, str]]:
    """(local ref, remote ref) pairs."""
    specs: list[tuple[str, str]] = []
    if not refs:
        branch = repo.head_branch()
        if branch is None:
            raise StateError(
                "HEAD is detached: name the branch to push (dsrepo push REMOTE BRANCH)"
            )
        specs.append((branch, branch))
    for spec in refs:
        src, _, dst = spec.partition(":")
        for candidate in (src, HEADS + src, TAGS + src):
            if candidate.startswith("refs/") and repo.refs.resolve(candidate) is not None:
                full = candidate
                break
        else:
            raise UnknownRevision(f"no local branch or tag {src!r} to push")
        target = dst or full
        if not target.startswith("refs/"):
            target = (TAGS if full.startswith(TAGS) else HEADS) + target
        specs.append((full, check_refname(target)))
    if tags:
        specs.extend((r, r) for r in repo.refs.list(TAGS))
    return list(dict.fromkeys(specs))


def _would_be_created(repo: Repository, name_or_url: str) -> bool:
    """True when a push would create the remote: a directory that does not exist yet, or an
    empty location without a format marker. Anything else a push would refuse."""
    from pathlib import Path

    from dsrepo.remotes.urls import open_backend, parse_url

    _, url, s3 = resolve_remote(repo, name_or_url)
    scheme, location, _ = parse_url(url)
    if scheme == "file" and not Path(location).exists():
        return True
    backend = open_backend(url, s3=s3)
    try:
        return not backend.list("", limit=1)
    finally:
        backend.close()


def push(
    repo: Repository,
    remote_name: str | None = None,
    refs: Sequence[str] = (),
    *,
    tags: bool = False,
    force: bool = False,
    dry_run: bool = False,
    jobs: int = DEFAULT_JOBS,
    progress: Progress | None = None,
    pack_target: int = DEFAULT_PACK_TARGET,
    track: bool = True,
) -> PushResult:
    """Push ``refs`` (default: the current branch) to ``remote_name`` (default: the branch's
    upstream remote, else ``origin``; a URL or path also works). With ``track``, a first push of
    the current branch to a configured remote makes it the branch's upstream."""
    name = remote_name or default_remote(repo)
    try:
        remote = open_remote(repo, name, create=not dry_run, writers=jobs, pack_target=pack_target)
    except (RemoteError, BackendError):
        if not dry_run:
            raise
        if not _would_be_created(repo, name):
            # fail as the real push would: a non-empty location without a marker is refused
            # before anything is written there
            open_remote(repo, name, create=True).close()
            raise
        # a dry run against a location a real push would create: every ref would be new
        result = PushResult(name)
        for src, dst in _push_specs(repo, refs, tags):
            new = repo.refs.resolve(src)
            result.updates.append(RefUpdate(dst, None, new, RefStatus.WOULD_UPDATE))
        return result
    with remote:
        result = _push(
            repo,
            remote,
            refs,
            tags=tags,
            force=force,
            dry_run=dry_run,
            jobs=jobs,
            progress=progress,
        )
    if track:
        _track_first_push(repo, result)
    return result


def _check_updates(
    repo: Repository, remote_refs: dict[str, ObjectId], specs: list[tuple[str, str]], force: bool
) -> list[RefUpdate]:
    """What each pushed ref would do on the remote, with the fast-forward and tag rules."""
    updates = []
    for src, dst in specs:
        new = repo.refs.resolve(src)
        old = remote_refs.get(dst)
        u = RefUpdate(dst, old, new)
        updates.append(u)
        if old == new:
            u.status = RefStatus.UP_TO_DATE
        elif force:
            continue
        elif old is not None and dst.startswith(TAGS):
            u.reject(TagExists, "tag already exists on the remote (use --force)")
        elif old is not None and new is not None:
            _, new_commit = peel_tags(repo, new)
            if not repo.store.has(old):
                u.reject(FetchFirst, "the remote has commits you do not have (fetch first)")
            elif not is_ancestor(repo.parents_of, old.hex(), new_commit.hex()):
                u.reject(NonFastForward, "non-fast-forward (fetch and merge first, or --force)")
    return updates


def _push(
    repo: Repository,
    remote: Remote,
    refs: Sequence[str],
    *,
    tags: bool,
    force: bool,
    dry_run: bool,
    jobs: int,
    progress: Progress | None,
) -> PushResult:
    result = PushResult(remote.name)
    remote_refs = remote.read_refs()
    result.updates = _check_updates(repo, remote_refs, _push_specs(repo, refs, tags), force)
    todo = [u for u in result.updates if u.status == RefStatus.PENDING]
    if not todo:
        return result
    if dry_run:
        for u in todo:
            u.status = RefStatus.WOULD_UPDATE
        return result
    remote.check_conditional_writes()
    # what the remote may lack: objects reachable from the new tips, not below its ref tips
    stop = complete_commits(repo, remote_refs.values())
    wanted: list[ObjectId] = []
    for u in todo:
        assert u.new is not None
        tag_objs, commit = peel_tags(repo, u.new)
        wanted.extend(oid for oid, _ in tag_objs)
        meta, chunks = reachable_objects(repo, [commit], stop)
        wanted.extend(oid for oid, _ in meta)
        wanted.extend(chunks)
    copied = copy_objects(
        repo.store,
        remote.store,
        wanted,
        policy=PUSH_POLICY,
        jobs=jobs,
        progress=progress,
        where="the local repository",
    )
    # every object is durable on the remote: the refs may now name them
    who = repo.reflog_identity()
    tracking_refs = is_remote(repo, remote.name)
    for u in todo:
        try:
            remote.refs.update(u.ref, u.new, u.old, who=who, message="push")
            u.status = RefStatus.OK
        except RefConflict:
            u.reject(RemoteRefChanged, "the remote ref changed meanwhile (fetch first)")
        except KeyConflict as exc:
            u.reject(RemoteRefChanged, str(exc))
        if u.status == RefStatus.OK and u.ref.startswith(HEADS) and tracking_refs:
            tracking = f"{REMOTES}{remote.name}/{u.ref[len(HEADS) :]}"
            repo.refs.update(tracking, u.new, None, who=who, message="push", check_old=False)
    result.stats = remote.stats(copied)
    return result


def _track_first_push(repo: Repository, result: PushResult) -> None:
    """The current branch, pushed for the first time to a configured remote, tracks it."""
    branch = repo.head_branch()
    if branch is None or not is_remote(repo, result.remote):
        return
    short = shorten(branch)
    for u in result.updates:
        if (
            u.status == RefStatus.OK
            and u.ref == branch
            and repo.config.get(f"branch.{short}.remote") is None
        ):
            set_upstream(repo, short, result.remote)
            result.upstream_set = short
