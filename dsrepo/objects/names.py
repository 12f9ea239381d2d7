"""Validation of tree entry names: the rules every tree from any source must satisfy.

A name is one path component. Rejected: empty, ``.``, ``..``, anything containing ``/``, ``\\`` or
NUL, and ``.dsrepo`` in any letter case, after Unicode normalization (NFKC) and after removing
default-ignorable code points (zero-width joiners, BOM, soft hyphen, ...) that some filesystems drop.
"""

from __future__ import annotations

import unicodedata

from dsrepo.objects.errors import FormatError

_IGNORABLE_RANGES = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)


def _is_ignorable(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _IGNORABLE_RANGES)


def is_reserved_name(name: str) -> bool:
    """True for names a filesystem might treat as ``.dsrepo``."""
    if name.isascii():  # fast path: NFKC and ignorables change nothing in ASCII
        return len(name) == 7 and name.lower() == ".dsrepo"
    folded = "".join(ch for ch in unicodedata.normalize("NFKC", name) if not _is_ignorable(ch))
    return folded.casefold() == ".dsrepo"


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid entry name, or None when it is."""
    if not name:
        return "empty name"
    if name in (".", ".."):
        return f"name {name!r} is not allowed"
    if "/" in name or "\\" in name or "\0" in name:
        return f"name {name!r} contains '/', '\\' or NUL"
    if is_reserved_name(name):
        return f"name {name!r} is reserved (the repository folder)"
    if len(name.encode("utf-8", "surrogatepass")) > 1024:
        return f"name {name[:40]!r}... is longer than 1024 bytes"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return f"name {name!r} is not valid UTF-8"
    return None


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid tree entry name, else raise FormatError."""
    problem = name_problem(name)
    if problem:
        raise FormatError(f"invalid entry name: {problem}")
    return name
