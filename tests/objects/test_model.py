"""The object model: round trips, canonical form, strict decoding, tree sharding."""

from __future__ import annotations

import random
import re
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dsrepo.objects import model
from dsrepo.objects.errors import FormatError
from dsrepo.objects.ids import ObjectId, hash_data
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import (
    MAX_INT,
    MAX_JSON_DEPTH,
    MIN_INT,
    SHARD_THRESHOLD,
    Commit,
    Manifest,
    ObjectType,
    ShardRef,
    Signature,
    Structured,
    Tag,
    Tree,
    TreeEntry,
    build_tree,
    decode,
    encode,
    iter_ids,
    object_id,
    tree_size,
)
from dsrepo.objects.names import name_problem, validate_name

FUZZ_HEAVY = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STRUCTURED = (ObjectType.MANIFEST, ObjectType.TREE, ObjectType.COMMIT, ObjectType.TAG)

# ---------------------------------------------------------------- strategies

ids = st.binary(min_size=32, max_size=32).map(ObjectId)
text = st.text(st.characters(codec="utf-8"), max_size=30)
names = st.one_of(
    st.sampled_from(
        ["a", "A", "z", "_", "-", "...", ".a", "a.", "\u00e9", "\u00e9\u0301", "\U0001f600"]
    ),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=20),
).filter(lambda n: name_problem(n) is None)
identity = st.text(st.characters(codec="utf-8", exclude_characters="<>\n\0"), max_size=20)
int64 = st.one_of(
    st.sampled_from(
        [MIN_INT, MIN_INT + 1, -(2**31) - 1, -(2**31), -129, -128, -33, -32, -1, 0, 1, 127, 128]
    )
    | st.sampled_from([255, 256, 65535, 65536, 2**32 - 1, 2**32, MAX_INT - 1, MAX_INT]),
    st.integers(MIN_INT, MAX_INT),
)
sizes = st.one_of(st.sampled_from([0, 1, 127, 128, 2**32, 2**64 - 1]), st.integers(0, 2**64 - 1))
signatures = st.builds(Signature, identity, identity, int64, st.integers(-1439, 1439))
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    int64,
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 0.1, 1e308, -1e-308, 5e-324]),
    text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)
metadata = st.dictionaries(text, json_values, max_size=5)


@st.composite
def entries(draw: st.DrawFn, max_size: int = 12) -> tuple[TreeEntry, ...]:
    chosen = draw(st.lists(names, max_size=max_size, unique=True))
    out = []
    for name in sorted(chosen, key=lambda n: n.encode("utf-8")):
        kind = draw(st.sampled_from(EntryKind))
        manifest = None
        if kind in (EntryKind.FILE, EntryKind.EXECUTABLE):
            manifest = draw(st.none() | ids)
        out.append(TreeEntry(name, kind, draw(sizes), draw(ids), manifest))
    return tuple(out)


@st.composite
def shard_refs(draw: st.DrawFn) -> tuple[ShardRef, ...]:
    chosen = draw(st.lists(names, min_size=2, max_size=8, unique=True))
    return tuple(
        ShardRef(n, draw(ids), draw(st.integers(2049, 2**32)), draw(sizes))  # > 4096 in all
        for n in sorted(chosen, key=lambda n: n.encode("utf-8"))
    )


@st.composite
def manifests(draw: st.DrawFn) -> Manifest:
    chunks = tuple(draw(st.lists(st.tuples(ids, st.integers(1, 2**40)), max_size=10)))
    return Manifest(draw(ids), sum(n for _, n in chunks), chunks)


trees = st.one_of(st.builds(Tree, entries=entries()), st.builds(Tree, shards=shard_refs()))
commits = st.builds(
    Commit,
    ids,
    st.lists(ids, max_size=4, unique=True).map(tuple),
    signatures,
    signatures,
    text,
    metadata,
)
tags = st.builds(Tag, ids, st.sampled_from(ObjectType), text, signatures, text)
structured: st.SearchStrategy[Structured] = st.one_of(manifests(), trees, commits, tags)

# ---------------------------------------------------------------- round trips


@FUZZ
@given(structured)
def test_round_trip(obj: Structured) -> None:
    raw = encode(obj)
    back = decode(obj.type, raw)
    assert back == obj
    assert encode(back) == raw
    assert object_id(back) == object_id(obj)


