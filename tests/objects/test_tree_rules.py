"""Trees are checked when built as strictly as when decoded: nothing is stored that a reader
would refuse, and a directory has exactly one encoding."""

from __future__ import annotations

import msgpack
import pytest

from dsrepo.objects.errors import FormatError
from dsrepo.objects.ids import hash_data
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import (
    SHARD_THRESHOLD,
    ObjectType,
    TreeEntry,
    build_tree,
    decode,
    encode,
)

OID = hash_data(b"x")


@pytest.mark.parametrize("name", ["a\\b", ".dsrepo", ".DSREPO.", "..", "dsrepo~1"])
def test_build_tree_refuses_names_decode_would_refuse(name: str) -> None:
    with pytest.raises(FormatError, match="cannot store entry"):
        build_tree([TreeEntry(name, EntryKind.FILE, 1, OID)])


def test_a_small_directory_cannot_be_stored_sharded() -> None:
    entries = [TreeEntry(f"f{i}", EntryKind.FILE, 1, OID) for i in range(10)]
    flat, shards = build_tree(entries)
    assert not shards and not flat.shards
    # hand-craft the sharded form of the same 10 entries: a second id for one directory
    left, right = build_tree(entries[:5])[0], build_tree(entries[5:])[0]
    body = msgpack.packb(
        [1, 1, [["f0", bytes(hash_data(encode(left))), 5, 5], ["f5", bytes(OID), 5, 5]]],
        use_bin_type=True,
    )
    del right
    with pytest.raises(FormatError, match=f"at most {SHARD_THRESHOLD} entries"):
        decode(ObjectType.TREE, body)
