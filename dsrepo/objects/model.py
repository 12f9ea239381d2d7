"""The object model and its canonical encoding.

Five object types. A *chunk* is raw bytes. The others are structured: encoded as one msgpack array
whose first element is the format version (1), hashed in BLAKE3 derive-key mode (see ids.py).
Decoding is strict: the bytes must re-encode to exactly themselves (so every object has one encoding
and one id), the version must be known, names must be valid and entries unique and sorted.
docs/format.md specifies every byte.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import msgpack

from dsrepo.objects.errors import FormatError
from dsrepo.objects.ids import ID_BYTES, ObjectId, hash_data, hash_structured
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.names import name_problem

FORMAT_VERSION = 1
MAX_INT = 2**63 - 1
MIN_INT = -(2**63)


class ObjectType(enum.IntEnum):
    """Type codes, as stored in packs and pack indexes."""

    CHUNK = 0
    MANIFEST = 1
    TREE = 2
    COMMIT = 3
    TAG = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> ObjectType:
        try:
            return cls[label.upper()]
        except KeyError:
            raise FormatError(f"unknown object type {label!r}") from None


TYPE_BY_NUMBER: dict[int, ObjectType] = {int(t): t for t in ObjectType}
"""Stored type number -> ObjectType, for per-object loops (calling the enum costs ~1 µs)."""


@dataclass(frozen=True, slots=True)
class Signature:
    """Who and when: name, email, seconds since the epoch, UTC offset in minutes."""

    name: str
    email: str
    time: int
    tz_minutes: int = 0

    def format_tz(self) -> str:
        sign = "-" if self.tz_minutes < 0 else "+"
        m = abs(self.tz_minutes)
        return f"{sign}{m // 60:02d}{m % 60:02d}"

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """One name in a tree.

    ``id`` is the file's content id (plain BLAKE3 of its bytes) for files and executables, the
    link target's content id for symlinks, the subtree's id for trees. ``size`` is the file size,
    the target length, or for a tree the total size of the files under it. ``manifest`` is set only
    for files stored as several chunks: the id of the manifest listing them.
    """

    name: str
    kind: EntryKind
    size: int
    id: ObjectId
    manifest: ObjectId | None = None


_set_name, _set_kind, _set_size, _set_id, _set_manifest = (
    TreeEntry.__dict__[f].__set__ for f in ("name", "kind", "size", "id", "manifest")
)


def new_tree_entry(
    name: str, kind: EntryKind, size: int, oid: ObjectId, manifest: ObjectId | None
) -> TreeEntry:
    """``TreeEntry(...)`` three times as fast (0.4 against 1.1 us: a walk of a million entries
    builds a million): the dataclass ``__init__`` sets each field through
    ``object.__setattr__``, the slots' ``__set__`` stores directly; the result is identical."""
    e: TreeEntry = object.__new__(TreeEntry)
    _set_name(e, name)
    _set_kind(e, kind)
    _set_size(e, size)
    _set_id(e, oid)
    _set_manifest(e, manifest)
    return e


@dataclass(frozen=True, slots=True)
class Manifest:
    """A file cut into chunks: its content id, size, and the chunks in order."""

    content_id: ObjectId
    size: int
    chunks: tuple[tuple[ObjectId, int], ...]

    type = ObjectType.MANIFEST


@dataclass(frozen=True, slots=True)
class ShardRef:
    """A pointer from a sharded tree to one of its shards (itself a flat tree)."""

    first_name: str
    id: ObjectId
    count: int
    size: int


@dataclass(frozen=True, slots=True)
class Tree:
    """A directory: either a flat sorted list of entries, or (large directories) a sorted list of
    shards, each a flat tree holding a contiguous run of the entries."""

    entries: tuple[TreeEntry, ...] = ()
    shards: tuple[ShardRef, ...] = ()

    type = ObjectType.TREE

    @property
    def is_sharded(self) -> bool:
        return bool(self.shards)


@dataclass(frozen=True, slots=True)
class Commit:
    tree: ObjectId
    parents: tuple[ObjectId, ...]
    author: Signature
    committer: Signature
    message: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    type = ObjectType.COMMIT


