"""Object ids: BLAKE3-256 digests, shown as 64 lowercase hex characters.

Two hash domains never collide:

- Data (file contents and chunks of them) are hashed with plain BLAKE3, so ``b3sum FILE`` prints a
  file's content id.
- Structured objects (manifests, trees, commits, tags) are hashed with BLAKE3 in *derive-key* mode
  with a per-type context string, a different function from plain BLAKE3: no file a user stores can
  share an id with a tree or a commit (git solves the same problem with its ``blob N\\0`` header).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import NewType, overload

from blake3 import blake3

from dsrepo.objects.errors import InvalidId

ObjectId = NewType("ObjectId", bytes)
"""A 32-byte raw digest."""

ID_BYTES = 32
HEX_LEN = 64
MIN_PREFIX = 4
_HEX = re.compile(r"[0-9a-f]+")

CONTEXTS = {
    "manifest": "dsrepo 2026-11 manifest v1",
    "tree": "dsrepo 2026-11 tree v1",
    "commit": "dsrepo 2026-11 commit v1",
    "tag": "dsrepo 2026-11 tag v1",
}


def hash_data(data: bytes | memoryview) -> ObjectId:
    """Plain BLAKE3 of data: the id of a chunk, and of a whole file's content."""
    return ObjectId(blake3(data).digest())


def hash_structured(type_name: str, body: bytes) -> ObjectId:
    """BLAKE3 derive-key hash of a structured object's canonical encoding."""
    return ObjectId(blake3(body, derive_key_context=CONTEXTS[type_name]).digest())


def from_hex(text: str) -> ObjectId:
    """Parse a full 64-char lowercase hex id. Raises InvalidId with the offending text."""
    if len(text) != HEX_LEN or not _HEX.fullmatch(text):
        raise InvalidId(f"invalid object id {text!r}: expected 64 lowercase hex characters")
    return ObjectId(bytes.fromhex(text))


def validate_prefix(text: str) -> str:
    """A hex prefix of 4..64 lowercase characters (the caller resolves it against a store)."""
    if not (MIN_PREFIX <= len(text) <= HEX_LEN) or not _HEX.fullmatch(text):
        raise InvalidId(
            f"invalid object id {text!r}: expected {MIN_PREFIX} to {HEX_LEN} lowercase hex characters"
        )
    return text


def looks_like_hex(text: str) -> bool:
    return MIN_PREFIX <= len(text) <= HEX_LEN and _HEX.fullmatch(text) is not None


class IdArray(Sequence[ObjectId]):
    """Object ids packed 32 bytes apiece: a push's or fetch's list of a million chunk ids costs
    32 MB instead of ~80 MB as bytes objects (the tree entries that held them are long
    evicted). Items and slices come back as ObjectId."""

    __slots__ = ("_buf",)

    def __init__(self, ids: Iterable[bytes] = ()) -> None:
        self._buf = bytearray()
        self.extend(ids)

    def append(self, oid: bytes) -> None:
        if len(oid) != ID_BYTES:
            raise ValueError(f"an object id has {ID_BYTES} bytes, not {len(oid)}")
        self._buf += oid

    def extend(self, ids: Iterable[bytes]) -> None:
        if isinstance(ids, IdArray):
            self._buf += ids._buf
            return
        for oid in ids:
            self.append(oid)

    def __len__(self) -> int:
        return len(self._buf) // ID_BYTES

    @overload
    def __getitem__(self, i: int) -> ObjectId: ...

    @overload
    def __getitem__(self, i: slice) -> list[ObjectId]: ...

    def __getitem__(self, i: int | slice) -> ObjectId | list[ObjectId]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("IdArray index out of range")
        return ObjectId(bytes(self._buf[i * ID_BYTES : (i + 1) * ID_BYTES]))

    def __iter__(self) -> Iterator[ObjectId]:
        buf = self._buf
        for k in range(0, len(buf), ID_BYTES):
            yield ObjectId(bytes(buf[k : k + ID_BYTES]))
