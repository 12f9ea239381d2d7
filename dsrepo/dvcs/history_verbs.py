"""History-reading verbs of :class:`~dsrepo.dvcs.repository.Repository`, as a mixin that keeps
that module short: ``resolve``, ``log``, ``diff``, ``changes``, ``decorations``, ``ls``,
``ls_paths``, ``ls_tree``. Each delegates to :mod:`dsrepo.dvcs.history` (or ``revisions``,
``plumbing``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

from dsrepo.gcpause import pausing

if TYPE_CHECKING:
    from dsrepo.dvcs.history import DiffResult, FileInfo, LogEntry
    from dsrepo.dvcs.repository import Repository
    from dsrepo.dvcs.revisions import Resolved
    from dsrepo.objects.ids import ObjectId
    from dsrepo.objects.model import TreeEntry


class HistoryVerbs:
    """``Repository``'s verbs that read history."""

    def _repo(self) -> Repository:
        return cast("Repository", self)

    def resolve(self, rev: str) -> Resolved:
        """What a revision names (``HEAD~2``, ``v1:images/a.png``, an id prefix...)."""
        from dsrepo.dvcs.revisions import resolve

        return resolve(self._repo(), rev)

    def log(
        self,
        rev: str | Sequence[str] = "HEAD",
        max_count: int | None = None,
        paths: Sequence[str] = (),
        cwd: Path | None = None,
    ) -> list[LogEntry]:
        """Commits of ``rev``, newest first; with ``paths`` (relative to ``cwd``, default the
        root; globs as ``add``), only those changing them."""
        from dsrepo.dvcs.history import log

        revs = [rev] if isinstance(rev, str) else list(rev)
        return log(self._repo(), revs, max_count=max_count, paths=paths, cwd=cwd)

    @pausing
    def diff(
        self,
        a: str | None = None,
        b: str | None = None,
        paths: Sequence[str] = (),
        *,
        cached: bool = False,
        cwd: Path | None = None,
    ) -> DiffResult:
        """Compare two versions; with one, it against the working copy (``cached``: the staging
        area); with none, the staging area against the working copy (``paths``: from ``cwd``)."""
        from dsrepo.dvcs.history import diff

        return diff(self._repo(), self._repo().worktree, a, b, paths, cached=cached, cwd=cwd)

    def changes(self, commit: ObjectId) -> DiffResult:
        """What ``commit`` changed against its first parent."""
        from dsrepo.dvcs.history import classify, diff_trees

        c = self._repo().store.get_commit(commit)
        parent_tree = self._repo().store.get_commit(c.parents[0]).tree if c.parents else None
        return classify(diff_trees(self._repo(), parent_tree, c.tree))

    def decorations(self) -> dict[ObjectId, list[str]]:
        """Ref names by the commit they point to, as ``log`` shows them."""
        from dsrepo.dvcs.history import decorations

        return decorations(self._repo())

    def ls(
        self, rev: str | None = "HEAD", pattern: str | None = None, cwd: Path | None = None
    ) -> list[FileInfo]:
        """Files of ``rev`` (None: the staging area), optionally under a path or matching a glob
        (relative to ``cwd``, default: the root)."""
        from dsrepo.dvcs.history import ls_files

        return list(ls_files(self._repo(), rev, pattern, self._repo().worktree, cwd=cwd))

    def ls_paths(
        self, rev: str | None = "HEAD", pattern: str | None = None, cwd: Path | None = None
    ) -> Iterator[str]:
        """The paths :meth:`ls` lists, streamed (the staging area's from its sorted columns)."""
        from dsrepo.dvcs.history import ls_paths

        return ls_paths(self._repo(), rev, pattern, self._repo().worktree, cwd=cwd)

    def ls_tree(
        self, rev: str, path: str | None = None, recursive: bool = False
    ) -> list[tuple[str, TreeEntry]]:
        """Entries of the tree of ``rev`` (under ``path``) as (path, entry)."""
        from dsrepo.dvcs.plumbing import ls_tree

        return ls_tree(self._repo(), rev, path, recursive)
