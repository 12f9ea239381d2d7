"""``dsrepo.get_local_copy``: a folder holding one version of a remote dataset, as ClearML's
``Dataset.get_local_copy`` gives one (:meth:`dsrepo.Repository.get` does the work)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

from dsrepo.dvcs.repository import Repository
from dsrepo.remotes.urls import S3Options


def get_local_copy(
    url: str,
    rev: str | None = None,
    into: str | os.PathLike[str] | None = None,
    *,
    only: Sequence[str] | str | None = None,
    s3: S3Options | None = None,
    link: str = "auto",
    copy: bool = False,
    force: bool = False,
) -> Path:
    """The folder holding version ``rev`` of the remote at ``url`` (any revision form; default
    ``latest``, the remote's default branch): read-only files linked from the user-level cache,
    in ``into`` or, when None, in a folder of the cache itself (``copies/``) that every call for
    this version reuses. ``copy``: writable files of their own. With the remote unreachable, a
    version the cache holds is served, with a warning (``UserWarning``)."""
    got = Repository.get(url, into, rev=rev, only=only, s3=s3, link=link, copy=copy, force=force)
    if got.warning:
        warnings.warn(got.warning, stacklevel=2)
    return got.path
