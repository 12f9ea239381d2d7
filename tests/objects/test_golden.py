"""Golden byte vectors: the on-disk format, pinned.

Every object below is fixed; its canonical encoding and id are asserted byte for byte, and the same
vectors are printed in docs/format.md. If a change to the code breaks one of these tests, it has
changed the repository format: existing repositories would no longer read or would hash
differently. That needs a new format version, not a new expected value.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from blake3 import blake3
from pyfastcdc.py.constants import GEAR  # the gear table both implementations use

from dsrepo.objects.chunking import ChunkerParams, RepoFormat
from dsrepo.objects.errors import FormatError
from dsrepo.objects.ids import CONTEXTS, ObjectId, hash_data, hash_structured
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import (
    Commit,
    Manifest,
    ObjectType,
    Signature,
    Structured,
    Tag,
    Tree,
    TreeEntry,
    _ends_shard,
    decode,
    encode,
    object_id,
)
from dsrepo.objects.pack import PackBuilder, PackClass, decode_index, iter_pack_records

# ---------------------------------------------------------------- the fixed objects

HELLO = b"hello\n"
PART1 = b"hello "
PART2 = b"world\n"
SCRIPT = b"#!/bin/sh\necho hi\n"
LINK = b"data/hello.txt"

ADA = Signature("Ada Lovelace", "ada@example.com", 1700000000, -300)
GRACE = Signature("Grace Hopper", "grace@example.com", 1700000100, 60)
TAGGER = Signature("Ada Lovelace", "ada@example.com", 1700000200, 330)

METADATA = {
    "zeta": 1,
    "\u00e9": "accent",
    "alpha": {"nested": [1, -1, 2.5, None, True, "s"], "b": {}},
    "big": 2**63 - 1,
    "small": -(2**63),
    "Z": 0.1,
}


def manifest() -> Manifest:
    """A 12-byte file stored as two 6-byte chunks."""
    return Manifest(hash_data(PART1 + PART2), 12, ((hash_data(PART1), 6), (hash_data(PART2), 6)))


def subtree() -> Tree:
    """Two files; the second name is non-ASCII and sorts after by UTF-8 bytes."""
    return Tree(
        entries=(
            TreeEntry("hello.txt", EntryKind.FILE, 6, hash_data(HELLO)),
            TreeEntry("\u00e9t\u00e9.txt", EntryKind.FILE, 6, hash_data(HELLO)),
        )
    )


def root_tree() -> Tree:
    """A file, a chunked file (with manifest), a subtree, a symlink and an executable."""
    return Tree(
        entries=(
            TreeEntry("README.md", EntryKind.FILE, 6, hash_data(HELLO)),
            TreeEntry(
                "big.bin", EntryKind.FILE, 12, hash_data(PART1 + PART2), object_id(manifest())
            ),
            TreeEntry("data", EntryKind.TREE, 12, object_id(subtree())),
            TreeEntry("latest", EntryKind.SYMLINK, len(LINK), hash_data(LINK)),
            TreeEntry("run.sh", EntryKind.EXECUTABLE, len(SCRIPT), hash_data(SCRIPT)),
        )
    )


def root_commit() -> Commit:
    return Commit(object_id(root_tree()), (), ADA, ADA, "Initial import\n", {})


def second_root_commit() -> Commit:
    return Commit(object_id(subtree()), (), GRACE, GRACE, "Import data\n", {})


def merge_commit() -> Commit:
    """Two parents, different author and committer, negative time zone, nested metadata."""
    return Commit(
        object_id(root_tree()),
        (object_id(root_commit()), object_id(second_root_commit())),
        ADA,
        GRACE,
        "Merge 'data'\n\nWith \u00fcn\u00efc\u00f6de \u2713\n",
        METADATA,
    )


def tag() -> Tag:
    return Tag(object_id(merge_commit()), ObjectType.COMMIT, "v1.0", TAGGER, "Release 1.0\n")


def golden_objects() -> dict[str, Structured]:
    return {
        "manifest": manifest(),
        "subtree": subtree(),
        "root_tree": root_tree(),
        "root_commit": root_commit(),
        "second_root_commit": second_root_commit(),
        "merge_commit": merge_commit(),
        "tag": tag(),
    }


DATA_PACK_CHUNKS = (HELLO, PART1, PART2, SCRIPT, LINK)


def data_pack() -> PackBuilder:
    """A data pack of the five chunks above, stored uncompressed, in this order."""
    b = PackBuilder(PackClass.DATA)
    for c in DATA_PACK_CHUNKS:
        b.add(hash_data(c), ObjectType.CHUNK, c, len(c), 0)
    return b


def meta_pack() -> PackBuilder:
    """A meta pack of the structured objects above, stored uncompressed, in dict order."""
    b = PackBuilder(PackClass.META)
    for obj in golden_objects().values():
        raw = encode(obj)
        b.add(object_id(obj), obj.type, raw, len(raw), 0)
    return b


# ---------------------------------------------------------------- the expected bytes

EXPECTED_CHUNK_IDS: dict[bytes, str] = {
    b"hello\n": "8e4c7c1b99dbfd50e7a95185fead5ee1448fa904a2fdd778eaf5f2dbfd629a99",
    b"hello ": "955ddfbf1efade57480fbf6019f3ab768198a04a85e5bae4cf2d1ee04f03e18b",
    b"world\n": "26e70f0a438787ee143979a9b519a4a330ea21e0a23d31fcb47051e70b8fe5ad",
    b"#!/bin/sh\necho hi\n": "4b694fa6468140836e2f43625aca1150ec72032dc23a12e13416ca026c647ef3",
    b"data/hello.txt": "b060ff12f230de29d182b06789334c5fda722d7a49e41fb1216be6eace990b0a",
}

EXPECTED: dict[str, tuple[str, str]] = {
    "manifest": (
        (
            "9501c420dc5a4edb8240b018124052c330270696f96771a63b45250a5c17d300"
            "0e8233550cc440955ddfbf1efade57480fbf6019f3ab768198a04a85e5bae4cf"
            "2d1ee04f03e18b26e70f0a438787ee143979a9b519a4a330ea21e0a23d31fcb4"
            "7051e70b8fe5ad920606"
        ),
        "9446ddc8e29d44a7d697abdb0c5d1a0be7e47bf6866eb4e02a72afd1472e30b8",
    ),
    "subtree": (
        (
            "9301009294a968656c6c6f2e7478740006c4208e4c7c1b99dbfd50e7a95185fe"
            "ad5ee1448fa904a2fdd778eaf5f2dbfd629a9994a9c3a974c3a92e7478740006"
            "c4208e4c7c1b99dbfd50e7a95185fead5ee1448fa904a2fdd778eaf5f2dbfd62"
            "9a99"
        ),
        "74f992800ff99341a7f114d61206293fb838ef868718ac42ab3403a640c05fb8",
    ),
    "root_tree": (
        (
            "9301009594a9524541444d452e6d640006c4208e4c7c1b99dbfd50e7a95185fe"
            "ad5ee1448fa904a2fdd778eaf5f2dbfd629a9995a76269672e62696e000cc420"
            "dc5a4edb8240b018124052c330270696f96771a63b45250a5c17d3000e823355"
            "c4209446ddc8e29d44a7d697abdb0c5d1a0be7e47bf6866eb4e02a72afd1472e"
            "30b894a464617461030cc42074f992800ff99341a7f114d61206293fb838ef86"
            "8718ac42ab3403a640c05fb894a66c6174657374020ec420b060ff12f230de29"
            "d182b06789334c5fda722d7a49e41fb1216be6eace990b0a94a672756e2e7368"
            "0112c4204b694fa6468140836e2f43625aca1150ec72032dc23a12e13416ca02"
            "6c647ef3"
        ),
        "d762dc1813ba7c6d88c4ca379e50ac0766b519fb288038550c5a975102ccf11c",
    ),
    "root_commit": (
        (
            "9701c420d762dc1813ba7c6d88c4ca379e50ac0766b519fb288038550c5a9751"
            "02ccf11c9094ac416461204c6f76656c616365af616461406578616d706c652e"
            "636f6dce6553f100d1fed494ac416461204c6f76656c616365af616461406578"
            "616d706c652e636f6dce6553f100d1fed4af496e697469616c20696d706f7274"
            "0a80"
        ),
        "01d6a2a1c006dec48d3d4583dc7bd87d254615775d05a74c0c09958343ed58e3",
    ),
    "second_root_commit": (
        (
            "9701c42074f992800ff99341a7f114d61206293fb838ef868718ac42ab3403a6"
            "40c05fb89094ac477261636520486f70706572b16772616365406578616d706c"
            "652e636f6dce6553f1643c94ac477261636520486f70706572b1677261636540"
            "6578616d706c652e636f6dce6553f1643cac496d706f727420646174610a80"
        ),
        "269795371ee2f05922f1644adcea6c0a43f806fce707250fc1840c7b45e2ffe4",
    ),
    "merge_commit": (
        (
            "9701c420d762dc1813ba7c6d88c4ca379e50ac0766b519fb288038550c5a9751"
            "02ccf11c92c42001d6a2a1c006dec48d3d4583dc7bd87d254615775d05a74c0c"
            "09958343ed58e3c420269795371ee2f05922f1644adcea6c0a43f806fce70725"
            "0fc1840c7b45e2ffe494ac416461204c6f76656c616365af616461406578616d"
            "706c652e636f6dce6553f100d1fed494ac477261636520486f70706572b16772"
            "616365406578616d706c652e636f6dce6553f1643cd9224d6572676520276461"
            "7461270a0a5769746820c3bc6ec3af63c3b6646520e29c930a86a15acb3fb999"
            "999999999aa5616c70686182a16280a66e65737465649601ffcb400400000000"
            "0000c0c3a173a3626967cf7fffffffffffffffa5736d616c6cd3800000000000"
            "0000a47a65746101a2c3a9a6616363656e74"
        ),
        "88523e1e9dae53d8b37e3909621cc03dd58d5b61670bd5d4334346c225a97b57",
    ),
    "tag": (
        (
            "9601c42088523e1e9dae53d8b37e3909621cc03dd58d5b61670bd5d4334346c2"
            "25a97b5703a476312e3094ac416461204c6f76656c616365af61646140657861"
            "6d706c652e636f6dce6553f1c8cd014aac52656c6561736520312e300a"
        ),
        "3909c5dc78a06025025155ebc7fcabc2e43198a7ec98314e73364d60d3b8876a",
    ),
}
"""name -> (hex of the canonical encoding, hex of the id)."""

EXPECTED_DATA_PACK_NAME = "b4d122c28e6247679ebfe310035233751ac99ce250848dd11325042e94511757"
EXPECTED_DATA_PACK = (
    "4453525041434b0001000000000000008e4c7c1b99dbfd50e7a95185fead5ee1"
    "448fa904a2fdd778eaf5f2dbfd629a9900000000060000000600000068656c6c"
    "6f0a955ddfbf1efade57480fbf6019f3ab768198a04a85e5bae4cf2d1ee04f03"
    "e18b00000000060000000600000068656c6c6f2026e70f0a438787ee143979a9"
    "b519a4a330ea21e0a23d31fcb47051e70b8fe5ad000000000600000006000000"
    "776f726c640a4b694fa6468140836e2f43625aca1150ec72032dc23a12e13416"
    "ca026c647ef300000000120000001200000023212f62696e2f73680a6563686f"
    "2068690ab060ff12f230de29d182b06789334c5fda722d7a49e41fb1216be6ea"
    "ce990b0a000000000e0000000e000000646174612f68656c6c6f2e747874"
)
EXPECTED_DATA_INDEX = (
    "445352494458000001000000000000000500000000000000b4d122c28e624767"
    "9ebfe310035233751ac99ce250848dd11325042e9451175726e70f0a438787ee"
    "143979a9b519a4a330ea21e0a23d31fcb47051e70b8fe5ada000000000000000"
    "0600000006000000000000004b694fa6468140836e2f43625aca1150ec72032d"
    "c23a12e13416ca026c647ef3d200000000000000120000001200000000000000"
    "8e4c7c1b99dbfd50e7a95185fead5ee1448fa904a2fdd778eaf5f2dbfd629a99"
    "3c00000000000000060000000600000000000000955ddfbf1efade57480fbf60"
    "19f3ab768198a04a85e5bae4cf2d1ee04f03e18b6e0000000000000006000000"
    "0600000000000000b060ff12f230de29d182b06789334c5fda722d7a49e41fb1"
    "216be6eace990b0a10010000000000000e0000000e00000000000000d59c7683"
    "37615930aea1772cf5c6633140ffde93892fbd1f09976ae3d4fea963"
)
EXPECTED_META_PACK_NAME = "d0e4fc7ccac99d921352e8ef73b763f5cc9f9dee9c8a7dc95e70f79b0a2afb80"
EXPECTED_SHARD_BOUNDARIES: dict[str, bool] = {
    "file-00000": False,
    "file-00001": False,
    "file-00434": True,
    "file-02340": True,
    "file-02662": True,
}
"""Names and whether they end a shard (their BLAKE3 starts 92e3ecb4, 10aea10f, 00ac3816, ...)."""

CHUNKING_INPUT_SEED = b"dsrepo chunking test vector"
CHUNKING_INPUT_LENGTH = 1_000_000
"""The chunking vectors cut the first 1,000,000 bytes of BLAKE3-XOF(CHUNKING_INPUT_SEED)."""
EXPECTED_CHUNK_LENGTHS = [
    49313, 83272, 96436, 73834, 90964, 78100, 38900, 29527, 262144, 144447, 23719, 16773, 12571
]  # fmt: skip
EXPECTED_CHUNK_LENGTHS_SEED_1 = [
    97972, 71365, 79291, 46755, 19780, 146455, 94582, 76482, 204855, 155852, 6611
]  # fmt: skip

EXPECTED_FORMAT_MARKER = """\
{
  "chunker": {
    "algorithm": "fastcdc2020",
    "avg_size": 65536,
    "max_size": 262144,
    "min_size": 16384,
    "normalization": 1,
    "seed": 0,
    "small_file_threshold": 1048576
  },
  "format": "dsrepo",
  "hash": "blake3-256",
  "version": 1
}
"""


def _hex(h: str) -> str:
    return "".join(h.split())


# ---------------------------------------------------------------- tests


def test_chunk_ids_are_plain_blake3() -> None:
    for data, want in EXPECTED_CHUNK_IDS.items():
        assert hash_data(data).hex() == want


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_structured_encoding_and_id(name: str) -> None:
    obj = golden_objects()[name]
    raw = encode(obj)
    want_raw, want_id = EXPECTED[name]
    assert raw.hex() == _hex(want_raw)
    assert object_id(obj).hex() == want_id
    assert hash_structured(obj.type.label, raw).hex() == want_id
    assert decode(obj.type, raw) == obj


def test_expected_covers_every_object() -> None:
    assert set(EXPECTED) == set(golden_objects())


def test_context_strings() -> None:
    assert CONTEXTS == {
        "manifest": "dsrepo 2026-11 manifest v1",
        "tree": "dsrepo 2026-11 tree v1",
        "commit": "dsrepo 2026-11 commit v1",
        "tag": "dsrepo 2026-11 tag v1",
    }


def test_domains_are_separated() -> None:
    """The bytes of a tree stored as a file's content get a different id than the tree."""
    raw = encode(subtree())
    assert hash_data(raw) != object_id(subtree())
    assert len({hash_structured(t, raw) for t in CONTEXTS}) == len(CONTEXTS)


