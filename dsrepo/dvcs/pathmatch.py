"""Path patterns of ``--only`` and of a partial clone's sparse set: gitignore-style patterns
(``images/``, ``**/*.jpg``) or shell globs matched against the whole path."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository

SPARSE_KEY = "core.sparse"


def match_only(patterns: Sequence[str] | None) -> Callable[[str], bool]:
    if not patterns:
        return lambda _p: True
    import pathspec

    spec = pathspec.GitIgnoreSpec.from_lines(patterns)
    return lambda p: spec.match_file(p) or any(fnmatch.fnmatchcase(p, g) for g in patterns)


def sparse_patterns(repo: Repository) -> list[str] | None:
    """The patterns a partial clone materializes (None: a full working copy)."""
    raw = repo.config.get(SPARSE_KEY)
    return json.loads(raw) if raw else None


def set_sparse_patterns(repo: Repository, patterns: Sequence[str]) -> None:
    assert repo.config.local is not None
    repo.config.local.set(SPARSE_KEY, json.dumps(list(patterns)))


def sparse_matcher(repo: Repository) -> Callable[[str], bool] | None:
    patterns = sparse_patterns(repo)
    return match_only(patterns) if patterns else None
