"""``push``: send refs and the objects the remote lacks; refs move last, by compare-and-swap.

Objects reachable from the pushed tips and not from the remote's complete commits, minus what
the remote's pack indexes list, are copied (:func:`dsrepo.objects.transfer.copy_objects`:
large local packs wanted whole go as they are, the rest is packed anew) and flushed — every pack
and its index durable on the remote — before any ref moves. Each ref then moves by
compare-and-swap from the value read at the start, so a concurrent push makes this one lose
cleanly (fetch first) instead of overwriting it. ``push --delete REF`` and ``push REMOTE :REF``
delete remote refs (by compare-and-swap too).

A remote may be garbage-collected while we push (docs/gc.md, :mod:`dsrepo.dvcs.remotegc`). The
push reads ``gc/generation`` before the refs and indexes, and never relies on a doomed pack: what
lives only in one is sent again. Objects under the remote's refs are relied on only when the
record is *settled* (then no ref reaches a doomed-only object); otherwise the whole closure of
the pushed tips is checked. Right before the first ref moves, the record is read again: if its
counter moved, the packs are listed again and whatever now lives only in a doomed pack is sent
again; it is read once more whenever half the collector's settle time passed since the last
read, so a collection's re-mark sees every ref this push moves.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dsrepo.dvcs.commits import immutable_tag
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
from dsrepo.dvcs.remotegc import Generation, read_generation
from dsrepo.dvcs.upstream import default_remote, set_upstream
from dsrepo.objects.ids import IdArray, ObjectId
from dsrepo.objects.store import DEFAULT_PACK_TARGET
from dsrepo.objects.transfer import (
    DEFAULT_JOBS,
    PUSH_POLICY,
    CopyStats,
    Located,
    Progress,
    copy_objects,
)
from dsrepo.remotes.errors import BackendError, KeyConflict

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository


CLOCK: Callable[[], float] = time.monotonic
"""The pusher's own clock (elapsed time since it read the generation record); tests replace it."""
SAFE_SLICE = 65_536
"""Objects whose place on the remote is checked at a time (after a collection doomed packs)."""
MAX_SEND_ROUNDS = 10
"""Times objects are sent again because a collection doomed packs meanwhile, before giving up."""


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


Spec = tuple[str | None, str]
"""(local ref, remote ref); no local ref: delete the remote ref (its name as the user gave it)."""


def _push_specs(
    repo: Repository, refs: Sequence[str], tags: bool, delete: Sequence[str] = ()
) -> list[Spec]:
    """(local ref, remote ref) pairs; ``:REF`` and ``delete`` name remote refs to delete."""
    specs: list[Spec] = []
    if not refs and not delete:
        branch = repo.head_branch()
        if branch is None:
            raise StateError(
                "HEAD is detached: name the branch to push (dsrepo push REMOTE BRANCH)"
            )
        specs.append((branch, branch))
    for spec in refs:
        src, _, dst = spec.partition(":")
        if not src:
            if not dst:
                raise UnknownRevision("':' names no ref (':REF' deletes REF on the remote)")
            specs.append((None, dst))
            continue
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
    specs.extend((None, name) for name in delete)
    if tags:
        specs.extend((r, r) for r in repo.refs.list(TAGS))
    return list(dict.fromkeys(specs))


def _remote_ref(name: str, remote_refs: dict[str, ObjectId], remote: str) -> str:
    """The remote ref a deletion names: a full name, else a branch, else a tag."""
    candidates = [name] if name.startswith("refs/") else [HEADS + name, TAGS + name]
    for candidate in candidates:
        if candidate in remote_refs:
            return check_refname(candidate)
    raise UnknownRevision(f"cannot delete {name!r}: {remote} has no such branch or tag")


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
    delete: Sequence[str] = (),
) -> PushResult:
    """Push ``refs`` (default: the current branch, unless ``delete`` is given) to
    ``remote_name`` (default: the branch's upstream remote, else ``origin``; a URL or path also
    works). A ref ``:NAME``, and each name in ``delete``, deletes that branch or tag on the
    remote. With ``track``, a first push of the current branch to a configured remote makes it
    the branch's upstream."""
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
        for src, dst in _push_specs(repo, refs, tags, delete):
            if src is None:
                raise UnknownRevision(
                    f"cannot delete {dst!r}: {name} has no such branch or tag"
                ) from None
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
            delete=delete,
        )
    if track:
        _track_first_push(repo, result)
    return result


