"""Validation of backend keys: every key is a relative, normalized, slash-separated path.

Keys come from our own code but also from listings and ref names a remote sends, so they are
checked before they become file paths or URLs.
"""

from __future__ import annotations

import re

from dsrepo.remotes.errors import InvalidKey

_FORBIDDEN = re.compile(r"[\\\x00-\x1f\x7f]")


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is safe, else raise :class:`InvalidKey`.

    Safe means: non-empty; no leading or trailing ``/``; no empty, ``.`` or ``..`` component;
    no backslash, NUL or other control character; at most 1024 bytes of UTF-8.
    """
    if not isinstance(key, str) or not key:
        raise InvalidKey("invalid key: empty")
    if len(key.encode("utf-8", "surrogatepass")) > 1024:
        raise InvalidKey(f"invalid key: longer than 1024 bytes: {key[:60]!r}...")
    if key.startswith("/") or key.endswith("/"):
        raise InvalidKey(f"invalid key {key!r}: must be a relative path without a trailing '/'")
    if _FORBIDDEN.search(key):
        raise InvalidKey(f"invalid key {key!r}: contains a backslash or control character")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise InvalidKey(f"invalid key {key!r}: empty, '.' or '..' path component")
    return key


def validate_prefix(prefix: str) -> str:
    """A listing prefix: empty, or a key optionally followed by ``/``."""
    if prefix == "":
        return prefix
    validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix
