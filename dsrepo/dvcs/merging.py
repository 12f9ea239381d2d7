"""``merge REV...``: one commit whose parents are HEAD and every REV (octopus), merged per path
against the merge base of all of them with the rules of :mod:`dsrepo.dvcs.merge`.

Conflicts stop the merge before anything is written and list every path with the version each
side has, unless the user chose a strategy. ``--no-commit`` leaves the merged files in the working
copy with the merge recorded in ``.dsrepo/MERGE_HEAD``; ``commit`` finishes it, ``--abort`` undoes it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dsrepo.dvcs import opstate
from dsrepo.dvcs.checkout import (
    apply_files,
    cache_between,
    dirty_among,
    dirty_paths,
    settled_paths,
    switch_to,
)
from dsrepo.dvcs.commits import message_text, put_durable, write_tree
from dsrepo.dvcs.errors import MergeConflictError, StateError, WouldOverwrite
from dsrepo.dvcs.graph import is_ancestor, merge_bases
from dsrepo.dvcs.history import diff_trees
from dsrepo.dvcs.merge import PathConflict, Strategy, merge_snapshots
from dsrepo.dvcs.mergestate import (
    clear_merge_state,
    merge_heads_in_progress,
    merge_in_progress,
    record_merge,
)
from dsrepo.dvcs.paths import is_case_insensitive_fs
from dsrepo.dvcs.refnames import shorten
from dsrepo.dvcs.revisions import resolve_commit
from dsrepo.dvcs.treepatch import patch_tree
from dsrepo.objects.ids import ObjectId, from_hex
from dsrepo.objects.model import Commit, TreeEntry

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository
    from dsrepo.dvcs.worktree import Worktree

ORIG_HEAD = "ORIG_HEAD"


class MergeKind(enum.StrEnum):
    UP_TO_DATE = "up-to-date"
    FAST_FORWARD = "fast-forward"
    MERGED = "merged"
    STAGED = "staged"
    """``--no-commit``: the merged files are written, the merge waits for ``commit``."""


@dataclass
class MergeOutcome:
    kind: MergeKind
    commit: ObjectId | None
    bases: list[ObjectId] = field(default_factory=list)
    resolved: tuple[PathConflict[TreeEntry], ...] = ()
    changed: int = 0


def describe_conflicts(conflicts: Sequence[PathConflict[TreeEntry]], labels: Sequence[str]) -> str:
    def v(e: TreeEntry | None) -> str:
        return "deleted" if e is None else f"{e.id.hex()[:12]} ({e.size} B)"

    lines = []
    for c in conflicts:
        sides = ", ".join(f"{label}: {v(x)}" for label, x in zip(labels, c.versions, strict=True))
        lines.append(f"  {c.path}: {c.reason} (base: {v(c.base)}; {sides})")
    return "\n".join(lines)


def merge(
    repo: Repository,
    wt: Worktree,
    revs: Sequence[str],
    *,
    strategy: Strategy | None = None,
    message: str | None = None,
    metadata: dict[str, Any] | None = None,
    no_commit: bool = False,
    no_ff: bool = False,
) -> MergeOutcome:
    if not revs:
        raise StateError("nothing to merge: name at least one revision")
    if merge_heads_in_progress(repo):
        raise StateError("a merge is already in progress; commit it or run 'dsrepo merge --abort'")
    head = repo.head_commit()
    label_of: dict[ObjectId, str] = {}
    for r in revs:
        c = resolve_commit(repo, r)
        if c != head:
            label_of.setdefault(c, r)
    others = list(label_of)
    # recorded while the working copy changes: what to run again if this run is killed
    operation = " ".join(["merge", *(["--no-commit"] if no_commit else []), *map(shorten, revs)])
    if head is not None:
        others = [o for o in others if not is_ancestor(repo.parents_of, o.hex(), head.hex())]
    if not others:
        opstate.finish(repo.dsdir, operation)  # a killed run had moved HEAD already
        return MergeOutcome(MergeKind.UP_TO_DATE, head)
    identity = repo.identity() if not no_commit else None
    if (
        (
            head is None
            or (len(others) == 1 and is_ancestor(repo.parents_of, head.hex(), others[0].hex()))
        )
        and not no_ff
        and not no_commit
    ):
        target = others[0]
        # a switch: only the paths the two versions differ in are compared (a pull's usual case)
        result = switch_to(repo, wt, target, operation=operation)
        repo.update_head(target, head, f"merge {revs[0]}: Fast-forward")
        opstate.finish(repo.dsdir)
        return MergeOutcome(
            MergeKind.FAST_FORWARD, target, changed=len(result.written) + len(result.removed)
        )
    heads = ([head] if head is not None else []) + others
    bases = [from_hex(h) for h in merge_bases(repo.parents_of, [h.hex() for h in heads])]
    # with a base and local changes allowed elsewhere, only the paths some head changed are
    # merged, checked and written: the others are the base's in every head, so HEAD's
    changed_only = bool(bases) and head is not None and not no_commit and wt.sparse is None
    changed_only = changed_only and not is_case_insensitive_fs(wt.root)
    if changed_only:
        base_files, snapshots = _changed_paths(repo, bases[0], heads)
        head_files = snapshots[0]
        dirty = dirty_among(wt, head_files, {*base_files, *(p for s in snapshots for p in s)})
    else:
        head_files = repo.flatten(repo.commit_tree(head))
        dirty = dirty_paths(repo, wt, head_files)
        base_files = repo.flatten(repo.commit_tree(bases[0])) if bases else {}
        snapshots = [repo.flatten(repo.commit_tree(h)) for h in heads]
    outcome = merge_snapshots(base_files, snapshots, strategy)
    touched = _changed(head_files, outcome.merged) | {c.path for c in outcome.conflicts}
    # files a killed run of this merge already wrote are not local changes
    dirty -= settled_paths(repo, wt, head_files, outcome.merged, dirty & touched)
    if dirty and no_commit:  # the merge result is staged: it must not mix with staged work
        raise WouldOverwrite(
            "you have uncommitted changes; commit them before merge --no-commit: "
            + ", ".join(sorted(dirty)[:20])
        )
    blocked = sorted(p for p in dirty if p in touched)
    if blocked:  # uncommitted work on paths the merge changes: refuse before anything else
        raise WouldOverwrite(
            "your local changes would be overwritten by the merge (commit them, or discard them "
            "with checkout --force HEAD): " + ", ".join(blocked[:20])
        )
    labels = ["HEAD", *(label_of[o] for o in others)]
    if outcome.conflicts:
        raise MergeConflictError(
            f"merge stopped: {len(outcome.conflicts)} conflicting path(s); nothing was changed. "
            "Resolve with --strategy ours|theirs|first|last, or change the paths and retry:\n"
            + describe_conflicts(outcome.conflicts, labels)
        )
    store = repo.store
    merged = outcome.merged
    if changed_only:  # HEAD's tree with the paths the merge changes: their folders rebuilt
        head_files = {p: head_files[p] for p in touched if p in head_files}
        merged = {p: merged[p] for p in touched if p in merged}
        head_tree = repo.commit_tree(head)
        tree = patch_tree(store, head_tree, {p: merged.get(p) for p in touched})
        trees = cache_between(repo, wt.index.trees, head_tree, tree)
    else:
        tree = write_tree(store, merged)
        trees = None
    names = ", ".join(revs)
    branch = repo.head_branch()
    msg = message or f"Merge {names} into {shorten(branch) if branch else 'HEAD'}"
    if no_commit:
        store.flush()
        apply_files(
            repo, wt, head_files, outcome.merged, commit=None, force=False, operation=operation
        )
        record_merge(repo, others, msg)
        opstate.finish(repo.dsdir)
        return MergeOutcome(MergeKind.STAGED, None, bases, outcome.resolved)
    assert identity is not None
    meta: dict[str, Any] = dict(metadata or {})
    if strategy is not None:
        meta.setdefault(
            "merge", {"strategy": strategy.value, "resolved": [c.path for c in outcome.resolved]}
        )
    merge_commit = Commit(tree, tuple(heads), identity, identity, message_text(msg), meta)
    cid = put_durable(store, merge_commit)
    applied = apply_files(
        repo,
        wt,
        head_files,
        merged,
        commit=cid,
        force=False,
        operation=operation,
        changed_only=changed_only,
        trees=trees,
    )
    repo.update_head(cid, head, f"merge {names}")
    opstate.finish(repo.dsdir)
    return MergeOutcome(
        MergeKind.MERGED,
        cid,
        bases,
        outcome.resolved,
        changed=len(applied.written) + len(applied.removed),
    )


def _changed_paths(
    repo: Repository, base: ObjectId, heads: Sequence[ObjectId]
) -> tuple[dict[str, TreeEntry], list[dict[str, TreeEntry]]]:
    """The base's and each head's entries of every path some head changed since ``base``
    (identical subtrees unread): everywhere else every head is the base."""
    base_tree = repo.commit_tree(base)
    diffs = [
        {p: (old, new) for p, old, new in diff_trees(repo, base_tree, repo.commit_tree(h))}
        for h in heads
    ]
    base_files: dict[str, TreeEntry] = {}
    for d in diffs:
        base_files.update((p, old) for p, (old, _) in d.items() if old is not None)
    paths = {p for d in diffs for p in d}
    snapshots = []
    for d in diffs:
        snap: dict[str, TreeEntry] = {}
        for p in paths:
            e = d[p][1] if p in d else base_files.get(p)
            if e is not None:
                snap[p] = e
        snapshots.append(snap)
    return base_files, snapshots


def _changed(a: dict[str, TreeEntry], b: dict[str, TreeEntry]) -> set[str]:
    return {p for p in a.keys() | b.keys() if a.get(p) != b.get(p)}


def abort(repo: Repository, wt: Worktree) -> None:
    if not merge_in_progress(repo):
        raise StateError("there is no merge in progress")
    head = repo.head_commit()
    head_files = repo.flatten(repo.commit_tree(head))
    from dsrepo.dvcs.worktree import files_from_index

    index_files = files_from_index(wt.index.entries.values())
    apply_files(
        repo, wt, index_files, head_files, commit=head, force=True, operation="merge --abort"
    )
    clear_merge_state(repo)
    opstate.finish(repo.dsdir)