def _check_updates(
    repo: Repository, remote_refs: dict[str, ObjectId], specs: list[Spec], force: bool
) -> list[RefUpdate]:
    """What each pushed ref would do on the remote, with the fast-forward and tag rules."""
    updates = []
    for src, dst in specs:
        new = None if src is None else repo.refs.resolve(src)
        old = remote_refs.get(dst)
        u = RefUpdate(dst, old, new)
        updates.append(u)
        if old == new:
            u.status = RefStatus.UP_TO_DATE
        elif old is not None and dst.startswith(TAGS) and immutable_tag(repo, dst[len(TAGS) :]):
            u.reject(TagExists, "published tag (tag.immutable): never moved nor deleted")
        elif force or new is None:
            continue  # a deletion needs no rule: the user named the remote ref
        elif old is not None and dst.startswith(TAGS):
            u.reject(TagExists, "tag already exists on the remote (use --force)")
        elif old is not None:
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
    delete: Sequence[str] = (),
) -> PushResult:
    result = PushResult(remote.name)
    read_at = CLOCK()
    gen = read_generation(remote.backend)  # before the refs and indexes (docs/gc.md)
    remote_refs = remote.read_refs(exclude=gen.doomed)
    specs = [
        (src, dst if src is not None else _remote_ref(dst, remote_refs, remote.name))
        for src, dst in _push_specs(repo, refs, tags, delete)
    ]
    result.updates = _check_updates(repo, remote_refs, specs, force)
    todo = [u for u in result.updates if u.status == RefStatus.PENDING]
    if not todo:
        return result
    if dry_run:
        for u in todo:
            u.status = RefStatus.WOULD_UPDATE
        return result
    remote.check_conditional_writes()
    sender = _Sender(repo, remote, gen, read_at, jobs, progress)
    if any(u.new is not None for u in todo):
        sender.send(todo, remote_refs)
    # every object is durable on the remote, in packs no collection has doomed: refs may move
    who = repo.reflog_identity()
    tracking_refs = is_remote(repo, remote.name)
    pending = list(todo)
    while pending:
        if pending[0].new is not None and not sender.still_valid():
            sender.send(pending, remote.read_refs(exclude=sender.gen.doomed))
            continue
        u = pending.pop(0)
        try:
            remote.refs.update(u.ref, u.new, u.old, who=who, message="push")
            u.status = RefStatus.OK
        except RefConflict:
            u.reject(RemoteRefChanged, "the remote ref changed meanwhile (fetch first)")
        except KeyConflict as exc:
            u.reject(RemoteRefChanged, str(exc))
        if u.status == RefStatus.OK and u.ref.startswith(HEADS) and tracking_refs:
            tracking = f"{REMOTES}{remote.name}/{u.ref[len(HEADS) :]}"
            if u.new is not None:
                repo.refs.update(tracking, u.new, None, who=who, message="push", check_old=False)
            elif repo.refs.resolve(tracking) is not None:
                repo.refs.update(tracking, None, None, who=who, message="push", check_old=False)
    result.stats = remote.stats(sender.copied)
    return result