@FUZZ_HEAVY
@given(metadata, st.randoms(use_true_random=False))
def test_metadata_key_order_does_not_change_the_id(
    meta: dict[str, Any], rnd: random.Random
) -> None:
    def shuffled(value: Any) -> Any:
        if isinstance(value, dict):
            keys = list(value)
            rnd.shuffle(keys)
            return {k: shuffled(value[k]) for k in keys}
        if isinstance(value, list):
            return [shuffled(v) for v in value]
        return value

    sig = Signature("a", "b", 0, 0)
    a = Commit(ObjectId(bytes(32)), (), sig, sig, "m", meta)
    b = Commit(ObjectId(bytes(32)), (), sig, sig, "m", shuffled(meta))
    assert encode(a) == encode(b)
    assert object_id(a) == object_id(b)


def test_object_id_is_stable_and_type_separated() -> None:
    sig = Signature("Ada", "ada@example.com", 1, -60)
    c = Commit(ObjectId(bytes(32)), (), sig, sig, "msg\n", {"k": [1, 2.5]})
    assert object_id(c) == object_id(decode(ObjectType.COMMIT, encode(c)))
    assert object_id(c) == model.hash_object(ObjectType.COMMIT, encode(c))
    assert object_id(c) != hash_data(encode(c))
    assert object_id(c) != model.hash_object(ObjectType.TAG, encode(c))
    assert model.hash_object(ObjectType.CHUNK, b"x") == hash_data(b"x")


def test_metadata_tuple_encodes_as_list() -> None:
    sig = Signature("a", "b", 0, 0)
    a = Commit(ObjectId(bytes(32)), (), sig, sig, "", {"k": (1, 2)})
    b = Commit(ObjectId(bytes(32)), (), sig, sig, "", {"k": [1, 2]})
    assert encode(a) == encode(b)


def test_metadata_map_keys_sort_by_utf8_bytes() -> None:
    # By code point "\uff01" < "\U0001f600"; by UTF-8 bytes too (ef.. < f0..). "Z" < "a" < "é".
    sig = Signature("a", "b", 0, 0)
    c = Commit(
        ObjectId(bytes(32)), (), sig, sig, "", {"\U0001f600": 1, "\uff01": 2, "a": 3, "Z": 4}
    )
    meta = msgpack.unpackb(encode(c))[6]
    assert list(meta) == ["Z", "a", "\uff01", "\U0001f600"]


def test_iter_ids() -> None:
    a, b, c = ObjectId(b"a" * 32), ObjectId(b"b" * 32), ObjectId(b"c" * 32)
    tree = Tree(
        entries=(
            TreeEntry("d", EntryKind.TREE, 0, a),
            TreeEntry("f", EntryKind.FILE, 1, b),
            TreeEntry("g", EntryKind.FILE, 9, b, c),
        )
    )
    assert list(iter_ids(tree)) == [
        (a, ObjectType.TREE),
        (b, ObjectType.CHUNK),
        (c, ObjectType.MANIFEST),
    ]
    sig = Signature("a", "b", 0, 0)
    assert list(iter_ids(Commit(a, (b, c), sig, sig, ""))) == [
        (a, ObjectType.TREE),
        (b, ObjectType.COMMIT),
        (c, ObjectType.COMMIT),
    ]
    assert list(iter_ids(Tag(a, ObjectType.TREE, "t", sig, ""))) == [(a, ObjectType.TREE)]
    assert list(iter_ids(Manifest(a, 3, ((b, 1), (c, 2))))) == [
        (b, ObjectType.CHUNK),
        (c, ObjectType.CHUNK),
    ]


# ---------------------------------------------------------------- rejections

ID = bytes(32)
SIG = ["n", "e", 0, 0]


def pk(body: Any, **kw: Any) -> bytes:
    return msgpack.packb(body, use_bin_type=True, **kw)  # type: ignore[no-any-return]


def reject(type_: ObjectType, raw: bytes, message: str) -> None:
    with pytest.raises(FormatError) as info:
        decode(type_, raw)
    assert str(info.value) == message


def commit_body(**over: Any) -> list[Any]:
    body: list[Any] = [1, ID, [], SIG, SIG, "m", {}]
    fields = ["version", "tree", "parents", "author", "committer", "message", "metadata"]
    for k, v in over.items():
        body[fields.index(k)] = v
    return body


def test_valid_baselines_decode() -> None:
    """The hand-built bodies the rejection tests perturb are themselves valid."""
    decode(ObjectType.COMMIT, pk(commit_body()))
    decode(ObjectType.TREE, pk([1, 0, [["a", 0, 1, ID], ["b", 0, 1, ID]]]))
    decode(ObjectType.TREE, pk([1, 1, [["a", ID, 4000, 0], ["b", ID, 97, 0]]]))
    with pytest.raises(FormatError, match="at most 4096 entries must not be sharded"):
        decode(ObjectType.TREE, pk([1, 1, [["a", ID, 4000, 0], ["b", ID, 96, 0]]]))
    decode(ObjectType.MANIFEST, pk([1, ID, 3, ID * 2, [1, 2]]))
    decode(ObjectType.TAG, pk([1, ID, 3, "v1", SIG, "m"]))


def test_int_in_a_wider_encoding_is_not_canonical() -> None:
    good = pk([1, ID, 3, ID * 2, [1, 2]])
    # size 3 as uint8 (cc 03) instead of a positive fixint (03)
    wide = good.replace(bytes([0x03, 0xC4, 0x40]), bytes([0xCC, 0x03, 0xC4, 0x40]))
    assert wide != good and msgpack.unpackb(wide) == msgpack.unpackb(good)
    reject(ObjectType.MANIFEST, wide, "malformed manifest: not in canonical form")
    # a large time as uint64 instead of uint32
    raw = pk(commit_body(author=["n", "e", 2**32 - 1, 0]))
    wide = raw.replace(bytes([0xCE]) + b"\xff" * 4, bytes([0xCF]) + bytes(4) + b"\xff" * 4)
    reject(ObjectType.COMMIT, wide, "malformed commit: not in canonical form")
    # a negative number as int64 although it fits a negative fixint
    raw = pk(commit_body(author=["n", "e", 0, -1]))
    wide = raw.replace(bytes([0x00, 0xFF]), bytes([0x00, 0xD3]) + b"\xff" * 8)
    reject(ObjectType.COMMIT, wide, "malformed commit: not in canonical form")


def test_other_non_canonical_encodings() -> None:
    # unsorted metadata map (msgpack keeps insertion order)
    raw = pk(commit_body(metadata={"b": 1, "a": 2}))
    reject(ObjectType.COMMIT, raw, "malformed commit: not in canonical form")
    # unsorted nested map
    raw = pk(commit_body(metadata={"a": {"y": 1, "x": 2}}))
    reject(ObjectType.COMMIT, raw, "malformed commit: not in canonical form")
    # float32 instead of float64
    raw = pk(commit_body(metadata={"a": 0.5}), use_single_float=True)
    assert bytes([0xCA]) in raw
    reject(ObjectType.COMMIT, raw, "malformed commit: not in canonical form")
    # a str where bytes (an id) belong: old msgpack raw type
    raw = msgpack.packb(commit_body(message=b"m"), use_bin_type=False)
    reject(ObjectType.COMMIT, raw, "malformed commit: tree is not a 32-byte id")
    # a string in str16 although it fits fixstr
    raw = pk(commit_body(message="m"))
    wide = raw.replace(bytes([0xA1]) + b"m", bytes([0xDA, 0x00, 0x01]) + b"m")
    reject(ObjectType.COMMIT, wide, "malformed commit: not in canonical form")
    # a duplicated metadata key (the decoder keeps one; re-encoding differs)
    raw = pk(commit_body(metadata={"a": 1}))
    dup = raw[:-4] + bytes([0x82]) + raw[-3:] + raw[-3:]
    assert raw[-4] == 0x81
    reject(ObjectType.COMMIT, dup, "malformed commit: not in canonical form")
    # an array32 header although the array is short
    raw = pk([1, 0, []])
    reject(
        ObjectType.TREE, b"\xdd\x00\x00\x00\x03" + raw[1:], "malformed tree: not in canonical form"
    )
    # bool where an integer belongs
    reject(
        ObjectType.TREE, pk([1, 0, [["a", True, 1, ID]]]), "malformed tree: not in canonical form"
    )
    reject(ObjectType.TREE, pk([1, False, []]), "malformed tree: not in canonical form")


