"""Revision syntax: ``HEAD``, ``@``, branches, tags, ``origin/main``, full ref names, id prefixes,
``REV~N``, ``REV^N``, ``REV^{tree}``/``^{commit}``, and ``REV:PATH``.

Names resolve in git's order: ``refs/<name>``, ``refs/tags/<name>``, ``refs/heads/<name>``,
``refs/remotes/<name>``; then a hex prefix of at least 4 characters.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dsrepo.dvcs.errors import UnknownRevision
from dsrepo.dvcs.refnames import refname_problem, show_name
from dsrepo.objects.errors import AmbiguousId, InvalidId, ObjectNotFound
from dsrepo.objects.ids import ObjectId, looks_like_hex
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import ObjectType, TreeEntry

if TYPE_CHECKING:
    from dsrepo.dvcs.bare import BareRepository

_PEELS = ("^{commit}", "^{tree}", "^{tag}", "^{}")
_ASCII_DIGITS = frozenset("0123456789")
MAX_STEPS = 10**18
"""What a ``~N`` or ``^N`` with more than 18 digits counts as: more steps than any history has
(an error), without converting thousands of digits into an int."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a revision names: an object, or (for ``REV:PATH``) an entry inside a tree."""

    id: ObjectId
    type: ObjectType
    entry: TreeEntry | None = None
    path: str | None = None


def resolve_name(repo: BareRepository, name: str) -> ObjectId:
    """The object a name or id prefix denotes (tags unpeeled)."""
    if not name:
        raise UnknownRevision("empty revision")
    if name in ("HEAD", "@"):
        oid = repo.refs.resolve("HEAD")
        if oid is None:
            raise UnknownRevision("HEAD does not point to a commit yet (no commits on this branch)")
        return oid
    if refname_problem(name) is None or name.startswith("refs/"):
        for candidate in (
            name,
            f"refs/{name}",
            f"refs/tags/{name}",
            f"refs/heads/{name}",
            f"refs/remotes/{name}",
        ):
            if (
                candidate.startswith("refs/")
                and candidate.count("/") >= 2
                and refname_problem(candidate) is None
            ):
                oid = repo.refs.resolve(candidate)
                if oid is not None:
                    return oid
    if looks_like_hex(name):
        try:
            return repo.store.resolve_prefix(name)
        except ObjectNotFound:
            pass
        except AmbiguousId as exc:
            raise UnknownRevision(str(exc)) from None
    elif re.fullmatch(r"[0-9a-fA-F]{1,3}", name):
        raise UnknownRevision(
            f"unknown revision {show_name(name)} (id prefixes need at least 4 characters)"
        )
    raise UnknownRevision(
        f"unknown revision {show_name(name)}: not a branch, tag, ref or object id"
    )


def peel(repo: BareRepository, oid: ObjectId, want: ObjectType) -> ObjectId:
    """Follow tags (and commit → tree) until an object of type ``want``."""
    for _ in range(64):
        t = repo.store.object_type(oid)
        if t == want:
            return oid
        if t == ObjectType.TAG:
            oid = repo.store.get_tag(oid).target
        elif t == ObjectType.COMMIT and want == ObjectType.TREE:
            oid = repo.store.get_commit(oid).tree
        else:
            raise UnknownRevision(f"{oid.hex()[:12]} is a {t.label}, not a {want.label}")
    raise UnknownRevision("tag chain too long")


def split_suffixes(rev: str) -> tuple[str, list[str]]:
    """``rev`` without its ``~N``, ``^N``, ``^{...}`` suffixes, and those suffixes in order.

    Read from the right, one suffix at a time, so the time is linear in the length of ``rev``
    (a regular expression anchored at the end retries from every position)."""
    ops: list[str] = []
    end = len(rev)
    while end:
        peel_op = next((p for p in _PEELS if rev.endswith(p, 0, end)), None)
        if peel_op is not None:
            ops.append(peel_op)
            end -= len(peel_op)
            continue
        start = end
        while start and rev[start - 1] in _ASCII_DIGITS:
            start -= 1
        if not start or rev[start - 1] not in "~^":
            break
        ops.append(rev[start - 1 : end])
        end = start - 1
    ops.reverse()
    return rev[:end], ops


def resolve(repo: BareRepository, rev: str) -> Resolved:
    """Resolve any revision expression."""
    try:
        return _resolve(repo, rev)
    except (ObjectNotFound, InvalidId) as exc:
        raise UnknownRevision(f"unknown revision {show_name(rev)}: {exc}") from None