def test_shard_boundary_hash() -> None:
    """A name ends a shard iff the first 4 bytes of BLAKE3(name), little-endian, are 0 mod 1024."""
    for name, ends in EXPECTED_SHARD_BOUNDARIES.items():
        digest = hash_data(name.encode("utf-8"))
        assert (int.from_bytes(digest[:4], "little") % 1024 == 0) is ends
        assert _ends_shard(name) is ends


def test_data_pack_bytes_and_name() -> None:
    name, pack, index, entries = data_pack().finish()
    assert name == EXPECTED_DATA_PACK_NAME
    assert pack.hex() == _hex(EXPECTED_DATA_PACK)
    assert index.hex() == _hex(EXPECTED_DATA_INDEX)
    assert hash_data(index[56:-32]).hex() == name  # the name is BLAKE3 of the entry table
    assert [e.id for e in entries] == sorted(hash_data(c) for c in DATA_PACK_CHUNKS)


def test_meta_pack_name() -> None:
    name, _, index, _ = meta_pack().finish()
    assert name == EXPECTED_META_PACK_NAME
    assert hash_data(index[56:-32]).hex() == name


def test_index_round_trip() -> None:
    for builder in (data_pack(), meta_pack()):
        name, pack, index, entries = builder.finish()
        pack_class, decoded = decode_index(index, name)
        assert pack_class == builder.pack_class
        assert decoded == entries
        by_id = {e.id: e for e in decoded}
        for rec, payload in iter_pack_records(pack, name):
            e = by_id.pop(rec.id)
            assert rec == e
            assert pack[e.offset : e.offset + e.stored_size] == payload
            if e.type == ObjectType.CHUNK:
                assert hash_data(payload) == e.id
            else:
                assert object_id(decode(e.type, payload)) == e.id
        assert not by_id


