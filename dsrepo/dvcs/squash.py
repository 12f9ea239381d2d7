"""``squash A..B -m MSG``: one version made of a range of versions (ClearML's dataset squash).

The new commit has ``B``'s tree, ``A`` as its only parent, the message given, and as metadata
the range's metadata merged oldest first (a later value wins; ``git`` provenance left out), then
``squashed``: the ids of the commits it replaces, newest first, then the metadata given. When
``B`` is the tip of the current branch, the branch moves to the new commit (the working copy and
the staging area do not change: the tree is the same); otherwise no ref moves unless ``branch``
names one to create. The squashed commits stay in the object store, reachable from the reflog
(``reflog``), until a ``gc`` after the reflog expires.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dsrepo.dvcs.commits import message_text, put_durable
from dsrepo.dvcs.errors import RefExists, RepositoryError, UnknownRevision
from dsrepo.dvcs.graph import is_ancestor
from dsrepo.dvcs.history import log
from dsrepo.dvcs.refnames import branch_ref
from dsrepo.dvcs.revisions import resolve_commit
from dsrepo.objects.model import Commit

if TYPE_CHECKING:
    from dsrepo.dvcs.commits import CommitInfo
    from dsrepo.dvcs.repository import Repository


def squash(
    repo: Repository,
    revrange: str,
    message: str,
    metadata: Mapping[str, Any] | None = None,
    *,
    branch: str | None = None,
) -> CommitInfo:
    from dsrepo.dvcs.commits import CommitInfo

    base_rev, sep, tip_rev = revrange.partition("..")
    if not sep or not base_rev or not tip_rev or tip_rev.startswith("."):
        raise UnknownRevision(f"squash takes a range A..B, not {revrange!r}")
    if not message.strip():
        raise RepositoryError("empty commit message; give one with -m")
    base = resolve_commit(repo, base_rev)
    tip = resolve_commit(repo, tip_rev)
    if base == tip or not is_ancestor(repo.parents_of, base.hex(), tip.hex()):
        raise RepositoryError(f"{base_rev} is not an ancestor of {tip_rev}: nothing to squash")
    below = {e.id for e in log(repo, [base.hex()])}  # A and its ancestors: kept as they are
    squashed = [e for e in log(repo, [tip.hex()]) if e.id not in below]
    meta: dict[str, Any] = {}
    for e in reversed(squashed):
        meta.update({k: v for k, v in e.commit.metadata.items() if k != "git"})
    meta["squashed"] = [e.id.hex() for e in squashed]
    meta.update(metadata or {})
    who = repo.identity()
    tree = repo.store.get_commit(tip).tree
    c = Commit(tree, (base,), who, who, message_text(message), meta)
    cid = put_durable(repo.store, c)
    note = f"squash: {revrange}: {message.splitlines()[0]}"
    if branch is not None:
        ref = branch_ref(branch)
        if repo.refs.resolve(ref) is not None:
            raise RefExists(f"branch {branch!r} already exists")
        repo.refs.update(ref, cid, None, who=who, message=note)
    elif repo.head_commit() == tip:
        repo.update_head(cid, tip, note)
    return CommitInfo(cid, c)
