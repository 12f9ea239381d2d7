"""Writing history: trees from the staging index, commits, tags and branches."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsrepo.dvcs.errors import (
    NothingToCommit,
    RefExists,
    RepositoryError,
    StateError,
    UnknownRevision,
)
from dsrepo.dvcs.mergestate import clear_merge_state, merge_heads_in_progress
from dsrepo.dvcs.refnames import HEADS, TAGS, branch_ref, shorten, tag_ref
from dsrepo.dvcs.revisions import resolve, resolve_commit
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import Commit, ObjectType, Tag, TreeEntry
from dsrepo.objects.store import ObjectStore

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository
    from dsrepo.dvcs.worktree import Worktree


def write_tree(store: ObjectStore, files: Mapping[str, TreeEntry]) -> ObjectId:
    """Store the nested trees for a flat ``path → entry`` map; returns the root tree id."""
    children: dict[str, list[TreeEntry]] = defaultdict(list)
    dirs: set[str] = {""}
    for path, e in files.items():
        parent, _, name = path.rpartition("/")
        children[parent].append(TreeEntry(name, e.kind, e.size, e.id, e.manifest))
        while parent and parent not in dirs:
            dirs.add(parent)
            parent = parent.rpartition("/")[0]
    # deepest directories first, so each subtree id is known before its parent is built
    for d in sorted(dirs, key=lambda d: d.count("/") + (1 if d else 0), reverse=True):
        if not d:
            continue
        entries = children.pop(d, [])
        tid = store.put_tree(entries)
        parent, _, name = d.rpartition("/")
        children[parent].append(TreeEntry(name, EntryKind.TREE, sum(e.size for e in entries), tid))
    return store.put_tree(children.pop("", []))


@dataclass(frozen=True, slots=True)
class CommitInfo:
    id: ObjectId
    commit: Commit


def git_provenance(start: Path) -> dict[str, Any] | None:
    """The code's git HEAD and dirtiness for the repository containing ``start`` (via dulwich)."""
    for d in [start, *start.parents]:
        if (d / ".git").exists():
            break
    else:
        return None
    try:
        from dulwich import porcelain
        from dulwich.repo import Repo

        with Repo(str(d)) as gitrepo:
            try:
                head = gitrepo.head().decode()
            except KeyError:
                return {"commit": None, "dirty": True, "path": str(d)}
            st = porcelain.status(gitrepo, untracked_files="no")
            dirty = bool(st.unstaged or any(st.staged[k] for k in ("add", "delete", "modify")))
            symrefs: dict[Any, Any] = dict(gitrepo.refs.get_symrefs())
            refs = symrefs.get(b"HEAD")
            branch = refs.decode().removeprefix("refs/heads/") if refs else None
        return {"commit": head, "dirty": dirty, "branch": branch, "path": str(d)}
    except Exception as exc:  # provenance is best effort; never block a commit on it
        return {"error": f"{type(exc).__name__}: {exc}"[:200]}


def commit(
    repo: Repository,
    wt: Worktree,
    message: str,
    *,
    metadata: Mapping[str, Any] | None = None,
    allow_empty: bool = False,
    all_tracked: bool = False,
) -> CommitInfo:
    """Record the staged snapshot as a new commit on the current branch (or detached HEAD)."""
    if not message.strip():
        raise RepositoryError("empty commit message; give one with -m")
    author = repo.identity()
    if all_tracked:
        modified, deleted, _ = wt.changes()
        if modified or deleted:
            wt.add(
                [str(wt.root / p) for p in modified + deleted if os.path.lexists(wt.root / p)] or []
            )
            for p in deleted:
                wt.index.remove(p)
            wt.index.save()
    head = repo.head_commit()
    merging = merge_heads_in_progress(repo)
    from dsrepo.dvcs.worktree import files_from_index

    store = repo.store
    tree = write_tree(store, files_from_index(wt.index.entries.values()))
    if not allow_empty and not merging:
        if head is not None and store.get_commit(head).tree == tree:
            raise NothingToCommit("nothing to commit (use 'dsrepo add' first, or --allow-empty)")
        if head is None and not wt.index.entries:
            raise NothingToCommit("nothing to commit: the staging area is empty")
    meta: dict[str, Any] = {}
    prov = git_provenance(repo.root)
    if prov is not None:
        meta["git"] = prov
    meta.update(metadata or {})
    parents = (() if head is None else (head,)) + tuple(merging)
    c = Commit(
        tree, parents, author, author, message if message.endswith("\n") else message + "\n", meta
    )
    try:
        cid = store.put(c)
        store.flush()
    except BaseException:
        store.abort()
        raise
    kind = "commit (merge)" if merging else "commit (initial)" if head is None else "commit"
    repo.update_head(cid, head, f"{kind}: {message.splitlines()[0]}")
    clear_merge_state(repo)
    wt.index.tree = tree  # the index now equals the committed tree
    wt.index.save()
    return CommitInfo(cid, c)