def test_unknown_version() -> None:
    reject(
        ObjectType.COMMIT, pk(commit_body(version=2)), "malformed commit: unknown format version 2"
    )
    reject(ObjectType.TREE, pk([0, 0, []]), "malformed tree: unknown format version 0")
    reject(ObjectType.TREE, pk([True, 0, []]), "malformed tree: unknown format version True")
    reject(ObjectType.TAG, pk(["1"]), "malformed tag: unknown format version '1'")


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "empty name"),
        (".", "name '.' is not allowed"),
        ("..", "name '..' is not allowed"),
        ("a/b", "name 'a/b' contains '/', '\\' or NUL"),
        ("a\\b", "name 'a\\\\b' contains '/', '\\' or NUL"),
        ("a\0b", "name 'a\\x00b' contains '/', '\\' or NUL"),
        (".dsrepo", "name '.dsrepo' is reserved (the repository folder)"),
        (".DSREPO", "name '.DSREPO' is reserved (the repository folder)"),
        (".DsRepo", "name '.DsRepo' is reserved (the repository folder)"),
        ("\u200d.dsrepo", "name '\\u200d.dsrepo' is reserved (the repository folder)"),
        (".dsr\u00adepo", "name '.dsr\\xadepo' is reserved (the repository folder)"),
        ("\uff0edsrepo", "name '\uff0edsrepo' is reserved (the repository folder)"),
        ("x" * 1025, f"name {'x' * 40!r}... is longer than 1024 bytes"),
    ],
)
def test_bad_names(name: str, problem: str) -> None:
    reject(ObjectType.TREE, pk([1, 0, [[name, 0, 0, ID]]]), f"malformed tree: {problem}")
    shards = [[name, ID, 1, 0], ["\U0010ffff", ID, 1, 0]]
    reject(ObjectType.TREE, pk([1, 1, shards]), f"malformed tree: {problem}")
    with pytest.raises(FormatError, match=re.escape(f"invalid entry name: {problem}")):
        validate_name(name)


def test_names_that_are_fine() -> None:
    for name in ("a", "...", ".dsrepo2", "dsrepo", ".dsrep", "x" * 1024, "\u00e9", " "):
        assert name_problem(name) is None
        decode(ObjectType.TREE, pk([1, 0, [[name, 0, 0, ID]]]))


def test_duplicate_and_out_of_order_entries() -> None:
    dup = [["a", 0, 1, ID], ["a", 0, 1, ID]]
    reject(ObjectType.TREE, pk([1, 0, dup]), "malformed tree: entry 'a' is duplicated")
    rev = [["b", 0, 1, ID], ["a", 0, 1, ID]]
    reject(ObjectType.TREE, pk([1, 0, rev]), "malformed tree: entry 'a' is out of order")
    # by UTF-8 bytes, not UTF-16 code units: U+FF01 (ef bc 81) < U+1F600 (f0 9f 98 80)
    bad = [["\U0001f600", 0, 1, ID], ["\uff01", 0, 1, ID]]
    reject(ObjectType.TREE, pk([1, 0, bad]), "malformed tree: entry '\uff01' is out of order")
    decode(ObjectType.TREE, pk([1, 0, bad[::-1]]))
    shards = [["b", ID, 1, 0], ["a", ID, 1, 0]]
    reject(ObjectType.TREE, pk([1, 1, shards]), "malformed tree: shards out of order")
    shards = [["a", ID, 1, 0], ["a", ID, 1, 0]]
    reject(ObjectType.TREE, pk([1, 1, shards]), "malformed tree: shards out of order")
    with pytest.raises(FormatError, match=re.escape("malformed tree: entry 'a' is duplicated")):
        build_tree([TreeEntry("a", EntryKind.FILE, 0, ObjectId(ID))] * 2)