def _chunking_input() -> bytes:
    return blake3(CHUNKING_INPUT_SEED).digest(length=CHUNKING_INPUT_LENGTH)


def test_chunk_boundaries_default_parameters() -> None:
    data = _chunking_input()
    assert data[:8].hex() == "ddbc196379dec174"
    lengths = [c.length for c in ChunkerParams().cutter().cut_buf(data)]
    assert lengths == EXPECTED_CHUNK_LENGTHS
    assert sum(lengths) == len(data)


def test_chunk_boundaries_streaming_equal_buffered() -> None:
    lengths = [c.length for c in ChunkerParams().cutter().cut_stream(io.BytesIO(_chunking_input()))]
    assert lengths == EXPECTED_CHUNK_LENGTHS


def test_chunk_boundaries_with_seed() -> None:
    lengths = [c.length for c in ChunkerParams(seed=1).cutter().cut_buf(_chunking_input())]
    assert lengths == EXPECTED_CHUNK_LENGTHS_SEED_1


def test_format_marker() -> None:
    fmt = RepoFormat(ChunkerParams())
    assert fmt.to_bytes().decode() == EXPECTED_FORMAT_MARKER
    assert RepoFormat.from_bytes(fmt.to_bytes()) == fmt
    assert json.loads(EXPECTED_FORMAT_MARKER)["chunker"]["avg_size"] == 65536


