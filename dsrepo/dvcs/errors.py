"""Errors of the repository layer (refs, revisions, working copy, history, merge, sync)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from dsrepo.errors import DsrepoError
from dsrepo.objects.errors import storage_error


class RepositoryError(DsrepoError):
    """A repository-level operation failed."""


class NotARepository(RepositoryError):
    exit_code = 3


class AlreadyARepository(RepositoryError):
    exit_code = 3


class InvalidRefName(RepositoryError):
    exit_code = 2


class UnknownRevision(RepositoryError):
    exit_code = 4


class RefConflict(RepositoryError):
    """A ref changed under us (compare-and-swap lost) or would not fast-forward."""

    exit_code = 5


class RefExists(RepositoryError):
    exit_code = 5


class NothingToCommit(RepositoryError):
    exit_code = 6


class MissingIdentity(RepositoryError):
    exit_code = 6


class MergeConflictError(RepositoryError):
    exit_code = 5


class WouldOverwrite(RepositoryError):
    """An operation would destroy uncommitted work; ``--force`` overrides."""

    exit_code = 6


class PathError(RepositoryError):
    """A path outside the working copy, or a pathspec that matches nothing."""

    exit_code = 9


class ConfigError(RepositoryError):
    exit_code = 2


class StateError(RepositoryError):
    """An operation is not possible in the current state (merge in progress, detached HEAD...)."""

    exit_code = 6


class IntegrityError(RepositoryError):
    """fsck found problems."""

    exit_code = 7


class RemoteError(RepositoryError):
    """A remote cannot be used: unreachable, not a dsrepo remote, or its history is damaged."""

    exit_code = 8


class RemoteNotFound(RepositoryError):
    """No remote of that name is configured."""

    exit_code = 2


class RemoteExists(RepositoryError):
    exit_code = 5


class PushRejected(RepositoryError):
    """A push left at least one ref unchanged; subclasses say why (one class per reason)."""

    exit_code = 5


class NonFastForward(PushRejected):
    """The remote ref is not an ancestor of what was pushed (merge first, or force)."""


class FetchFirst(PushRejected):
    """The remote ref names commits this repository does not have."""


class RemoteRefChanged(PushRejected):
    """The remote ref moved between reading it and the compare-and-swap (a concurrent push)."""


class TagExists(PushRejected):
    """The remote already has a different tag of that name."""


class Locked(RepositoryError):
    """Another dsrepo process holds a lock this one needs (the index, a config file) for longer
    than a writer waits (:mod:`dsrepo.dvcs.lock`)."""

    exit_code = 11


@contextlib.contextmanager
def path_errors(path: object, what: str = "path") -> Iterator[None]:
    """OS errors on a path a user named become one line: a full or unwritable disk is
    StorageUnavailable (exit 12), anything else (not a directory, a name too long, in the way)
    PathError (exit 9) naming ``what`` and the path."""
    try:
        yield
    except OSError as exc:
        refused = storage_error(exc, path)
        if refused is not None:
            raise refused from None
        raise PathError(f"cannot use {what} {path}: {exc.strerror or exc}") from None


def existing_directory(directory: str | os.PathLike[str]) -> Path:
    """``directory`` as a Path, or PathError (exit 9) when it is not a directory (missing, a
    file, a name too long, a loop of links)."""
    root = Path(directory)
    try:
        is_dir = root.is_dir()
    except OSError:
        is_dir = False
    if not is_dir:
        raise PathError(f"{os.fspath(directory)!r} is not a directory")
    return root