def test_bad_entries_and_shards() -> None:
    t = ObjectType.TREE
    reject(t, pk([1, 0, [["a", 4, 1, ID]]]), "malformed tree: entry 'a' has unknown kind 4")
    reject(
        t, pk([1, 0, [["a", 2, 1, ID, ID]]]), "malformed tree: entry 'a': only files have manifests"
    )
    reject(
        t, pk([1, 0, [["a", 3, 1, ID, ID]]]), "malformed tree: entry 'a': only files have manifests"
    )
    reject(t, pk([1, 0, [["a", 0, -1, ID]]]), "malformed tree: size is not an integer >= 0")
    reject(t, pk([1, 0, [["a", 0, 1, ID[:31]]]]), "malformed tree: id is not a 32-byte id")
    reject(
        t, pk([1, 0, [["a", 0, 1, ID, ID + b"x"]]]), "malformed tree: manifest is not a 32-byte id"
    )
    reject(
        t,
        pk([1, 0, [["a", 0, 1]]]),
        "malformed tree: entry is not [name, kind, size, id(, manifest)]",
    )
    reject(
        t,
        pk([1, 0, [["a", 0, 1, ID, ID, ID]]]),
        "malformed tree: entry is not [name, kind, size, id(, manifest)]",
    )
    reject(t, pk([1, 0, [[b"a", 0, 1, ID]]]), "malformed tree: entry name is not a string")
    reject(t, pk([1, 0, {}]), "malformed tree: entries is not a list")
    reject(t, pk([1, 2, []]), "malformed tree: wrong field count or form")
    reject(
        t, pk([1, 1, [["a", ID, 1, 0]]]), "malformed tree: a sharded tree needs at least two shards"
    )
    reject(t, pk([1, 1, []]), "malformed tree: a sharded tree needs at least two shards")
    shards = [["a", ID, 0, 0], ["b", ID, 1, 0]]
    reject(t, pk([1, 1, shards]), "malformed tree: shard count is not an integer >= 1")
    shards = [["a", ID, 1], ["b", ID, 1, 0]]
    reject(t, pk([1, 1, shards]), "malformed tree: shard is not [first name, id, count, size]")


def test_manifest_rejections() -> None:
    m = ObjectType.MANIFEST
    reject(
        m,
        pk([1, ID, 4, ID * 2, [1, 2]]),
        "malformed manifest: chunk lengths do not add up to the size",
    )
    reject(
        m,
        pk([1, ID, 2, ID * 2, [1, 2]]),
        "malformed manifest: chunk lengths do not add up to the size",
    )
    reject(
        m,
        pk([1, ID, 3, ID * 3, [1, 2]]),
        "malformed manifest: chunk ids and lengths differ in count",
    )
    reject(
        m,
        pk([1, ID, 3, ID * 2 + b"x", [1, 2]]),
        "malformed manifest: chunk ids and lengths differ in count",
    )
    reject(
        m, pk([1, ID, 1, ID * 2, [1, 0]]), "malformed manifest: chunk length is not an integer >= 1"
    )
    reject(m, pk([1, ID, 3, [ID, ID], [1, 2]]), "malformed manifest: chunk list is malformed")
    reject(
        m, pk([1, ID[:4], 3, ID * 2, [1, 2]]), "malformed manifest: content id is not a 32-byte id"
    )
    decode(m, pk([1, ID, 0, b"", []]))  # the empty file, chunked (allowed, though never written)