def test_ids_are_raw_32_bytes() -> None:
    for obj in golden_objects().values():
        oid: ObjectId = object_id(obj)
        assert isinstance(oid, bytes) and len(oid) == 32


def test_subtree_bytes_assembled_by_hand() -> None:
    """The annotated example of docs/format.md, assembled from the rules without msgpack."""
    hello = hash_data(HELLO)

    def entry(name: str, kind: int, size: int, oid: bytes) -> bytes:
        n = name.encode("utf-8")
        assert len(n) < 32 and size < 128  # fixstr, positive fixint
        return bytes([0x94, 0xA0 | len(n)]) + n + bytes([kind, size, 0xC4, 0x20]) + oid

    raw = (
        bytes([0x93, 0x01, 0x00, 0x92])
        + entry("hello.txt", 0, 6, hello)
        + entry("\u00e9t\u00e9.txt", 0, 6, hello)
    )
    assert raw == encode(subtree())


def test_data_pack_layout_by_hand() -> None:
    """Pack and index offsets exactly as docs/format.md lays them out."""
    name, pack, index, _ = data_pack().finish()
    assert pack[:16] == b"DSRPACK\x00" + b"\x01\x00" + b"\x00" + bytes(5)
    pos = 16
    offsets: dict[bytes, int] = {}
    for chunk in DATA_PACK_CHUNKS:
        oid = pack[pos : pos + 32]
        assert oid == hash_data(chunk)
        assert pack[pos + 32 : pos + 36] == b"\x00\x00\x00\x00"  # type, flags, 2 zero bytes
        assert int.from_bytes(pack[pos + 36 : pos + 40], "little") == len(chunk)
        assert int.from_bytes(pack[pos + 40 : pos + 44], "little") == len(chunk)
        offsets[oid] = pos + 44
        assert pack[pos + 44 : pos + 44 + len(chunk)] == chunk
        pos += 44 + len(chunk)
    assert pos == len(pack)

    assert index[:16] == b"DSRIDX\x00\x00" + b"\x01\x00" + b"\x00" + bytes(5)
    assert int.from_bytes(index[16:24], "little") == len(DATA_PACK_CHUNKS)
    assert index[24:56].hex() == name
    assert index[24:56] == hash_data(index[56:-32])
    assert len(index) == 56 + 52 * len(DATA_PACK_CHUNKS) + 32
    assert index[-32:] == hash_data(index[:-32])
    ids = []
    for i in range(len(DATA_PACK_CHUNKS)):
        e = index[56 + 52 * i : 56 + 52 * (i + 1)]
        oid = e[:32]
        ids.append(oid)
        assert int.from_bytes(e[32:40], "little") == offsets[oid]
        stored = int.from_bytes(e[40:44], "little")
        assert stored == int.from_bytes(e[44:48], "little")
        assert pack[offsets[oid] : offsets[oid] + stored] == next(
            c for c in DATA_PACK_CHUNKS if hash_data(c) == oid
        )
        assert e[48:52] == b"\x00\x00\x00\x00"  # type chunk, flags 0, 2 zero bytes
    assert ids == sorted(ids)


