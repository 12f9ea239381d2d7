"""Writing history: trees from the staging index, commits, tags and branches."""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsrepo.dvcs.errors import (
    NothingToCommit,
    PathError,
    RefExists,
    RepositoryError,
    StateError,
    UnknownRevision,
)
from dsrepo.dvcs.integrity import show_path
from dsrepo.dvcs.mergestate import clear_merge_state, merge_heads_in_progress
from dsrepo.dvcs.refnames import HEADS, TAGS, branch_ref, shorten, tag_ref
from dsrepo.dvcs.revisions import resolve, resolve_commit
from dsrepo.dvcs.treecache import write_index_tree
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import (
    MAX_INT,
    MAX_JSON_DEPTH,
    MIN_INT,
    Commit,
    ObjectType,
    Tag,
    TreeEntry,
    path_limit_problem,
)
from dsrepo.objects.store import ObjectStore

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository
    from dsrepo.dvcs.worktree import Worktree


def write_tree(store: ObjectStore, files: Mapping[str, TreeEntry]) -> ObjectId:
    """Store the nested trees for a flat ``path → entry`` map; returns the root tree id.

    A path beyond the limits every tree is held to (``MAX_TREE_DEPTH``, ``MAX_PATH_BYTES``,
    ``MAX_NAME_BYTES`` in :mod:`dsrepo.objects.model`) raises PathError: such a tree would be
    refused by fetch, clone and get, and reported by fsck."""
    children: dict[str, list[TreeEntry]] = defaultdict(list)
    dirs: set[str] = {""}
    for path, e in files.items():
        problem = path_limit_problem(path)
        if problem:
            raise PathError(f"cannot record {show_path(path)}: {problem}")
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
        wt.stage_tracked()
    head = repo.head_commit()
    merging = merge_heads_in_progress(repo)
    store = repo.store
    try:
        tree = write_index_tree(store, wt.index)
    except BaseException:
        store.abort()
        raise
    if not allow_empty and not merging:
        if head is not None and store.get_commit(head).tree == tree:
            wt.index.save_trees()  # (what -a refreshed, too)
            raise NothingToCommit("nothing to commit (use 'dsrepo add' first, or --allow-empty)")
        if head is None and not len(wt.index):
            raise NothingToCommit("nothing to commit: the staging area is empty")
    meta: dict[str, Any] = {}
    prov = git_provenance(repo.root)
    if prov is not None:
        meta["git"] = prov
    meta.update(metadata or {})
    parents = (() if head is None else (head,)) + tuple(merging)
    c = Commit(tree, parents, author, author, message_text(message), meta)
    cid = put_durable(store, c)
    kind = "commit (merge)" if merging else "commit (initial)" if head is None else "commit"
    # the index (what -a staged) and its tree cache describe the index's own entries, so they
    # can be saved before HEAD moves: a full disk then fails the commit before it lands
    wt.index.save_trees()
    repo.update_head(cid, head, f"{kind}: {message.splitlines()[0]}")
    clear_merge_state(repo)
    return CommitInfo(cid, c)


def put_durable(store: ObjectStore, obj: Commit | Tag) -> ObjectId:
    """Store ``obj`` and flush, so that a ref may name the returned id; on failure the buffered
    objects are dropped and the error propagates."""
    try:
        oid = store.put(obj)
        store.flush()
    except BaseException:
        store.abort()
        raise
    return oid


def message_text(message: str) -> str:
    """A commit or tag message as stored: ending with one newline."""
    return message if message.endswith("\n") else message + "\n"


META_MAX_BYTES = 1 << 20
"""A ``--meta-file`` (or one ``--meta`` value) holds at most this many bytes."""
META_MAX_DEPTH = MAX_JSON_DEPTH
"""Metadata nests at most this many levels of objects and arrays; the metadata object itself is
level 1, so a ``--meta`` value has one level less. Commits deeper than this cannot be encoded."""


def parse_meta(pairs: list[str], meta_file: str | None) -> dict[str, Any]:
    """``--meta KEY=VALUE`` (VALUE parsed as JSON when it is JSON, else a string) and
    ``--meta-file FILE`` (a JSON object). Metadata that cannot be stored (nested deeper than
    :data:`META_MAX_DEPTH`, larger than :data:`META_MAX_BYTES`, a number out of range) raises
    RepositoryError, in one line."""
    out: dict[str, Any] = {}
    if meta_file:
        shown = _quote(meta_file)
        try:
            with open(meta_file, "rb") as f:
                raw = f.read(META_MAX_BYTES + 1)
        except OSError as exc:
            raise RepositoryError(
                f"cannot read metadata file {shown}: {exc.strerror or exc}"
            ) from None
        if len(raw) > META_MAX_BYTES:
            raise RepositoryError(
                f"metadata file {shown} is larger than {META_MAX_BYTES >> 20} MiB"
            )
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise RepositoryError(f"metadata file {shown} is not UTF-8 text") from None
        doc = _load_json(text, 1, f"metadata file {shown}")
        if not isinstance(doc, dict):
            raise RepositoryError(
                f"metadata file {shown} must hold a JSON object ({{...}}), not {_json_kind(doc)}"
            )
        out.update(doc)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise RepositoryError(f"invalid --meta {_quote(pair)}: expected KEY=VALUE")
        if len(value.encode("utf-8", "surrogatepass")) > META_MAX_BYTES:
            raise RepositoryError(f"--meta {_quote(key)}: value larger than 1 MiB")
        try:
            out[key] = _load_json(value, 2, f"--meta {_quote(key)}")
        except _NotJson:
            out[key] = value
        bad = _unstorable({key: out[key]})
        if bad:
            raise RepositoryError(f"--meta {_quote(key)}: {bad}")
    return out