@dataclass(frozen=True, slots=True)
class Tag:
    target: ObjectId
    target_type: ObjectType
    name: str
    tagger: Signature
    message: str

    type = ObjectType.TAG


Structured: TypeAlias = Manifest | Tree | Commit | Tag

# ---------------------------------------------------------------- encoding


MAX_JSON_DEPTH = 100
"""Metadata maps and lists nest at most this deep (the metadata map itself is level 1)."""


def _sorted_json(value: Any, where: str, depth: int = 0) -> Any:
    """Validate a JSON-compatible value and sort its maps (canonical form)."""
    if isinstance(value, list | tuple | dict):
        depth += 1
        if depth > MAX_JSON_DEPTH:
            raise FormatError(f"{where}: nested deeper than {MAX_JSON_DEPTH} levels")
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if not MIN_INT <= value <= MAX_INT:
            raise FormatError(f"{where}: integer out of the 64-bit range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FormatError(f"{where}: NaN and infinity are not JSON values")
        return value
    if isinstance(value, list | tuple):
        return [_sorted_json(v, where, depth) for v in value]
    if isinstance(value, dict):
        out = {}
        for k in sorted(value, key=lambda k: k.encode("utf-8") if isinstance(k, str) else b""):
            if not isinstance(k, str):
                raise FormatError(f"{where}: map keys must be strings")
            out[k] = _sorted_json(value[k], where, depth)
        return out
    raise FormatError(f"{where}: {type(value).__name__} is not a JSON-compatible value")


def _sig(s: Signature) -> list[Any]:
    for text in (s.name, s.email):
        if any(ch in text for ch in "<>\n\0"):
            raise FormatError(f"invalid identity {text!r}: contains '<', '>', newline or NUL")
    return [s.name, s.email, s.time, s.tz_minutes]


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True, strict_types=False)  # type: ignore[no-any-return]


def _entry(e: TreeEntry) -> list[Any]:
    item: list[Any] = [e.name, int(e.kind), e.size, bytes(e.id)]
    if e.manifest is not None:
        item.append(bytes(e.manifest))
    return item


def encode(obj: Structured) -> bytes:
    """Canonical bytes of a structured object."""
    if isinstance(obj, Manifest):
        body: list[Any] = [
            FORMAT_VERSION,
            bytes(obj.content_id),
            obj.size,
            b"".join(cid for cid, _ in obj.chunks),
            [n for _, n in obj.chunks],
        ]
    elif isinstance(obj, Tree):
        if obj.shards:
            body = [
                FORMAT_VERSION,
                1,
                [[s.first_name, bytes(s.id), s.count, s.size] for s in obj.shards],
            ]
        else:
            body = [FORMAT_VERSION, 0, [_entry(e) for e in obj.entries]]
    elif isinstance(obj, Commit):
        body = [
            FORMAT_VERSION,
            bytes(obj.tree),
            [bytes(p) for p in obj.parents],
            _sig(obj.author),
            _sig(obj.committer),
            obj.message,
            _sorted_json(dict(obj.metadata), "commit metadata"),
        ]
    elif isinstance(obj, Tag):
        body = [
            FORMAT_VERSION,
            bytes(obj.target),
            int(obj.target_type),
            obj.name,
            _sig(obj.tagger),
            obj.message,
        ]
    else:  # pragma: no cover - guarded by types
        raise TypeError(f"not a structured object: {obj!r}")
    return _pack(body)


def object_id(obj: Structured) -> ObjectId:
    return hash_structured(obj.type.label, encode(obj))


def hash_object(type_: ObjectType, raw: bytes) -> ObjectId:
    """The id of ``raw`` stored as ``type_`` (chunks hash plainly, the rest in their domain)."""
    if type_ == ObjectType.CHUNK:
        return hash_data(raw)
    return hash_structured(type_.label, raw)


# ---------------------------------------------------------------- decoding


def _fail(type_: ObjectType, why: str) -> FormatError:
    return FormatError(f"malformed {type_.label}: {why}")


def _id(value: Any, type_: ObjectType, what: str) -> ObjectId:
    if not isinstance(value, bytes) or len(value) != ID_BYTES:
        raise _fail(type_, f"{what} is not a {ID_BYTES}-byte id")
    return ObjectId(value)