def test_commit_rejections() -> None:
    c = ObjectType.COMMIT
    reject(c, pk(commit_body(parents=[ID, ID])), "malformed commit: duplicate parent")
    reject(c, pk(commit_body(parents=ID)), "malformed commit: parents is not a list")
    reject(c, pk(commit_body(parents=[ID[:1]])), "malformed commit: parent is not a 32-byte id")
    reject(c, pk(commit_body(tree=None)), "malformed commit: tree is not a 32-byte id")
    reject(c, pk(commit_body(metadata=[])), "malformed commit: metadata is not a map")
    reject(c, pk(commit_body(message=None)), "malformed commit: message is not a string")
    reject(
        c,
        pk(commit_body(author=["n", "e", 0])),
        "malformed commit: author is not [name, email, time, tz]",
    )
    reject(
        c, pk(commit_body(committer=["n", 1, 0, 0])), "malformed commit: committer is not a string"
    )
    for bad_sig in (
        ["n", "e", 0, 1440],
        ["n", "e", 0, -1440],
        ["n", "e", 0.0, 0],
        ["n", "e", True, 0],
        ["n", "e", 0, False],
        ["n", "e", 2**63, 0],
    ):
        reject(
            c,
            pk(commit_body(author=bad_sig)),
            "malformed commit: author has a bad time or time zone",
        )
    reject(
        c,
        pk(commit_body(author=["n<", "e", 0, 0])),
        "invalid identity 'n<': contains '<', '>', newline or NUL",
    )
    reject(
        c,
        pk(commit_body(author=["n", "e\n", 0, 0])),
        "invalid identity 'e\\n': contains '<', '>', newline or NUL",
    )
    meta_errors = [
        ({"a": 2**63}, "commit metadata: integer out of the 64-bit range"),
        ({"a": [2**64 - 1]}, "commit metadata: integer out of the 64-bit range"),
        ({"a": float("nan")}, "commit metadata: NaN and infinity are not JSON values"),
        ({"a": {"b": float("-inf")}}, "commit metadata: NaN and infinity are not JSON values"),
        ({"a": b"bytes"}, "commit metadata: bytes is not a JSON-compatible value"),
        ({b"a": 1}, "commit metadata: map keys must be strings"),
        (
            # ExtType is a (code, data) namedtuple: refused through its bytes
            {"a": msgpack.ExtType(1, b"x")},
            "commit metadata: bytes is not a JSON-compatible value",
        ),
        (
            {"a": msgpack.Timestamp(1, 0)},
            "commit metadata: Timestamp is not a JSON-compatible value",
        ),
    ]
    for meta, why in meta_errors:
        reject(c, pk(commit_body(metadata=meta)), why)
    # a non-string, non-bytes key is refused by the msgpack layer itself
    reject(c, pk(commit_body(metadata={1: 1})), "malformed commit: not msgpack (ValueError)")


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_metadata_nesting_limit() -> None:
    """The metadata map is level 1; containers may nest MAX_JSON_DEPTH levels, never more
    (deeper input used to escape as RecursionError or msgpack's ValueError)."""
    c = ObjectType.COMMIT
    ok = pk(commit_body(metadata={"a": nested(MAX_JSON_DEPTH - 1)}))
    decode(c, ok)
    too_deep = pk(commit_body(metadata={"a": nested(MAX_JSON_DEPTH)}))
    reject(c, too_deep, f"commit metadata: nested deeper than {MAX_JSON_DEPTH} levels")
    for depth in (300, 500, 900, 1500, 5000):
        head = pk(commit_body(metadata={}))[:-1]
        raw = head + b"\x81\xa1a" + b"\x91" * depth + b"\x90"
        with pytest.raises(FormatError):
            decode(c, raw)
    sig = Signature("a", "b", 0, 0)
    with pytest.raises(FormatError, match="nested deeper"):
        encode(Commit(ObjectId(ID), (), sig, sig, "", {"a": nested(600)}))


def test_tag_rejections() -> None:
    t = ObjectType.TAG
    reject(t, pk([1, ID, 9, "v1", SIG, "m"]), "malformed tag: unknown target type 9")
    reject(t, pk([1, ID, 3, 1, SIG, "m"]), "malformed tag: name is not a string")
    reject(t, pk([1, b"", 3, "v1", SIG, "m"]), "malformed tag: target is not a 32-byte id")
    reject(
        t,
        pk([1, ID, 3, "v1", SIG[:2], "m"]),
        "malformed tag: tagger is not [name, email, time, tz]",
    )


def test_wrong_field_counts() -> None:
    reject(ObjectType.MANIFEST, pk([1, ID, 0, b""]), "malformed manifest: wrong field count")
    reject(ObjectType.MANIFEST, pk([1, ID, 0, b"", [], 0]), "malformed manifest: wrong field count")
    reject(ObjectType.TREE, pk([1, 0]), "malformed tree: wrong field count or form")
    reject(ObjectType.TREE, pk([1, 0, [], []]), "malformed tree: wrong field count or form")
    reject(ObjectType.COMMIT, pk(commit_body()[:6]), "malformed commit: wrong field count")
    reject(ObjectType.COMMIT, pk([*commit_body(), None]), "malformed commit: wrong field count")
    reject(ObjectType.TAG, pk([1, ID, 3, "v1", SIG]), "malformed tag: wrong field count")
    reject(ObjectType.TAG, pk([1]), "malformed tag: wrong field count")