class _Sender:
    """Sends what the pushed refs need, never relying on a doomed pack, and says whether that
    still holds (the generation record is read again; see the module docstring)."""

    def __init__(
        self,
        repo: Repository,
        remote: Remote,
        gen: Generation,
        read_at: float,
        jobs: int,
        progress: Progress | None,
    ) -> None:
        self.repo, self.remote, self.gen, self.read_at = repo, remote, gen, read_at
        self.jobs, self.progress = jobs, progress
        self.copied = CopyStats()
        self.rounds = 0
        self.distrust: set[str] = set()
        """Packs whose keys this push found already there, in a round the collector's counter
        then moved: a collection may have been deleting them (their objects are sent again)."""

    def send(self, todo: list[RefUpdate], remote_refs: dict[str, ObjectId]) -> None:
        """Copy what ``todo``'s new tips reach (``remote_refs``: read after the record), then
        read the record again; repeat until no collection doomed anything meanwhile."""
        while True:
            self.rounds += 1
            if self.rounds > MAX_SEND_ROUNDS:
                raise RemoteError(
                    f"{self.remote.url} is being garbage-collected and kept dooming what this "
                    "push sent; try again"
                )
            relied = self._copy(todo, remote_refs)
            if self._advance(self._read()) and self._safe(relied):
                return
            remote_refs = self.remote.read_refs(exclude=self.gen.doomed)

    def _copy(
        self, todo: list[RefUpdate], remote_refs: dict[str, ObjectId]
    ) -> tuple[IdArray, Located]:
        repo = self.repo
        # what the remote may lack: objects reachable from the new tips, not below its ref tips
        # (only while no ref can reach a doomed-only object: a settled record)
        stop = complete_commits(repo, remote_refs.values()) if self.gen.settled else set()
        meta, located = self._wanted(todo, stop)
        copied = copy_objects(
            repo.store,
            self.remote.store,
            meta,
            policy=PUSH_POLICY,
            jobs=self.jobs,
            progress=self.progress,
            where="the local repository",
            avoid_packs=self._avoid,
            located=located,
        )
        self.copied.objects += copied.objects
        self.copied.bytes += copied.bytes
        self.copied.packs += copied.packs
        self.copied.found.extend(copied.found)
        return meta, located

    def _wanted(self, todo: list[RefUpdate], stop: set[str]) -> tuple[IdArray, Located]:
        """What ``todo``'s new tips reach without passing ``stop``: the ids of the tags,
        commits, trees, manifests and of the chunks absent here (a partial clone), and the
        other chunks as the walk located them (packed, ~58 bytes each: the copy neither looks
        them up again nor holds a million ids as bytes)."""
        meta = IdArray()
        located = Located()
        for u in todo:
            if u.new is None:
                continue
            tag_objs, commit = peel_tags(self.repo, u.new)
            meta.extend(oid for oid, _ in tag_objs)
            # data=False: the chunks are checked and located, not listed again as ids; those
            # a partial clone lacks join the ids: the copy fails if the remote lacks them too
            objs, _ = reachable_objects(
                self.repo, [commit], stop, data=False, located=located, absent=meta
            )
            meta.extend(oid for oid, _ in objs)
        return meta, located

    def _read(self) -> Generation:
        sent = CLOCK()  # the answer is at least this recent: elapsed time is counted from here
        gen = read_generation(self.remote.backend)
        self.read_at = sent
        return gen

    @property
    def _avoid(self) -> set[str]:
        """Packs not to rely on: doomed by the record, or distrusted by this push."""
        return {*self.gen.doomed, *self.distrust}

    def _advance(self, fresh: Generation) -> bool:
        """Take ``fresh`` as the record; whether its counter is the one read before."""
        same = fresh.counter == self.gen.counter
        if not same:
            self.distrust.update(self.copied.found)
        self.gen = fresh
        return same

    def _safe(self, relied: tuple[IdArray, Located]) -> bool:
        """Whether every object relied on (the metadata and chunks :meth:`_copy` wanted) lies
        in a pack the record does not doom and this push does not distrust."""
        avoid = self._avoid
        if not avoid:
            return True
        ids = IdArray(relied[0])
        ids.extend(relied[1].ids())
        for i in range(0, len(ids), SAFE_SLICE):  # a million locations at once: ~300 MB
            part = ids[i : i + SAFE_SLICE]
            found = self.remote.store.locate_many(part)
            if not all(oid in found and found[oid].pack not in avoid for oid in part):
                return False
        return True

    def still_valid(self) -> bool:
        """Right before a ref moves: true when the record was read less than half the
        collector's settle time ago, or read again now with the same counter."""
        if CLOCK() - self.read_at <= self.gen.settle_seconds / 2:
            return True
        return self._advance(self._read())


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
