"""``update-ref``: set or delete one ref by compare-and-swap, git's plumbing for scripts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dsrepo.dvcs.errors import UnknownRevision
from dsrepo.dvcs.refnames import check_refname
from dsrepo.dvcs.refs import ZERO
from dsrepo.dvcs.revisions import resolve
from dsrepo.objects.errors import ObjectNotFound

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository


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
        repo.refs.update(name, None, expected, who=who, message=message)
        return
    target = resolve(repo, new).id
    if not repo.store.has(target):
        raise ObjectNotFound(f"object {target.hex()} not found")
    if not check_old:
        repo.refs.update(name, target, None, who=who, message=message, check_old=False)
        return
    old_id = None if old in (None, "", ZERO) else resolve(repo, old).id
    repo.refs.update(name, target, old_id, who=who, message=message)