def content_entry(repo: BareRepository, prefix: str) -> TreeEntry | None:
    """A file entry for the content id (or id prefix) of a file stored as several chunks.

    Such a content id (what ``ls-tree``, ``ls-files -l`` and ``hash-object`` print) is not an
    object: the object is the file's manifest, which records the content id. It is found by
    scanning the manifests only: the location index lists the objects of the meta packs
    (manifests, trees, commits, tags; never the chunks, which are nearly all objects) with their
    type, and each manifest is read to compare its content id. The cost grows with the number of
    chunked files, not with history or data; it is only paid when a hex name is no object id, ref
    or tag. ``None`` when no manifest has that content id; :class:`AmbiguousId` when several
    differ."""
    want = prefix.lower()
    found: dict[ObjectId, tuple[ObjectId, int]] = {}
    for oid in repo.store.ids_of_type(ObjectType.MANIFEST):
        manifest = repo.store.get_manifest(oid)
        if manifest.content_id.hex().startswith(want):
            found.setdefault(manifest.content_id, (oid, manifest.size))
    if len(found) > 1:
        shown = ", ".join(sorted(c.hex()[:16] for c in found))
        raise AmbiguousId(f"content id prefix {prefix!r} is ambiguous: {shown}")
    for content_id, (manifest_id, size) in found.items():
        return TreeEntry(content_id.hex(), EntryKind.FILE, size, content_id, manifest_id)
    return None


def _resolve(repo: BareRepository, rev: str) -> Resolved:
    path: str | None = None
    if ":" in rev:
        rev, path = rev.split(":", 1)
        rev = rev or "HEAD"
    base, ops = split_suffixes(rev)
    try:
        oid = resolve_name(repo, base)
    except UnknownRevision:
        # the content id of a chunked file names no object: its manifest records it
        if path is not None or ops or not looks_like_hex(base):
            raise
        try:
            entry = content_entry(repo, base)
        except AmbiguousId as exc:
            raise UnknownRevision(str(exc)) from None
        if entry is None:
            raise
        return Resolved(entry.id, ObjectType.CHUNK, entry)
    for op in ops:
        if op.startswith("^{"):
            kind = op[2:-1]
            if kind:
                oid = peel(repo, oid, ObjectType.from_label(kind))
            else:
                while repo.store.object_type(oid) == ObjectType.TAG:
                    oid = repo.store.get_tag(oid).target
            continue
        oid = peel(repo, oid, ObjectType.COMMIT)
        digits = op[1:]
        n = 1 if not digits else int(digits) if len(digits) <= 18 else MAX_STEPS
        if op[0] == "~":
            for _ in range(n):
                parents = repo.store.get_commit(oid).parents
                if not parents:
                    raise UnknownRevision(f"revision {show_name(rev)} goes past the first commit")
                oid = parents[0]
        elif n > 0:
            parents = repo.store.get_commit(oid).parents
            if n > len(parents):
                raise UnknownRevision(
                    f"revision {show_name(rev)}: commit has only {len(parents)} parent(s)"
                )
            oid = parents[n - 1]
    if path is None:
        return Resolved(oid, repo.store.object_type(oid))
    tree = peel(repo, oid, ObjectType.TREE)
    clean = path.strip("/")
    if not clean:
        return Resolved(tree, ObjectType.TREE, None, "")
    entry = repo.lookup_path(tree, clean)
    if entry is None:
        raise UnknownRevision(
            f"path {show_name(clean)} does not exist in {show_name(rev or 'HEAD')}"
        )
    type_ = ObjectType.TREE if entry.kind == EntryKind.TREE else ObjectType.CHUNK
    return Resolved(entry.id, type_, entry, clean)


def resolve_commit(repo: BareRepository, rev: str) -> ObjectId:
    r = resolve(repo, rev)
    if r.entry is not None:
        raise UnknownRevision(f"{show_name(rev)} names a path, not a commit")
    try:
        return peel(repo, r.id, ObjectType.COMMIT)
    except UnknownRevision:
        raise UnknownRevision(f"{show_name(rev)} is a {r.type.label}, not a commit") from None


def resolve_tree(repo: BareRepository, rev: str) -> ObjectId:
    r = resolve(repo, rev)
    if r.entry is not None:
        if r.entry.kind != EntryKind.TREE:
            raise UnknownRevision(f"{show_name(rev)} is a file, not a directory")
        return r.id
    return peel(repo, r.id, ObjectType.TREE)


def unreachable_from_refs(repo: BareRepository, commit: ObjectId) -> list[ObjectId]:
    """The ancestors of ``commit`` (itself included) that no ref reaches, newest first: what
    leaving a detached HEAD at ``commit`` leaves behind. The history the refs reach is walked
    lazily, only until each candidate is found (``checkout main~3``, then ``main``: 3 steps); a
    commit that really is left behind costs one walk of that history, as in git."""
    from dsrepo.dvcs.graph import ancestors
    from dsrepo.objects.ids import from_hex

    tips: list[str] = []
    for name in repo.refs.list():
        with contextlib.suppress(UnknownRevision):  # a ref to a tree or blob reaches no commit
            tips.append(resolve_commit(repo, name).hex())
    if commit.hex() in tips:
        return []
    reached: set[str] = set()
    walk = ancestors(repo.parents_of, tips)

    def is_reached(c: str) -> bool:
        if c in reached:
            return True
        for r in walk:
            reached.add(r)
            if r == c:
                return True
        return False

    lost: list[ObjectId] = []
    stack = [commit.hex()]
    seen = set(stack)
    while stack:
        c = stack.pop()
        if is_reached(c):
            continue
        lost.append(from_hex(c))
        for p in repo.parents_of(c):
            if p not in seen:
                seen.add(p)
                stack.append(p)
    return lost
