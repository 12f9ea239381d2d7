"""What a working-copy command left behind, to compare two runs of it (the differential tests
of the changed-paths-only switch and merge)."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType

import pytest

from dsrepo import Repository
from dsrepo.dvcs.worktree import Status
from dsrepo.errors import DsrepoError
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.kinds import EntryKind
from tests.snapshots import snapshot

Outcome = tuple[str, dict[str, bytes], list[tuple[str, tuple[EntryKind, ObjectId], int]], Status]
"""(what the command said or refused, the working files, the index entries, the status)."""


def outcome(root: Path, run: Callable[[Repository], str]) -> Outcome:
    """Open the repository at ``root``, ``run`` the command on it, and capture the result."""
    repo = Repository.open(root)
    try:
        try:
            said = run(repo)
        except DsrepoError as exc:
            said = f"{type(exc).__name__}: {exc}"
        entries = [(p, e.version, e.size) for p, e in repo.worktree.index.entries.items()]
        status = dataclasses.replace(repo.status(untracked="all"), upstream=None, head=None)
        files = {p: d for p, d in snapshot(root).items() if not p.startswith(".dsrepo")}
        return said, files, entries, status
    finally:
        repo.close()


def fast_and_full(
    root: Path,
    run: Callable[[Repository], str],
    modules: Iterable[ModuleType],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Outcome, Outcome]:
    """``run`` on the repository at ``root`` (the changed-paths path), then on a copy of it
    made before, with every shortcut of ``modules`` off (they think the filesystem ignores
    case): the two outcomes, to be equal."""
    full = root.with_name(root.name + "-full")
    shutil.copytree(root, full, symlinks=True)
    got = outcome(root, run)
    for module in modules:
        monkeypatch.setattr(module, "is_case_insensitive_fs", lambda root: True)
    return got, outcome(full, run)


def staged_is_head(repo: Repository) -> bool:
    """Whether the tree cache says the staging area is exactly HEAD (nothing staged)."""
    return repo.worktree.index.tree == repo.commit_tree(repo.head_commit())
