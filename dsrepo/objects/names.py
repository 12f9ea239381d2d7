"""Validation of tree entry names: the rules every tree from any source must satisfy, and the one
definition of "a name a filesystem may treat as ``.dsrepo``" (the working-copy code uses it too).

A name is one path component. Rejected: empty, ``.``, ``..``, anything containing ``/``, ``\\`` or
NUL, and reserved names: ``.dsrepo`` in any letter case, after NFKC normalization and removal of
default-ignorable code points (zero-width joiners, BOM, soft hyphen, ...), with trailing dots or
spaces (NTFS drops them), with an NTFS stream suffix (``.dsrepo:x``), its 8.3 short names
(``DSREPO~1``), and names that fold to nothing, ``.`` or ``..``.
"""

from __future__ import annotations

import unicodedata

from dsrepo.objects.errors import FormatError

# Unicode 15.0 DerivedCoreProperties.txt, Default_Ignorable_Code_Point.
_DEFAULT_IGNORABLE_RANGES: tuple[tuple[int, int], ...] = (
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
_STRIP_IGNORABLES: dict[int, None] = {
    cp: None for lo, hi in _DEFAULT_IGNORABLE_RANGES for cp in range(lo, hi + 1)
}
_RESERVED = ".dsrepo"
_SHORT_NAMES = frozenset(f"dsrepo~{d}" for d in "0123456789")


def _fold(name: str) -> str:
    s = unicodedata.normalize("NFKC", name.translate(_STRIP_IGNORABLES))
    s = unicodedata.normalize("NFKC", s.translate(_STRIP_IGNORABLES).casefold())
    return s.translate(_STRIP_IGNORABLES)


def _is_reserved_folded(folded: str) -> bool:
    if folded.startswith(".dsrepo:"):
        return True
    base = folded.rstrip(". ")
    return base == _RESERVED or base in _SHORT_NAMES or folded in ("", ".", "..")


def is_reserved_name(name: str) -> bool:
    """True when a filesystem might treat ``name`` as ``.dsrepo`` (see the module docstring).

    Also true for names that fold to nothing, ``.`` or ``..`` (e.g. ``"\\u200b"``, ``".\\u200d."``).
    Cheap for ASCII names, which is what the scanner sees almost always.
    """
    if name.isascii():
        # Folding is just lower() here, and every reserved ASCII name starts with ".", "d" or "D".
        if name[:1] not in (".", "d", "D"):
            return not name
        return _is_reserved_folded(name.lower())
    return _is_reserved_folded(_fold(name))


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
