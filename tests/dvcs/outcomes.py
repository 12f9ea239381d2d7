"""What a working-copy command left behind, to compare two runs of it (the differential tests
of the changed-paths-only switch and merge)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

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
