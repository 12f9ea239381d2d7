"""A merge in progress (``merge --no-commit``): ``.dsrepo/MERGE_HEAD`` lists the other heads,
``.dsrepo/MERGE_MSG`` the message ``commit`` will use. ``status``, ``checkout``, ``commit`` and
``fsck`` read it; ``merge`` writes it; ``commit`` and ``merge --abort`` clear it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from dsrepo.dvcs.fsutil import atomic_write
from dsrepo.objects.ids import ObjectId, from_hex

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository

MERGE_HEAD = "MERGE_HEAD"
MERGE_MSG = "MERGE_MSG"


def merge_heads_in_progress(repo: Repository) -> list[ObjectId]:
    path = repo.dsdir / MERGE_HEAD
    if not path.exists():
        return []
    return [from_hex(line.strip()) for line in path.read_text().splitlines() if line.strip()]


def record_merge(repo: Repository, others: Sequence[ObjectId], message: str) -> None:
    atomic_write(repo.dsdir / MERGE_HEAD, "".join(f"{o.hex()}\n" for o in others).encode())
    atomic_write(repo.dsdir / MERGE_MSG, message.encode())


def clear_merge_state(repo: Repository) -> None:
    for name in (MERGE_HEAD, MERGE_MSG):
        (repo.dsdir / name).unlink(missing_ok=True)
