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
from typing import NewType

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
