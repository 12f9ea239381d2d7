"""Dataset-workflow verbs of :class:`~dsrepo.dvcs.repository.Repository`, as a mixin that keeps
that module short: ``verify`` (a directory against a version), ``search`` (``log`` filtered by
message, author, date, metadata), ``sync`` (stage a folder that lives elsewhere), notes
(metadata attached to a commit after the fact). Each delegates to the module named after it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from dsrepo.dvcs.lock import holds_gc_lock, holds_index_lock
from dsrepo.gcpause import pausing

if TYPE_CHECKING:
    from dsrepo.dvcs.commits import CommitInfo
    from dsrepo.dvcs.history import LogEntry
    from dsrepo.dvcs.notes import Note
    from dsrepo.dvcs.repository import Repository
    from dsrepo.dvcs.search import LogFilter
    from dsrepo.dvcs.syncdir import SyncResult
    from dsrepo.dvcs.verify import VerifyResult
    from dsrepo.objects.ids import ObjectId

Progress = Callable[[int, int], None]


class WorkflowVerbs:
    """``Repository``'s dataset-workflow verbs."""

    dsdir: Path
    lock_timeout: float
    gc_lock_timeout: float | None

    def _repo(self) -> Repository:
        return cast("Repository", self)

    @holds_index_lock
    @pausing
    def sync(
        self,
        directory: str | os.PathLike[str],
        message: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        progress: Progress | None = None,
    ) -> SyncResult:
        """Make the staged snapshot equal to ``directory`` (a folder outside the working copy):
        additions, modifications, deletions, renames; only new chunks are stored. With
        ``message``, commit it too (when it differs from HEAD)."""
        from dsrepo.dvcs.errors import NothingToCommit
        from dsrepo.dvcs.syncdir import sync_directory

        repo = self._repo()
        result = sync_directory(repo, repo.worktree, directory, progress=progress)
        if message is not None:
            with contextlib.suppress(NothingToCommit):  # the folder is what HEAD holds
                result.commit = repo.commit(message, metadata)
        return result

    @pausing
    def verify(
        self,
        directory: str | os.PathLike[str],
        rev: str = "HEAD",
        *,
        progress: Progress | None = None,
    ) -> VerifyResult:
        """Compare ``directory`` with version ``rev``: files missing there, extra, modified
        (by content id). The working copy itself is checked through the stat cache."""
        from dsrepo.dvcs.verify import verify

        return verify(self._repo(), directory, rev, progress=progress)

    def search(
        self,
        revs: Sequence[str] = ("HEAD",),
        where: LogFilter | None = None,
        *,
        all_refs: bool = False,
        max_count: int | None = None,
        paths: Sequence[str] = (),
        cwd: Path | None = None,
    ) -> list[LogEntry]:
        """``log`` of ``revs`` (every branch, tag and remote-tracking ref with ``all_refs``)
        keeping the commits ``where`` accepts (message, author, dates, metadata)."""
        from dsrepo.dvcs.search import search

        return search(
            self._repo(), revs, where, all_refs=all_refs, max_count=max_count, paths=paths, cwd=cwd
        )

    # ---- notes (git notes: refs/notes/commits)

    def note(self, rev: str = "HEAD") -> Note | None:
        """The note attached to commit ``rev``, or None."""
        from dsrepo.dvcs.notes import get_note

        return get_note(self._repo(), rev)

    def notes(self) -> dict[ObjectId, Note]:
        """Every note, by commit id."""
        from dsrepo.dvcs.notes import all_notes

        return all_notes(self._repo())

    @holds_gc_lock
    def add_note(
        self,
        rev: str = "HEAD",
        message: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        force: bool = False,
    ) -> Note:
        """Attach a note (a message and/or metadata) to commit ``rev``; its id does not change.
        A commit that has a note refuses (RefExists) unless ``force`` (replace it)."""
        from dsrepo.dvcs.notes import set_note

        return set_note(self._repo(), rev, message, metadata, force=force)

    @holds_gc_lock
    def edit_note(
        self,
        rev: str = "HEAD",
        message: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Note:
        """Change commit ``rev``'s note (or start one): the message replaced when given, the
        metadata keys merged (a None value removes a key)."""
        from dsrepo.dvcs.notes import set_note

        return set_note(self._repo(), rev, message, metadata, edit=True)

    @holds_gc_lock
    def remove_note(self, rev: str = "HEAD") -> ObjectId:
        from dsrepo.dvcs.notes import remove_note

        return remove_note(self._repo(), rev)

    # ---- squash

    @holds_index_lock
    @pausing
    def squash(
        self,
        revrange: str,
        message: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        branch: str | None = None,
    ) -> CommitInfo:
        """One version made of the range ``A..B``: ``B``'s files, parent ``A``, the range's
        metadata merged plus ``squashed`` (the ids replaced). The current branch moves to it
        when ``B`` is its tip; else only ``branch`` (created) names it. The squashed commits
        stay reachable from the reflog until gc."""
        from dsrepo.dvcs.squash import squash

        return squash(self._repo(), revrange, message, metadata, branch=branch)
