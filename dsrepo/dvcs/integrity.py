"""Type, size and limit checks along references: what fetch, clone and get accept from a remote,
and what fsck reports (docs/architecture.md, "Verification rules").

A hash proves that an object's bytes are what its id says. It does not prove that the object is
what the reference to it claims: a file entry may name a tree, a manifest may describe another
content or size, a chunk may be shorter than its entry says, a ref may name a chunk. Each check
here is between a referrer and what it names, and takes types and sizes from the store's
location index (no data is read to check a chunk). Tree paths are held to the limits of
:mod:`dsrepo.objects.model` (``MAX_TREE_DEPTH``, ``MAX_PATH_BYTES``, ``MAX_NAME_BYTES``).

The walk is the one reachability needs (push and fetch list what to send with it): a commit whose
parent is complete (in ``stop``: under a ref, hence already checked) is walked as a diff against
that parent's tree, so checking what a fetch received costs what changed, not the repository.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

from dsrepo.gcpause import pausing
from dsrepo.objects.errors import ObjectError, ObjectNotFound
from dsrepo.objects.ids import IdArray, ObjectId
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import (
    Commit,
    Manifest,
    ObjectType,
    Structured,
    Tag,
    Tree,
    TreeEntry,
    limit_problem,
)
from dsrepo.objects.store import ObjectStore
from dsrepo.objects.transfer import Located

MAX_TAG_CHAIN = 16
"""At most this many annotated tags in front of what a ref finally names."""
CHUNK_BATCH = 50_000
"""Where the data is already here, chunks are checked this many at a time as the walk goes."""

T = TypeVar("T", bound=Structured)
_BAD = (sys.maxsize, sys.maxsize)  # a tree already reported: never walked again


def show_path(path: str) -> str:
    """A path for a one-line message: quoted, a very long one shortened in the middle."""
    return repr(path if len(path) <= 100 else f"{path[:60]}...{path[-30:]}")


def _where(label: str, path: str) -> str:
    return f"{label} path {show_path(path)}" if path else label


def summary(problems: Sequence[str]) -> str:
    """The first problem, and how many more: one line for an error message."""
    more = len(problems) - 1
    return problems[0] + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


class Closure:
    """What roots (refs, HEAD, tips) lead to, checked as the walk meets it.

    :meth:`add_root` for each root, then :meth:`run`. Afterwards ``meta`` lists the commits,
    tags, trees and manifests walked (each once), ``chunks`` the data wanted (``data``, and
    ``want_data`` on the file's path), ``tips`` maps each root to the commit it peels to, and
    ``problems`` holds one line per problem (the object, the ref or path that led to it, what
    is wrong). Chunks are checked by :meth:`check_chunks`, separately: a fetch receives them
    after this walk. ``known`` (fsck) replaces the location index as the authority on what
    exists and its type; objects in ``skip`` were already reported (corrupt) and are passed over
    silently. ``source`` is where the walked objects came from (a remote): an object missing here
    but found there (a data chunk where a tree belongs) is named with its type, and a chunk not
    copied yet is checked against the type and size the source's index lists. An absent chunk
    is promised with ``missing_ok``, else a problem. ``batch`` (when the data is already here, as
    for fsck): check chunks as the walk goes, that many at a time, so memory stays bounded.
    Without ``keep_visited`` (push, fetch: they need ``meta`` and ``chunks`` only) the chunks
    do not enter ``visited``.
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        stop: set[str] | frozenset[str] = frozenset(),
        want_data: Callable[[str], bool] | None = None,
        data: bool = True,
        known: Mapping[ObjectId, ObjectType] | None = None,
        skip: set[ObjectId] | frozenset[ObjectId] = frozenset(),
        source: ObjectStore | None = None,
        missing_ok: bool = True,
        batch: int = 0,
        located: Located | None = None,
        keep_visited: bool = True,
    ) -> None:
        self.store = store
        self.located = located
        """When given, the location of every chunk found in ``store`` is added here (packed,
        ~58 bytes each): a copy that follows the walk need not look them up again."""
        self._keep_visited = keep_visited
        self.source = source
        self.stop = stop
        self.meta: list[tuple[ObjectId, ObjectType]] = []
        self.chunks = IdArray()
        self.problems: list[str] = []
        self.tips: dict[str, ObjectId] = {}
        self.visited: set[ObjectId] = set()
        self._want = want_data
        self._data = data
        self._known = known
        self._skip = skip
        self._roots: list[tuple[ObjectId, str, ObjectType]] = []
        self._peeled: dict[tuple[ObjectId, bool], ObjectId | None] = {}  # root → its commit
        self._done: set[ObjectId] = set()  # commits, tags, shards met
        self._trees: dict[ObjectId, tuple[int, int]] = {}  # deepest depth, longest path met
        self._tree_sizes: dict[ObjectId, int] = {}
        self._manifests: dict[ObjectId, bool] = {}  # manifest → is a readable manifest
        self._files: set[tuple[ObjectId, int, ObjectId]] = set()  # manifest entries checked
        self._pending: dict[tuple[ObjectId, int], tuple[str, str, str]] = {}
        self._promised: set[ObjectId] = set()
        self._missing_ok = missing_ok
        self._batch = batch

    # ------------------------------------------------------------ roots

    def add_root(self, where: str, oid: ObjectId, *, any_type: bool = False) -> None:
        """What ``where`` (a ref name, HEAD...) names must peel, through at most
        ``MAX_TAG_CHAIN`` annotated tags whose target types are true, to a commit (with
        ``any_type``, to any object); :meth:`run` then walks it. A root met before (a ref and
        its reflog) is checked once."""
        key = (oid, any_type)
        if key in self._peeled:
            commit = self._peeled[key]
            if commit is not None:
                self.tips[where] = commit
            return
        self._peeled[key] = None
        t: ObjectType | None = None
        for _ in range(MAX_TAG_CHAIN + 1):
            self.visited.add(oid)
            t = self._type(oid)
            if t is None:
                if oid not in self._skip:
                    self.problems.append(f"{where}: names object {oid.hex()}, which is missing")
                return
            if t != ObjectType.TAG:
                break
            tag = self._read(oid, Tag, where)
            if tag is None:
                return
            if oid not in self._done:
                self._done.add(oid)
                self.meta.append((oid, ObjectType.TAG))
            actual = self._type(tag.target)
            if actual is not None and actual != tag.target_type:
                self.problems.append(
                    f"{where}: tag {oid.hex()} says its target {tag.target.hex()} is a "
                    f"{tag.target_type.label}, it is a {actual.label}"
                )
                return
            oid = tag.target
        else:
            self.problems.append(f"{where}: more than {MAX_TAG_CHAIN} tags in a chain")
            return
        if t == ObjectType.COMMIT:
            self.tips[where] = self._peeled[key] = oid
        elif not any_type:
            self.problems.append(f"{where}: names {t.label} {oid.hex()}, not a commit")
            return
        self._roots.append((oid, where, t))

    @pausing
    def run(self) -> Closure:
        """Walk everything the roots added so far lead to."""
        commits: list[tuple[ObjectId, str]] = []
        for oid, where, t in self._roots:
            if t == ObjectType.COMMIT:
                commits.append((oid, where))
            elif t == ObjectType.TREE:
                self._walk_tree(oid, where, None)
            elif t == ObjectType.MANIFEST:
                self._manifest_ok(oid, where, "")
        self._roots.clear()
        commits.reverse()  # the first root is walked first
        while commits:
            cid, where = commits.pop()
            if cid in self._done or cid.hex() in self.stop:
                continue
            self._done.add(cid)
            if not self._expect(cid, ObjectType.COMMIT, where):
                continue
            c = self._read(cid, Commit, where)
            if c is None:
                continue
            self.meta.append((cid, ObjectType.COMMIT))
            label = f"commit {cid.hex()[:12]}"
            commits.extend((p, f"parent of {label}") for p in c.parents if p.hex() not in self.stop)
            base = next((p for p in c.parents if p.hex() in self.stop), None)
            self._walk_tree(c.tree, label, None if base is None else self._base_tree(base))
        return self

    # ------------------------------------------------------------ trees

    def _walk_tree(self, root: ObjectId, label: str, base: ObjectId | None) -> None:
        if root == base:
            return  # the same tree as a complete parent's
        # (tree, path, path bytes, depth, tree of the same path in the base, size its entry says)
        stack: list[tuple[ObjectId, str, int, int, ObjectId | None, int | None]] = [
            (root, "", 0, 0, base, None)
        ]
        while stack:
            tid, path, plen, depth, base_tid, size = stack.pop()
            where = _where(label, path) if path else f"{label} root tree"
            prev = self._trees.get(tid)
            if prev is not None:
                self._check_tree_size(tid, size, where)
                if prev[0] >= depth and prev[1] >= plen:
                    continue  # met already, as deep and with as long a path
                # met again deeper, or with a longer path: its paths are checked again
                self._trees[tid] = (max(prev[0], depth), max(prev[1], plen))
            else:
                self._trees[tid] = _BAD
                if not self._expect(tid, ObjectType.TREE, where):
                    continue
            entries = self._entries(tid, where)
            if entries is None:
                continue
            first = prev is None
            if first:
                self._trees[tid] = (depth, plen)
                self._tree_sizes[tid] = sum(e.size for e in entries)
                self.meta.append((tid, ObjectType.TREE))
                self._check_tree_size(tid, size, where)
            old = {} if base_tid is None else {b.name: b for b in self._base_entries(base_tid)}
            for e in entries:
                name_bytes = len(e.name.encode("utf-8"))
                epath = f"{path}/{e.name}" if path else e.name
                eplen = plen + name_bytes + (1 if path else 0)
                problem = limit_problem(name_bytes, eplen, depth + 1)
                if problem:
                    self.problems.append(f"{_where(label, epath)}: {problem}")
                    continue
                b = old.get(e.name)
                if b is not None and (b.kind, b.id, b.size, b.manifest) == (
                    e.kind,
                    e.id,
                    e.size,
                    e.manifest,
                ):
                    continue  # unchanged since a complete parent
                if e.kind == EntryKind.TREE:
                    sub_base = b.id if b is not None and b.kind == EntryKind.TREE else None
                    stack.append((e.id, epath, eplen, depth + 1, sub_base, e.size))
                else:
                    self._file(e, epath, label, first)

    def _entries(self, tid: ObjectId, where: str) -> tuple[TreeEntry, ...] | None:
        """A tree's entries, its shards checked (their type, count, first name and size)."""
        tree = self._read(tid, Tree, where)
        if tree is None:
            return None
        if not tree.shards:
            return tree.entries
        out: list[TreeEntry] = []
        for ref in tree.shards:
            if not self._expect(ref.id, ObjectType.TREE, f"{where} shard {ref.first_name!r}"):
                return None
            shard = self._read(ref.id, Tree, where)
            if shard is None:
                return None
            if (
                shard.shards
                or len(shard.entries) != ref.count
                or shard.entries[0].name != ref.first_name
                or sum(e.size for e in shard.entries) != ref.size
                or (out and out[-1].name.encode() >= shard.entries[0].name.encode())
            ):
                self.problems.append(
                    f"{where}: shard {ref.id.hex()} of tree {tid.hex()} does not match its "
                    "reference (count, first name, size or order)"
                )
                return None
            if ref.id not in self._done:
                self._done.add(ref.id)
                self.meta.append((ref.id, ObjectType.TREE))
            out.extend(shard.entries)
        return tuple(out)

    def _check_tree_size(self, tid: ObjectId, size: int | None, where: str) -> None:
        total = self._tree_sizes.get(tid)
        if size is not None and total is not None and total != size:
            self.problems.append(
                f"{where}: tree {tid.hex()} holds {total} bytes, its entry says {size}"
            )

    def _base_tree(self, commit: ObjectId) -> ObjectId | None:
        try:
            return self.store.get_commit(commit).tree
        except ObjectError:
            return None  # walk without a base: everything is checked

    def _base_entries(self, tid: ObjectId) -> tuple[TreeEntry, ...]:
        try:
            return self.store.tree_entries(tid)
        except ObjectError:
            return ()

    # ------------------------------------------------------------ files

    def _file(self, e: TreeEntry, path: str, label: str, first: bool) -> None:
        wanted = first and self._data and (self._want is None or self._want(path))
        if e.manifest is None:
            self._pend(e.id, e.size, label, path, "the entry says")
            if wanted:
                self.chunks.append(e.id)
            return
        key = (e.id, e.size, e.manifest)
        if key in self._files and not wanted:
            return  # the same file met at another path: checked there
        self._files.add(key)
        where = _where(label, path)
        if not self._manifest_ok(e.manifest, label, path):
            return
        m = self.store.get_manifest(e.manifest)
        if m.content_id != e.id:
            self.problems.append(
                f"{where}: manifest {e.manifest.hex()} describes content "
                f"{m.content_id.hex()}, the entry says {e.id.hex()}"
            )
        if m.size != e.size:
            self.problems.append(
                f"{where}: manifest {e.manifest.hex()} describes {m.size} bytes, "
                f"the entry says {e.size}"
            )
        if wanted:
            self.chunks.extend(cid for cid, _ in m.chunks)

    def _pend(self, cid: ObjectId, size: int, label: str, path: str, says: str) -> None:
        """Queue a check that ``cid`` is a chunk of ``size`` bytes (messages built on failure)."""
        self._pending.setdefault((cid, size), (label, path, says))
        if self._batch and len(self._pending) >= self._batch:
            self.check_chunks()

    def _manifest_ok(self, mid: ObjectId, label: str, path: str) -> bool:
        """Whether ``mid`` is a readable manifest whose lengths add up (checked once); its
        chunks join the pending chunk checks."""
        ok = self._manifests.get(mid)
        if ok is not None:
            return ok
        where = _where(label, path)
        m = (
            self._read(mid, Manifest, where)
            if self._expect(mid, ObjectType.MANIFEST, where)
            else None
        )
        ok = m is not None
        if m is not None:
            self.meta.append((mid, ObjectType.MANIFEST))
            if sum(n for _, n in m.chunks) != m.size:
                self.problems.append(
                    f"{where}: manifest {mid.hex()} lists chunks that do not add up to its size"
                )
                ok = False
            says = f"manifest {mid.hex()[:12]} says"
            for cid, n in m.chunks:
                self._pend(cid, n, label, path, says)
        self._manifests[mid] = ok
        return ok

    @pausing
    def check_chunks(self) -> list[str]:
        """Check the chunks named so far (by file entries, by manifests): each must be a chunk of
        the size its referrer says. An absent one is promised (``promised``) when
        ``missing_ok`` (a partial clone, the data a fetch did not want), else a problem. Returns
        the new problems (also added to ``problems``)."""
        pending, self._pending = self._pending, {}
        found = self._types_sizes(list({cid for cid, _ in pending}))
        new: list[str] = []
        for (cid, size), (label, path, says) in pending.items():
            if self._keep_visited:
                self.visited.add(cid)
            got = found.get(cid)
            if got is None:
                if cid in self._skip:
                    continue
                if self._missing_ok:
                    self._promised.add(cid)
                    continue
                problem = f"chunk {cid.hex()} is missing"
            elif got[0] != ObjectType.CHUNK:
                problem = f"names {got[0].label} {cid.hex()}, not a chunk"
            elif got[1] is not None and got[1] != size:
                problem = f"chunk {cid.hex()} is {got[1]} bytes, {says} {size}"
            else:
                continue
            new.append(f"{_where(label, path)}: {problem}")
        self.problems.extend(new)
        return new

    @property
    def absent_chunks(self) -> set[ObjectId]:
        """The absent chunks accepted as promised (``missing_ok``)."""
        return self._promised

    @property
    def promised(self) -> int:
        """How many distinct absent chunks were accepted as promised (``missing_ok``)."""
        return len(self._promised)

    # ------------------------------------------------------------ lookups

    def _types_sizes(self, oids: list[ObjectId]) -> dict[ObjectId, tuple[ObjectType, int | None]]:
        """Type and raw size of each stored object among ``oids`` (batched index queries)."""
        here = self.store.locate_many(oids)
        if self.located is not None:
            self.located.add(here.items())
        out: dict[ObjectId, tuple[ObjectType, int | None]] = {
            oid: (loc.type, loc.raw_size) for oid, loc in here.items()
        }
        rest = [oid for oid in oids if oid not in out]
        if rest and self.source is not None:
            # data not copied yet: the source's index says what will arrive (each object is
            # verified on arrival against that very type and size)
            for oid, loc in self.source.locate_many(rest).items():
                out[oid] = (loc.type, loc.raw_size)
            rest = [oid for oid in rest if oid not in out]
        if rest:  # written but not flushed yet: the store still holds them
            for oid in set(rest) - self.store.missing(rest):
                out[oid] = (self.store.object_type(oid), self.store.object_size(oid))
        if self._known is not None:
            known = self._known
            return {o: (known[o], out[o][1] if o in out else None) for o in oids if o in known}
        return out

    def _type(self, oid: ObjectId) -> ObjectType | None:
        if self._known is not None:
            return self._known.get(oid)
        try:
            return self.store.object_type(oid)
        except ObjectNotFound:
            return None

    def _source_type(self, oid: ObjectId) -> ObjectType | None:
        if self.source is None:
            return None
        try:
            return self.source.object_type(oid)
        except ObjectNotFound:
            return None

    def _expect(self, oid: ObjectId, wanted: ObjectType, where: str) -> bool:
        """Whether ``oid`` is stored as a ``wanted``; if not, a problem (unless already
        reported as corrupt)."""
        self.visited.add(oid)
        t = self._type(oid)
        if t is None:
            t = self._source_type(oid)
            if oid in self._skip:
                return False
            if t is None or t == wanted:
                self.problems.append(f"{where}: {wanted.label} {oid.hex()} is missing")
                return False
        if t != wanted:
            self.problems.append(f"{where}: names {t.label} {oid.hex()}, not a {wanted.label}")
            return False
        return True

    def _read(self, oid: ObjectId, cls: type[T], where: str) -> T | None:
        try:
            obj = self.store.get(oid)
        except ObjectError as exc:
            if oid not in self._skip:
                self.problems.append(f"{where}: {exc}")
            return None
        if not isinstance(obj, cls):
            self.problems.append(f"{where}: {obj.type.label} {oid.hex()} is not a {cls.__name__}")
            return None
        return obj


def check_closure(
    store: ObjectStore,
    roots: Iterable[tuple[str, ObjectId]],
    *,
    stop: set[str] | frozenset[str] = frozenset(),
    want_data: Callable[[str], bool] | None = None,
    data: bool = True,
    source: ObjectStore | None = None,
) -> Closure:
    """Walk and check what ``roots`` (name → object, each peeling to a commit) lead to, not
    below ``stop``, chunks included (against ``source``'s index for those not here yet; absent
    ones are promised)."""
    closure = Closure(
        store,
        stop=stop,
        want_data=want_data,
        data=data,
        source=source,
        batch=CHUNK_BATCH,
        keep_visited=False,
    )
    for where, oid in roots:
        closure.add_root(where, oid)
    closure.run()
    closure.check_chunks()
    return closure