class _NotJson(RepositoryError):
    """Text that is not JSON (a ``--meta`` value is then kept as a string)."""


def _quote(text: str) -> str:
    """``text`` for a one-line message: quoted, escaped, at most 80 characters of it."""
    return repr(text) if len(text) <= 80 else repr(text[:80]) + "..."


def _json_kind(value: Any) -> str:
    return "an array" if isinstance(value, list) else f"a {type(value).__name__} value"


def _load_json(text: str, level: int, where: str) -> Any:
    """``text``, a value at nesting ``level`` of the metadata (1: the metadata object), parsed
    as JSON. Checked before parsing for nesting deeper than :data:`META_MAX_DEPTH` (which could
    exhaust the parser's recursion) and after it for numbers a commit cannot hold. Text that is
    not JSON raises _NotJson; JSON that cannot be stored, RepositoryError."""
    depth = _json_depth(text) + level - 1
    if depth > META_MAX_DEPTH:
        raise RepositoryError(
            f"{where}: metadata nested {depth} levels deep (at most {META_MAX_DEPTH})"
        )

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        value = json.loads(text, parse_constant=no_constants)
    except (ValueError, RecursionError) as exc:
        raise _NotJson(f"{where}: not valid JSON: {exc}") from None
    bad = _unstorable(value)
    if bad:
        raise RepositoryError(f"{where}: {bad}")
    return value


_JSON_TOKENS = re.compile(r'[\[\]{}"\\]')


def _json_depth(text: str) -> int:
    """The deepest nesting of ``[`` and ``{`` in ``text``, outside strings (a linear scan)."""
    depth = deepest = 0
    in_string = False
    skip_to = 0  # the character after a backslash is escaped
    for m in _JSON_TOKENS.finditer(text):
        i = m.start()
        if i < skip_to:
            continue
        ch = m.group()
        if in_string:
            if ch == "\\":
                skip_to = i + 2
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _is_utf8(text: str) -> bool:
    """False for text with lone surrogates (undecodable bytes of a command line or file name)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unstorable(value: Any) -> str | None:
    """Why a parsed JSON value (depth already checked) cannot be stored in a commit, or None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return None if _is_utf8(value) else f"{_quote(value)} is not valid UTF-8"
    if isinstance(value, int):
        if not MIN_INT <= value <= MAX_INT:
            return (
                f"the number {_quote(str(value))} is out of the 64-bit range (quote it as a string)"
            )
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "a number out of range (quote it as a string)"
    if isinstance(value, dict):
        bad_key = next((k for k in value if not _is_utf8(k)), None)
        if bad_key is not None:
            return f"the key {_quote(bad_key)} is not valid UTF-8"
    for item in value.values() if isinstance(value, dict) else value:
        bad = _unstorable(item)
        if bad:
            return bad
    return None


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
    if old is not None and immutable_tag(repo, name) is not None:
        raise RefExists(
            f"tag {name!r} is published (tag.immutable = {immutable_tag(repo, name)}): "
            "it is never moved; delete it with 'tag -d -f' first if you must"
        )
    if message is not None:
        tagger = repo.identity()
        tag = Tag(
            target.id,
            target.type,
            name,
            tagger,
            message_text(message),
        )
        tid = put_durable(repo.store, tag)
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


def immutable_tag(repo: Repository, name: str) -> str | None:
    """The ``tag.immutable`` pattern (comma- or space-separated globs, e.g. ``v*, release-*``)
    that makes tag ``name`` published, or None. Published tags are deleted locally only with
    ``-f``, and ``push`` never moves nor deletes them on a remote, even with ``--force``."""
    import fnmatch

    raw = repo.config.get("tag.immutable")
    for pattern in (raw or "").replace(",", " ").split():
        if fnmatch.fnmatchcase(name, pattern):
            return pattern
    return None


def delete_tag(repo: Repository, name: str, *, force: bool = False) -> ObjectId:
    ref = tag_ref(name)
    old = repo.refs.resolve(ref)
    if old is None:
        raise UnknownRevision(f"tag {name!r} not found")
    pattern = immutable_tag(repo, name)
    if pattern is not None and not force:
        raise RefExists(
            f"tag {name!r} is published (tag.immutable = {pattern}): use -f to delete it here"
        )
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
