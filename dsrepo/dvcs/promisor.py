"""Objects fetched on demand (git's promisor remote): a partial clone (``clone --only``) has
every commit, tree and manifest but only the data its patterns need; reading any other file
fetches its chunks from the remote named by ``core.promisor`` first, then keeps them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from dsrepo.dvcs.remote import open_remote
from dsrepo.objects.errors import ObjectNotFound
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.transfer import Progress, copy_objects

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository

PROMISOR_KEY = "core.promisor"


def promisor_remote(repo: Repository) -> str | None:
    return repo.config.get(PROMISOR_KEY) or None


def ensure_present(
    repo: Repository, ids: Sequence[ObjectId], *, progress: Progress | None = None
) -> int:
    """Fetch the objects among ``ids`` missing locally from the promisor remote, in one batch.
    Returns how many were fetched; ObjectNotFound when some are missing and there is no remote
    to fetch them from."""
    missing = repo.store.missing(ids)
    if not missing:
        return 0
    name = promisor_remote(repo)
    if not name:
        first = next(iter(missing))
        raise ObjectNotFound(
            f"{len(missing)} object(s) missing locally, e.g. {first.hex()}, and no remote to fetch them from"
        )
    with open_remote(repo, name) as remote:
        stats = copy_objects(
            remote.store, repo.store, missing, progress=progress, where=remote.where
        )
    return stats.objects
