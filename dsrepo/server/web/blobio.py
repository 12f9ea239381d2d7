"""Reading a stored file for a page or a download, and HTTP byte ranges over it.

Files are read through ``dsrepo.dvcs.reader.raw_file`` (the seekable reader of
``Repository.open_file``): a read at an offset fetches only the chunks it covers, each verified
against its id (the manifest was checked against the tree entry), so no unverified byte is ever
sent; in a partial clone the missing chunks are fetched from the promisor remote first. A range
that ends inside a large file cannot check the whole file's content id (that needs all of it);
its chunks and manifest are verified.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from dsrepo.dvcs.reader import on_demand_for, raw_file
from dsrepo.objects.filereader import FileReader
from dsrepo.objects.model import TreeEntry

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository

PIECE = 1 << 20
"""Bytes read and sent at a time."""


def open_reader(repo: Repository, entry: TreeEntry, name: str) -> FileReader:
    """A seekable reader over a file entry (close it when done)."""
    return raw_file(repo, entry, on_demand=on_demand_for(repo), name=name)


def stream(reader: FileReader, start: int, end: int) -> Iterator[bytes]:
    """Bytes ``start`` to ``end`` (exclusive) in pieces of :data:`PIECE`; closes the reader."""
    try:
        pos = start
        while pos < end:
            piece = reader.pread(pos, min(PIECE, end - pos))
            if not piece:
                break
            yield piece
            pos += len(piece)
    finally:
        reader.close()


# ---------------------------------------------------------------- HTTP ranges


class Unsatisfiable(Exception):
    """The range asked for lies outside the file (HTTP 416)."""


_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The byte range ``[start, end)`` a ``Range`` header asks for; None for the whole file (no
    header, a malformed one, or several ranges: RFC 9110 lets a server ignore those)."""
    if not header:
        return None
    m = _RANGE.fullmatch(header)
    if m is None:
        return None
    first, last = m.group(1), m.group(2)
    if not first:
        if not last:
            return None
        n = int(last)
        if n == 0 or size == 0:
            raise Unsatisfiable
        return max(size - n, 0), size
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise Unsatisfiable
    end = size if not last else min(int(last) + 1, size)
    return start, end
