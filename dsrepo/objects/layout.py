"""The one place that spells backend keys. The same layout serves a local ``.dsrepo/`` folder,
a shared directory remote and an S3 prefix::

    format                      format marker (JSON; see docs/format.md)
    packs/<packname>.pack       a pack: objects of one class (data or meta)
    packs/<packname>.idx        its index; its presence means the pack is complete
    HEAD                        symbolic or detached head (local repositories only)
    refs/heads/<branch>         branch tips, refs/tags/<tag> tags; "<64 hex>\\n"
"""

from __future__ import annotations

import re

FORMAT_KEY = "format"
PACKS_PREFIX = "packs/"
REFS_PREFIX = "refs/"
HEAD_KEY = "HEAD"

_PACK_NAME = re.compile(r"[0-9a-f]{64}")


def pack_key(name: str) -> str:
    return f"{PACKS_PREFIX}{name}.pack"


def index_key(name: str) -> str:
    return f"{PACKS_PREFIX}{name}.idx"


def _pack_name(key: str, suffix: str) -> str | None:
    if not (key.startswith(PACKS_PREFIX) and key.endswith(suffix)):
        return None
    name = key[len(PACKS_PREFIX) : -len(suffix)]
    return name if _PACK_NAME.fullmatch(name) else None


def pack_name_from_index_key(key: str) -> str | None:
    """The pack name of a ``packs/<name>.idx`` key, or None for any other key."""
    return _pack_name(key, ".idx")


def pack_name_from_pack_key(key: str) -> str | None:
    """The pack name of a ``packs/<name>.pack`` key, or None for any other key."""
    return _pack_name(key, ".pack")
