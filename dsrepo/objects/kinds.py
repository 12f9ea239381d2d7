"""The kinds of entry a tree (and a working-copy scan) can hold.

Shared by the object model (tree entries) and the working copy (:mod:`dsrepo.dvcs.scan`). The
integer values are part of the on-disk format: never renumber them.

- ``FILE``: a regular file.
- ``EXECUTABLE``: a regular file with the owner's execute bit set.
- ``SYMLINK``: a symbolic link; its content is the link target.
- ``TREE``: a directory (a subtree).
"""

from __future__ import annotations

import enum


class EntryKind(enum.IntEnum):
    FILE = 0
    EXECUTABLE = 1
    SYMLINK = 2
    TREE = 3