def test_trailing_garbage_and_non_msgpack() -> None:
    raw = pk([1, 0, []])
    reject(ObjectType.TREE, raw + b"\x00", "malformed tree: not msgpack (ExtraData)")
    reject(ObjectType.TREE, raw + raw, "malformed tree: not msgpack (ExtraData)")
    for junk in (b"", b"\xc1", b"\x93\x01", b"\xdc\xff", b"\xd9\x05ab"):
        with pytest.raises(FormatError, match=r"^malformed tree: not msgpack \("):
            decode(ObjectType.TREE, junk)
    reject(ObjectType.TREE, b"\xa3\xff\xfe\xfd", "malformed tree: not msgpack (UnicodeDecodeError)")
    reject(ObjectType.TREE, pk({}), "malformed tree: not a non-empty array")
    reject(ObjectType.TREE, pk([]), "malformed tree: not a non-empty array")
    reject(ObjectType.TREE, pk(1), "malformed tree: not a non-empty array")
    reject(ObjectType.CHUNK, pk([1]), "malformed chunk: not a structured type")


def test_encode_rejects_bad_identities_and_values() -> None:
    good = Signature("a", "b", 0, 0)
    for bad in (Signature("a<b", "e", 0), Signature("a", "e>", 0), Signature("a\0", "e", 0)):
        with pytest.raises(FormatError, match="invalid identity"):
            encode(Commit(ObjectId(ID), (), bad, good, ""))
        with pytest.raises(FormatError, match="invalid identity"):
            encode(Tag(ObjectId(ID), ObjectType.COMMIT, "t", bad, ""))
    for meta in (
        {"a": 2**63},
        {"a": MIN_INT - 1},
        {"a": float("inf")},
        {"a": {1: 2}},
        {"a": object()},
    ):
        with pytest.raises(FormatError, match=r"^commit metadata: "):
            encode(Commit(ObjectId(ID), (), good, good, "", meta))


# ---------------------------------------------------------------- fuzzing the decoder


def check_decodes_or_format_error(type_: ObjectType, raw: bytes) -> None:
    try:
        obj = decode(type_, raw)
    except FormatError:
        return
    assert obj.type == type_
    assert encode(obj) == raw


@FUZZ
@given(st.sampled_from(STRUCTURED), st.binary(max_size=300))
def test_random_bytes_decode_or_raise_format_error(type_: ObjectType, raw: bytes) -> None:
    check_decodes_or_format_error(type_, raw)


msgpack_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),
        st.floats(),
        text,
        st.binary(max_size=40),
        st.binary(min_size=32, max_size=32),
        st.sampled_from([0, 1, 2, 3, 4, -1, -1440, 1440, "a", ".dsrepo", ID, ID * 2]),
    ),
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(text | st.binary(max_size=4), inner, max_size=4)
    ),
    max_leaves=15,
)


@FUZZ_HEAVY
@given(
    st.sampled_from(STRUCTURED),
    st.lists(msgpack_values, max_size=8),
    st.sampled_from([1, 1, 1, 0, 2, True]),
    st.booleans(),
)
def test_random_msgpack_arrays_decode_or_raise_format_error(
    type_: ObjectType, fields: list[Any], version: Any, single_float: bool
) -> None:
    try:
        raw = msgpack.packb([version, *fields], use_bin_type=True, use_single_float=single_float)
    except OverflowError:  # a float64 beyond float32's range
        assume(False)
    check_decodes_or_format_error(type_, raw)


@FUZZ
@given(structured, st.data())
def test_mutated_valid_encodings_decode_or_raise_format_error(
    obj: Structured, data: st.DataObject
) -> None:
    raw = bytearray(encode(obj))
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        if op == "flip" and raw:
            raw[pos] = data.draw(st.integers(0, 255))
        elif op == "insert":
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and raw:
            del raw[pos]
        else:
            del raw[pos:]
    check_decodes_or_format_error(obj.type, bytes(raw))


@FUZZ
@given(structured, st.data())
def test_replaced_fields_decode_or_raise_format_error(obj: Structured, data: st.DataObject) -> None:
    """Swap one field (or one field of one entry/shard/signature) for an arbitrary value."""
    body = msgpack.unpackb(encode(obj))
    target = body
    i = data.draw(st.integers(0, len(body) - 1))
    if isinstance(body[i], list) and body[i] and data.draw(st.booleans()):
        target = body[i]
        i = data.draw(st.integers(0, len(target) - 1))
        if isinstance(target[i], list) and target[i] and data.draw(st.booleans()):
            target = target[i]
            i = data.draw(st.integers(0, len(target) - 1))
    target[i] = data.draw(msgpack_values)
    check_decodes_or_format_error(obj.type, msgpack.packb(body, use_bin_type=True))


# ---------------------------------------------------------------- trees and sharding