def _marker(**over: object) -> bytes:
    doc = json.loads(EXPECTED_FORMAT_MARKER)
    chunker = over.pop("chunker", None)
    if isinstance(chunker, dict):
        doc["chunker"].update(chunker)
    elif chunker is not None:
        doc["chunker"] = chunker
    doc.update(over)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("marker", "why"),
    [
        (b"{not json", "format: not a dsrepo format marker (invalid JSON)"),
        (b"[]", "format: not a dsrepo format marker"),
        (_marker(format="git"), "format: not a dsrepo format marker"),
        (_marker(version=2), "format: format version 2 is not supported"),
        (_marker(hash="sha256"), "format: unsupported hash 'sha256'"),
        (_marker(chunker=[]), "format: malformed chunker parameters"),
        (_marker(chunker={"window": 64}), "format: malformed chunker parameters"),
        (_marker(chunker={"min_size": "16k"}), "format: malformed chunker parameters"),
        (_marker(chunker={"algorithm": "rabin"}), "unsupported chunking algorithm 'rabin'"),
        (_marker(chunker={"min_size": 70000}), "chunker sizes must satisfy"),
        (_marker(chunker={"normalization": 4}), "chunker normalization must be 0..3"),
        (_marker(chunker={"small_file_threshold": 1000}), "small_file_threshold must be at least"),
        # within dsrepo's own bounds but outside pyfastcdc's (avg >= 256): used to escape as
        # ValueError
        (
            _marker(chunker={"min_size": 64, "avg_size": 128, "max_size": 2048}),
            "chunker parameters rejected: ",
        ),
    ],
)
def test_format_marker_rejections(marker: bytes, why: str) -> None:
    with pytest.raises(FormatError) as info:
        RepoFormat.from_bytes(marker)
    assert why in str(info.value)


