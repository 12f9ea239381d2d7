"""A merge in progress (``merge --no-commit``): ``.dsrepo/MERGE_HEAD`` lists the other heads,
``.dsrepo/MERGE_MSG`` the message ``commit`` will use. ``status``, ``checkout``, ``commit`` and
``fsck`` read it; ``merge`` writes it; ``commit`` and ``merge --abort`` clear it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from dsrepo.dvcs.errors import StateError
from dsrepo.dvcs.fsutil import atomic_write
from dsrepo.objects.errors import InvalidId
from dsrepo.objects.ids import ObjectId, from_hex

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository

MERGE_HEAD = "MERGE_HEAD"
MERGE_MSG = "MERGE_MSG"


def merge_in_progress(repo: Repository) -> bool:
    """Whether a merge waits for ``commit`` (even one whose MERGE_HEAD is damaged)."""
    return (repo.dsdir / MERGE_HEAD).exists()


def merge_heads_in_progress(repo: Repository) -> list[ObjectId]:
    """The other heads of the merge in progress ([] when none). A damaged MERGE_HEAD is a
    StateError naming the file and the way out, never a crash or a silent empty merge."""
    path = repo.dsdir / MERGE_HEAD
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return []
    heads = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            heads.append(from_hex(line.strip()))
        except InvalidId:
            raise StateError(
                f"{path} is damaged (line {number} is not an object id); "
                "run 'dsrepo merge --abort' to leave the merge"
            ) from None
    return heads


def record_merge(repo: Repository, others: Sequence[ObjectId], message: str) -> None:
    atomic_write(repo.dsdir / MERGE_HEAD, "".join(f"{o.hex()}\n" for o in others).encode())
    atomic_write(repo.dsdir / MERGE_MSG, message.encode())


def clear_merge_state(repo: Repository) -> None:
    for name in (MERGE_HEAD, MERGE_MSG):
        (repo.dsdir / name).unlink(missing_ok=True)