def _int(value: Any, type_: ObjectType, what: str, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise _fail(type_, f"{what} is not an integer >= {minimum}")
    return value


def _str(value: Any, type_: ObjectType, what: str) -> str:
    if not isinstance(value, str):
        raise _fail(type_, f"{what} is not a string")
    return value


def _parse_sig(value: Any, type_: ObjectType, what: str) -> Signature:
    if not isinstance(value, list) or len(value) != 4:
        raise _fail(type_, f"{what} is not [name, email, time, tz]")
    name, email, time_, tz = value
    if (
        not isinstance(time_, int)
        or not isinstance(tz, int)
        or isinstance(time_, bool)  # bool is an int subclass and would re-encode as itself
        or isinstance(tz, bool)
        or not MIN_INT <= time_ <= MAX_INT
        or not -1440 < tz < 1440
    ):
        raise _fail(type_, f"{what} has a bad time or time zone")
    return Signature(_str(name, type_, what), _str(email, type_, what), time_, tz)


def _check_name(name: Any, type_: ObjectType) -> str:
    if not isinstance(name, str):
        raise _fail(type_, "entry name is not a string")
    problem = name_problem(name)
    if problem:
        raise _fail(type_, problem)
    return name


_KINDS = {int(k): k for k in EntryKind}
_FILE_KINDS = (EntryKind.FILE, EntryKind.EXECUTABLE)


def _plain_name(name: Any) -> bool:
    """True for the common names that need no further check: ASCII, 1..1024 characters, not
    starting with ``.`` or ``d``/``D`` (so not reserved, not ``.`` nor ``..``), no ``/``, ``\\``
    or NUL. Any other name goes through :func:`_check_name`."""
    return (
        type(name) is str
        and name.isascii()
        and 0 < len(name) <= 1024
        and name[0] not in ".dD"
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
    )


def _parse_entries(items: Any, type_: ObjectType) -> tuple[TreeEntry, ...]:
    """A flat tree's entries (about 1 µs each: a million-file checkout decodes them all). The
    checks are those of the general rules, ordered for the common case; the caller still
    compares the re-encoded tree with its bytes."""
    if not isinstance(items, list):
        raise _fail(type_, "entries is not a list")
    out: list[TreeEntry] = []
    append = out.append
    make = new_tree_entry
    kinds = _KINDS
    prev: bytes | None = None
    for item in items:
        if type(item) is not list or len(item) not in (4, 5):
            raise _fail(type_, "entry is not [name, kind, size, id(, manifest)]")
        name = item[0]
        if not _plain_name(name):
            _check_name(name, type_)
        key = name.encode("utf-8")
        if prev is not None and key <= prev:
            raise _fail(
                type_, f"entry {name!r} is " + ("duplicated" if key == prev else "out of order")
            )
        prev = key
        try:
            kind = kinds.get(item[1])
        except TypeError:  # unhashable
            kind = None
        if kind is None:
            raise _fail(type_, f"entry {name!r} has unknown kind {item[1]!r}")
        manifest = _id(item[4], type_, "manifest") if len(item) == 5 else None
        if manifest is not None and kind not in _FILE_KINDS:
            raise _fail(type_, f"entry {name!r}: only files have manifests")
        size, oid = item[2], item[3]
        if type(size) is not int or size < 0:
            size = _int(size, type_, "size")
        if type(oid) is not bytes or len(oid) != ID_BYTES:
            oid = _id(oid, type_, "id")
        append(make(name, kind, size, ObjectId(oid), manifest))
    return tuple(out)


def decode(type_: ObjectType, raw: bytes) -> Structured:
    """Parse canonical bytes of a structured object; raise FormatError naming what is wrong."""
    try:
        body = msgpack.unpackb(raw, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise _fail(type_, f"not msgpack ({exc.__class__.__name__})") from None
    if not isinstance(body, list) or not body:
        raise _fail(type_, "not a non-empty array")
    if body[0] != FORMAT_VERSION or isinstance(body[0], bool):
        raise _fail(type_, f"unknown format version {body[0]!r}")
    obj = _decode_body(type_, body)
    if encode(obj) != raw:
        raise _fail(type_, "not in canonical form")
    return obj


def _decode_body(type_: ObjectType, body: list[Any]) -> Structured:
    if type_ == ObjectType.MANIFEST:
        if len(body) != 5:
            raise _fail(type_, "wrong field count")
        ids, lengths = body[3], body[4]
        if not isinstance(ids, bytes) or not isinstance(lengths, list):
            raise _fail(type_, "chunk list is malformed")
        if len(ids) != ID_BYTES * len(lengths):
            raise _fail(type_, "chunk ids and lengths differ in count")
        chunks = tuple(
            (ObjectId(ids[i * ID_BYTES : (i + 1) * ID_BYTES]), _int(n, type_, "chunk length", 1))
            for i, n in enumerate(lengths)
        )
        size = _int(body[2], type_, "size")
        if sum(n for _, n in chunks) != size:
            raise _fail(type_, "chunk lengths do not add up to the size")
        return Manifest(_id(body[1], type_, "content id"), size, chunks)
    if type_ == ObjectType.TREE:
        if len(body) != 3 or body[1] not in (0, 1):
            raise _fail(type_, "wrong field count or form")
        if body[1] == 0:
            return Tree(entries=_parse_entries(body[2], type_))
        return Tree(shards=_parse_shards(body[2], type_))
    if type_ == ObjectType.COMMIT:
        if len(body) != 7:
            raise _fail(type_, "wrong field count")
        parents = body[2]
        if not isinstance(parents, list):
            raise _fail(type_, "parents is not a list")
        pids = tuple(_id(p, type_, "parent") for p in parents)
        if len(set(pids)) != len(pids):
            raise _fail(type_, "duplicate parent")
        meta = body[6]
        if not isinstance(meta, dict):
            raise _fail(type_, "metadata is not a map")
        return Commit(
            _id(body[1], type_, "tree"),
            pids,
            _parse_sig(body[3], type_, "author"),
            _parse_sig(body[4], type_, "committer"),
            _str(body[5], type_, "message"),
            meta,
        )
    if type_ == ObjectType.TAG:
        if len(body) != 6:
            raise _fail(type_, "wrong field count")
        try:
            target_type = ObjectType(body[2])
        except ValueError:
            raise _fail(type_, f"unknown target type {body[2]!r}") from None
        return Tag(
            _id(body[1], type_, "target"),
            target_type,
            _str(body[3], type_, "name"),
            _parse_sig(body[4], type_, "tagger"),
            _str(body[5], type_, "message"),
        )
    raise _fail(type_, "not a structured type")


def _parse_shards(items: Any, type_: ObjectType) -> tuple[ShardRef, ...]:
    if not isinstance(items, list) or len(items) < 2:
        raise _fail(type_, "a sharded tree needs at least two shards")
    out: list[ShardRef] = []
    prev: bytes | None = None
    for item in items:
        if not isinstance(item, list) or len(item) != 4:
            raise _fail(type_, "shard is not [first name, id, count, size]")
        name = _check_name(item[0], type_)
        key = name.encode("utf-8")
        if prev is not None and key <= prev:
            raise _fail(type_, "shards out of order")
        prev = key
        out.append(
            ShardRef(
                name,
                _id(item[1], type_, "shard id"),
                _int(item[2], type_, "shard count", 1),
                _int(item[3], type_, "shard size"),
            )
        )
    if sum(s.count for s in out) <= SHARD_THRESHOLD:
        raise _fail(type_, f"a tree of at most {SHARD_THRESHOLD} entries must not be sharded")
    return tuple(out)


# ---------------------------------------------------------------- trees

SHARD_THRESHOLD = 4096
"""Directories with more entries than this are stored as shards."""
SHARD_DIVISOR = 1024
"""A shard ends after an entry whose name hash is 0 modulo this (mean shard size)."""

# Limits on the paths a tree may hold, checked when trees are built (commit, merge) and when they
# are received (fetch, clone, get) or checked (fsck). Decoding accepts names up to 1024 bytes
# (names.py); these are tighter, so every path can exist on common filesystems, and deep enough
# trees cannot exhaust anything that walks them. docs/format.md §5.2 documents them.
MAX_TREE_DEPTH = 256
"""At most this many components in a path (an entry of the root tree is at depth 1)."""
MAX_PATH_BYTES = 4096
"""At most this many bytes of UTF-8 in a path (its names joined by ``/``)."""
MAX_NAME_BYTES = 255
"""At most this many bytes of UTF-8 in one entry name."""


def limit_problem(name_bytes: int, path_bytes: int, depth: int) -> str | None:
    """Why an entry with a name of ``name_bytes``, at a path of ``path_bytes`` and ``depth``
    components, exceeds the limits; None when it does not."""
    if name_bytes > MAX_NAME_BYTES:
        return f"name is {name_bytes} bytes long (at most {MAX_NAME_BYTES})"
    if depth > MAX_TREE_DEPTH:
        return f"path is more than {MAX_TREE_DEPTH} levels deep"
    if path_bytes > MAX_PATH_BYTES:
        return f"path is {path_bytes} bytes long (at most {MAX_PATH_BYTES})"
    return None


def path_limit_problem(path: str) -> str | None:
    """:func:`limit_problem` for a whole path (names joined by ``/``)."""
    if len(path) * 4 <= MAX_NAME_BYTES:  # the common case: nothing to count
        return None
    names = path.split("/")
    longest = max(len(n.encode("utf-8", "surrogatepass")) for n in names)
    return limit_problem(longest, len(path.encode("utf-8", "surrogatepass")), len(names))


def entry_sort_key(e: TreeEntry) -> bytes:
    return e.name.encode("utf-8")


def _ends_shard(name: str) -> bool:
    return int.from_bytes(hash_data(name.encode("utf-8"))[:4], "little") % SHARD_DIVISOR == 0


def build_tree(entries: Sequence[TreeEntry]) -> tuple[Tree, list[Tree]]:
    """The canonical tree for ``entries`` (any order) and the shard trees it references.

    Shard boundaries depend only on entry names (content-defined), so adding or changing one entry
    rewrites one shard plus the small top-level list, never the whole directory.
    """
    ordered = sorted(entries, key=entry_sort_key)
    for e in ordered:  # never store a tree that decode() would refuse
        problem = None if _plain_name(e.name) else name_problem(e.name)
        if problem:
            raise FormatError(f"cannot store entry: {problem}")
    for a, b in itertools.pairwise(ordered):
        if a.name == b.name:
            raise FormatError(f"malformed tree: entry {a.name!r} is duplicated")
    if len(ordered) <= SHARD_THRESHOLD:
        return Tree(entries=tuple(ordered)), []
    shards: list[Tree] = []
    run: list[TreeEntry] = []
    for e in ordered:
        run.append(e)
        if _ends_shard(e.name):
            shards.append(Tree(entries=tuple(run)))
            run = []
    if run:
        shards.append(Tree(entries=tuple(run)))
    if len(shards) == 1:  # pathological: no boundary at all; split evenly instead
        half = len(ordered) // 2
        shards = [Tree(entries=tuple(ordered[:half])), Tree(entries=tuple(ordered[half:]))]
    refs = tuple(
        ShardRef(s.entries[0].name, object_id(s), len(s.entries), sum(e.size for e in s.entries))
        for s in shards
    )
    return Tree(shards=refs), shards


def tree_size(tree: Tree) -> int:
    if tree.shards:
        return sum(s.size for s in tree.shards)
    return sum(e.size for e in tree.entries)


def iter_ids(obj: Structured) -> Iterator[tuple[ObjectId, ObjectType]]:
    """The objects ``obj`` refers to directly (for reachability walks)."""
    if isinstance(obj, Manifest):
        for cid, _ in obj.chunks:
            yield cid, ObjectType.CHUNK
    elif isinstance(obj, Tree):
        for s in obj.shards:
            yield s.id, ObjectType.TREE
        for e in obj.entries:
            if e.kind == EntryKind.TREE:
                yield e.id, ObjectType.TREE
            elif e.manifest is not None:
                yield e.manifest, ObjectType.MANIFEST
            else:
                yield e.id, ObjectType.CHUNK
    elif isinstance(obj, Commit):
        yield obj.tree, ObjectType.TREE
        for p in obj.parents:
            yield p, ObjectType.COMMIT
    elif isinstance(obj, Tag):
        yield obj.target, obj.target_type