def file_entry(name: str, size: int = 1, salt: bytes = b"") -> TreeEntry:
    return TreeEntry(name, EntryKind.FILE, size, hash_data(name.encode() + salt))


def many(n: int) -> list[TreeEntry]:
    return [file_entry(f"file-{i:05d}", i) for i in range(n)]


def shard_ids(root: Tree) -> list[ObjectId]:
    return [s.id for s in root.shards]


def test_small_directories_are_flat() -> None:
    for n in (0, 1, 100, SHARD_THRESHOLD):
        root, shards = build_tree(many(n))
        assert not root.is_sharded and shards == []
        assert [e.name for e in root.entries] == [f"file-{i:05d}" for i in range(n)]
    root, shards = build_tree(many(SHARD_THRESHOLD + 1))
    assert root.is_sharded and len(shards) >= 2


def test_large_directory_is_sharded_consistently() -> None:
    entries = many(10_000)
    root, shards = build_tree(entries)
    assert root.is_sharded and not root.entries
    assert len(shards) == len(root.shards) >= 2
    assert sum(s.count for s in root.shards) == 10_000
    assert tree_size(root) == sum(range(10_000))
    flat: list[TreeEntry] = []
    for ref, shard in zip(root.shards, shards, strict=True):
        assert not shard.is_sharded
        assert ref.id == object_id(shard)
        assert ref.first_name == shard.entries[0].name
        assert ref.count == len(shard.entries)
        assert ref.size == tree_size(shard)
        flat.extend(shard.entries)
    for shard in shards[:-1]:  # every shard but the last ends after a boundary name
        assert model._ends_shard(shard.entries[-1].name)
    for e in flat:
        if e is not shards[-1].entries[-1] and model._ends_shard(e.name):
            assert any(s.entries[-1] is e for s in shards)
    assert flat == sorted(entries, key=lambda e: e.name.encode())
    assert decode(ObjectType.TREE, encode(root)) == root
    assert decode(ObjectType.TREE, encode(shards[0])) == shards[0]


def test_sharding_is_deterministic() -> None:
    entries = many(10_000)
    root, shards = build_tree(entries)
    shuffled = list(entries)
    random.Random(7).shuffle(shuffled)
    root2, shards2 = build_tree(shuffled)
    assert object_id(root2) == object_id(root)
    assert shards2 == shards


def test_changing_one_entry_changes_one_shard() -> None:
    entries = many(10_000)
    root, _ = build_tree(entries)
    changed = list(entries)
    changed[5000] = file_entry("file-05000", 1, salt=b"new content")
    root2, _ = build_tree(changed)
    assert object_id(root2) != object_id(root)
    before, after = shard_ids(root), shard_ids(root2)
    assert len(before) == len(after)
    assert sum(a != b for a, b in zip(before, after, strict=True)) == 1


def test_adding_a_non_boundary_entry_changes_one_shard() -> None:
    entries = many(10_000)
    root, _ = build_tree(entries)
    name = next(n for n in (f"file-{i:05d}x" for i in range(100)) if not model._ends_shard(n))
    root2, _ = build_tree([*entries, file_entry(name)])
    before, after = shard_ids(root), shard_ids(root2)
    assert len(before) == len(after)
    assert sum(a != b for a, b in zip(before, after, strict=True)) == 1
    assert [s.first_name for s in root.shards] == [s.first_name for s in root2.shards]


def test_no_boundary_falls_back_to_halves(monkeypatch: pytest.MonkeyPatch) -> None:
    # With this divisor no 32-bit prefix is 0 modulo it unless it is 0 itself: no boundaries.
    monkeypatch.setattr(model, "SHARD_DIVISOR", 2**33)
    entries = many(5001)
    root, shards = build_tree(entries)
    assert [s.count for s in root.shards] == [2500, 2501]
    assert [len(s.entries) for s in shards] == [2500, 2501]
    assert root.shards[1].first_name == "file-02500"


def test_build_tree_orders_by_utf8_bytes() -> None:
    names_ = ["\U0001f600", "\uff01", "b", "B", "a", "\u00e9"]
    root, _ = build_tree([file_entry(n) for n in names_])
    assert [e.name for e in root.entries] == ["B", "a", "b", "\u00e9", "\uff01", "\U0001f600"]
    assert decode(ObjectType.TREE, encode(root)) == root
