"""Glob pathspecs of ``add`` (``'*.csv'``, ``'images/**/*.jpg'``), matched like git's.

A path the user typed that holds ``*``, ``?`` or ``[`` and names no existing file is a pattern.
Its literal leading directories (resolved like any path, so it cannot lead outside the working
copy) are where the walk starts; the rest is matched against the whole path below, as git does
without ``:(glob)``: ``*`` also matches ``/`` (``*.csv`` selects CSV files at any depth), ``?``
one character but ``/``, ``[...]`` a class; ``**/`` may also match no directory at all.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dsrepo.dvcs.errors import PathError
from dsrepo.dvcs.paths import UnsafePath, user_path_to_relpath

if TYPE_CHECKING:
    from dsrepo.dvcs.scan import ScanEntry

_WILD = frozenset("*?[")


def has_wildcard(text: str) -> bool:
    return any(c in _WILD for c in text)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """The regex of one pathspec glob (whole-path match)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "^") else i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : j]
                neg = body[:1] in ("!", "^")
                body = body[1:] if neg else body
                out.append("[" + ("^" if neg else "") + body.replace("\\", "\\\\") + "]")
                i = j
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


@dataclass
class Pathspec:
    """One glob pathspec: ``base`` (a worktree relpath, "" for the root) and the whole-path
    pattern ``relpattern`` relative to the root."""

    text: str
    base: str
    relpattern: str
    regex: re.Pattern[str] = field(init=False)
    hits: int = 0

    def __post_init__(self) -> None:
        self.regex = glob_regex(self.relpattern)

    def match(self, path: str) -> bool:
        return self.regex.match(path) is not None

    def files(self, entries: Iterable[ScanEntry]) -> Iterator[ScanEntry]:
        for s in entries:
            if self.match(s.path):
                self.hits += 1
                yield s


def split_pathspecs(
    root: Path, cwd: Path, user_paths: Sequence[str]
) -> tuple[list[str], list[Pathspec]]:
    """(literal paths, glob pathspecs) of what the user typed."""
    literal: list[str] = []
    globs: list[Pathspec] = []
    for p in user_paths:
        if not has_wildcard(p) or os.path.lexists(os.path.join(cwd, p)):
            literal.append(p)
            continue
        parts = p.split("/")
        k = next(i for i, part in enumerate(parts) if has_wildcard(part))
        lead = "/".join(parts[:k]) or "."
        try:
            base = user_path_to_relpath(root, cwd, lead)
        except UnsafePath as exc:
            raise PathError(str(exc)) from None
        rest = "/".join(parts[k:])
        globs.append(Pathspec(p, base, f"{base}/{rest}" if base else rest))
    return literal, globs