DOC = Path(__file__).resolve().parents[2] / "docs" / "format.md"


@pytest.mark.skipif(not DOC.exists(), reason="docs/format.md not present")
def test_docs_show_these_vectors() -> None:
    """docs/format.md prints the same bytes and ids this file asserts."""
    doc = DOC.read_text("utf-8")
    compact = "".join(doc.split())
    for raw_hex, id_hex in EXPECTED.values():
        assert _hex(raw_hex) in compact
        assert f"id {id_hex}" in doc
    for chunk_id in EXPECTED_CHUNK_IDS.values():
        assert chunk_id in doc
    assert _hex(EXPECTED_DATA_PACK) in compact
    assert _hex(EXPECTED_DATA_INDEX) in compact
    assert f"name {EXPECTED_DATA_PACK_NAME}" in doc
    assert EXPECTED_META_PACK_NAME in doc
    assert EXPECTED_FORMAT_MARKER in doc
    assert " ".join(map(str, EXPECTED_CHUNK_LENGTHS)) in doc
    assert " ".join(map(str, EXPECTED_CHUNK_LENGTHS_SEED_1)) in doc
    for context in CONTEXTS.values():
        assert f"`{context}`" in doc
    gear = blake3(b"".join(x.to_bytes(8, "little") for x in GEAR)).hexdigest()
    assert gear == "9af822d1e10df25d0157a43ccd0a73b56d1c1d0a5d77acb4e6e979522d0fe149"
    assert gear in doc
    assert "  ".join(f"{x:016x}" for x in GEAR[:4]) in doc
