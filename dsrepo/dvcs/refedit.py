"""``update-ref``: set or delete one ref by compare-and-swap, git's plumbing for scripts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dsrepo.dvcs.errors import RefConflict, UnknownRevision
from dsrepo.dvcs.refnames import check_refname
from dsrepo.dvcs.refs import ZERO
from dsrepo.dvcs.revisions import resolve
from dsrepo.objects.errors import ObjectNotFound

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository
    from dsrepo.objects.ids import ObjectId


def update_ref(
    repo: Repository,
    name: str,
    new: str | None,
    old: str | None,
    *,
    check_old: bool,
    message: str,
) -> None:
    """Set ``name`` to revision ``new`` (None: delete) if it holds ``old`` (``""`` or 64 zeros:
    if it does not exist). Without ``check_old`` the update is still atomic. ``HEAD`` on a
    branch means that branch, as in git."""
    name = check_refname(name) if name != "HEAD" else repo.refs.follow("HEAD")[0]
    who = repo.reflog_identity()
    if new is None:
        current = repo.refs.resolve(name)
        if current is None:
            raise UnknownRevision(f"ref {name} does not exist")
        expected = resolve(repo, old).id if old else current
        _check_old(name, current, expected, old)
        repo.refs.update(name, None, expected, who=who, message=message)
        return
    target = resolve(repo, new).id
    if not repo.store.has(target):
        raise ObjectNotFound(f"object {target.hex()} not found")
    if not check_old:
        repo.refs.update(name, target, None, who=who, message=message, check_old=False)
        return
    old_id = None if old in (None, "", ZERO) else resolve(repo, old).id
    _check_old(name, repo.refs.resolve(name), old_id, old)
    repo.refs.update(name, target, old_id, who=who, message=message)


def _check_old(
    name: str, found: ObjectId | None, expected: ObjectId | None, old: str | None
) -> None:
    """A wrong OLD says what the ref holds (the compare-and-swap still decides the race)."""
    if found == expected:
        return
    shown = "does not exist" if found is None else f"is at {found.hex()[:12]}"
    wanted = "absent" if expected is None else f"{old} ({expected.hex()[:12]})"
    raise RefConflict(f"ref {name} {shown}, not {wanted} as OLD says; nothing was changed")