def parse_meta(pairs: list[str], meta_file: str | None) -> dict[str, Any]:
    """``--meta KEY=VALUE`` (VALUE parsed as JSON when it is JSON, else a string) and
    ``--meta-file FILE`` (a JSON object)."""
    out: dict[str, Any] = {}
    if meta_file:
        try:
            doc = json.loads(Path(meta_file).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise RepositoryError(f"cannot read metadata file {meta_file}: {exc}") from None
        if not isinstance(doc, dict):
            raise RepositoryError(f"metadata file {meta_file} must hold a JSON object")
        out.update(doc)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise RepositoryError(f"invalid --meta {pair!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


# ---------------------------------------------------------------- tags


@dataclass(frozen=True, slots=True)
class TagInfo:
    name: str
    target: ObjectId
    annotated: bool
    tag: Tag | None = None


def create_tag(
    repo: Repository,
    name: str,
    rev: str = "HEAD",
    *,
    message: str | None = None,
    force: bool = False,
) -> TagInfo:
    ref = tag_ref(name)
    target = resolve(repo, rev)
    if target.entry is not None:
        raise UnknownRevision(f"cannot tag a path ({rev!r})")
    old = repo.refs.resolve(ref)
    if old is not None and not force:
        raise RefExists(f"tag {name!r} already exists (use --force to move it)")
    if message is not None:
        tagger = repo.identity()
        tag = Tag(
            target.id,
            target.type,
            name,
            tagger,
            message if message.endswith("\n") else message + "\n",
        )
        tid = repo.store.put(tag)
        repo.store.flush()
        repo.refs.update(ref, tid, old, who=tagger, message=f"tag: {name}")
        return TagInfo(name, tid, True, tag)
    repo.refs.update(ref, target.id, old, who=repo.reflog_identity(), message=f"tag: {name}")
    return TagInfo(name, target.id, False)


def list_tags(repo: Repository, pattern: str | None = None) -> list[TagInfo]:
    import fnmatch

    out = []
    for ref, oid in repo.refs.list(TAGS).items():
        name = ref[len(TAGS) :]
        if pattern and not fnmatch.fnmatchcase(name, pattern):
            continue
        if repo.store.has(oid) and repo.store.object_type(oid) == ObjectType.TAG:
            out.append(TagInfo(name, oid, True, repo.store.get_tag(oid)))
        else:
            out.append(TagInfo(name, oid, False))
    return out


def delete_tag(repo: Repository, name: str) -> ObjectId:
    ref = tag_ref(name)
    old = repo.refs.resolve(ref)
    if old is None:
        raise UnknownRevision(f"tag {name!r} not found")
    repo.refs.update(ref, None, old, who=repo.reflog_identity(), message=f"tag: delete {name}")
    return old


# ---------------------------------------------------------------- branches


@dataclass(frozen=True, slots=True)
class BranchInfo:
    name: str
    target: ObjectId
    current: bool


def list_branches(repo: Repository, remotes: bool = False) -> list[BranchInfo]:
    current = repo.head_branch()
    prefix = "refs/remotes/" if remotes else HEADS
    return [
        BranchInfo(shorten(ref), oid, ref == current) for ref, oid in repo.refs.list(prefix).items()
    ]


def create_branch(
    repo: Repository, name: str, rev: str = "HEAD", *, force: bool = False
) -> BranchInfo:
    ref = branch_ref(name)
    target = resolve_commit(repo, rev)
    old = repo.refs.resolve(ref)
    if old is not None and not force:
        raise RefExists(f"branch {name!r} already exists")
    if old is not None and ref == repo.head_branch():
        raise StateError(f"cannot force-update the current branch {name!r}")
    repo.refs.update(
        ref, target, old, who=repo.reflog_identity(), message=f"branch: created from {rev}"
    )
    return BranchInfo(name, target, False)


def delete_branch(repo: Repository, name: str, *, force: bool = False) -> ObjectId:
    from dsrepo.dvcs.graph import is_ancestor

    ref = branch_ref(name)
    old = repo.refs.resolve(ref)
    if old is None:
        raise UnknownRevision(f"branch {name!r} not found")
    if ref == repo.head_branch():
        raise StateError(f"cannot delete branch {name!r}: it is checked out")
    head = repo.head_commit()
    if not force and (head is None or not is_ancestor(repo.parents_of, old.hex(), head.hex())):
        raise StateError(f"branch {name!r} is not merged into HEAD; use -D to delete it anyway")
    repo.refs.update(ref, None, old, who=repo.reflog_identity(), message="branch: deleted")
    return old
