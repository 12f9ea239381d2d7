"""Finding versions: ``log --grep/--author/--since/--until/--meta``, across all refs with
``--all``.

Filters combine like git's: every kind given must match (message, author, dates, metadata);
several ``--grep`` patterns match when any does (``all_match``: when all do), several ``--meta``
conditions only when all do. A metadata condition is ``KEY=VALUE`` (the value as JSON text or,
for a string, the string itself), ``KEY!=VALUE``, ``KEY~REGEX`` (searched in the value's text),
or ``KEY>N``, ``KEY>=N``, ``KEY<N``, ``KEY<=N`` (numbers only; a non-numeric value does not
match); a note's metadata (``notes add``) counts, over the commit's. ``KEY`` may name a nested
value with dots (``stats.rows``); a bare ``KEY`` matches when it
is present. Dates are ``YYYY-MM-DD[ HH:MM[:SS]]`` (UTC), ``@SECONDS``, or an age such as
``2.weeks`` or ``3.days.ago``, compared with the commit's committer date, as git does.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsrepo.dvcs.errors import ConfigError, RepositoryError
from dsrepo.dvcs.history import LogEntry, log
from dsrepo.objects.model import Commit

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository

_OPS = ("!=", ">=", "<=", "=", "~", ">", "<")
_META = re.compile(r"([^=!~<>]+)(!=|>=|<=|=|~|>|<)(.*)", re.DOTALL)
_MISSING = object()


class SearchError(ConfigError):
    """A filter that cannot be understood (a bad regex, date or condition): exit 2."""


def parse_date(text: str, now: float | None = None) -> int:
    """Seconds since the epoch for ``--since``/``--until``."""
    from dsrepo.dvcs.reflog import parse_age

    t = text.strip()
    if t.startswith("@") and t[1:].isdigit():
        return int(t[1:])
    for fmt in ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"):
        try:
            return int(datetime.strptime(t, fmt).replace(tzinfo=UTC).timestamp())
        except ValueError:
            pass
    try:
        return int((time.time() if now is None else now) - parse_age(t))
    except ValueError:
        raise SearchError(
            f"invalid date {text!r} (examples: 2026-11-30, '2026-11-30 14:00', @1700000000, "
            "2.weeks)"
        ) from None


def _lookup(metadata: Mapping[str, Any], key: str) -> Any:
    if key in metadata:
        return metadata[key]
    value: Any = metadata
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def meta_condition(text: str) -> Callable[[Mapping[str, Any]], bool]:
    """The test of one ``--meta`` condition on a commit's metadata."""
    m = _META.fullmatch(text)
    if m is None:
        key = text.strip()
        if not key:
            raise SearchError("empty --meta condition")
        return lambda md: _lookup(md, key) is not _MISSING
    key, op, want = m.group(1).strip(), m.group(2), m.group(3)
    if op == "~":
        try:
            rx = re.compile(want)
        except re.error as exc:
            raise SearchError(f"invalid regex in --meta {text!r}: {exc}") from None
        return lambda md: (v := _lookup(md, key)) is not _MISSING and bool(rx.search(_text(v)))
    if op in ("=", "!="):

        def equal(md: Mapping[str, Any]) -> bool:
            v = _lookup(md, key)
            if v is _MISSING:
                return False
            if _text(v) == want:
                return True
            a, b = _number(v), _number(want)
            return a is not None and b is not None and a == b

        if op == "=":
            return equal
        return lambda md: _lookup(md, key) is not _MISSING and not equal(md)
    bound = _number(want)
    if bound is None:
        raise SearchError(f"--meta {text!r}: {op} compares numbers")
    compare: Callable[[float, float], bool] = {
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
    }[op]
    return lambda md: (n := _number(_lookup(md, key))) is not None and compare(n, bound)


@dataclass(frozen=True)
class LogFilter:
    """Which commits ``search`` keeps."""

    grep: Sequence[str] = ()
    author: Sequence[str] = ()
    since: int | None = None
    until: int | None = None
    meta: Sequence[str] = ()
    ignore_case: bool = False
    all_match: bool = False

    def compile(self) -> Callable[[Commit, Mapping[str, Any]], bool]:
        flags = re.IGNORECASE if self.ignore_case else 0
        try:
            greps = [re.compile(p, flags) for p in self.grep]
            authors = [re.compile(p, flags) for p in self.author]
        except re.error as exc:
            raise SearchError(f"invalid regex: {exc}") from None
        metas = [meta_condition(m) for m in self.meta]
        since, until, all_match = self.since, self.until, self.all_match

        def accepts(c: Commit, noted: Mapping[str, Any]) -> bool:
            when = c.committer.time
            if since is not None and when < since:
                return False
            if until is not None and when > until:
                return False
            if authors:
                who = f"{c.author.name} <{c.author.email}>"
                if not any(a.search(who) for a in authors):
                    return False
            if greps:
                hits = (g.search(c.message) for g in greps)
                if not (all(hits) if all_match else any(hits)):
                    return False
            md = {**c.metadata, **noted} if noted else c.metadata or {}
            return all(m(md) for m in metas)

        return accepts


def all_tips(repo: Repository) -> list[str]:
    """Every branch, tag and remote-tracking ref (``--all``), plus HEAD when it is set."""
    from dsrepo.dvcs.revisions import resolve_commit

    tips = [
        r
        for r in repo.refs.list("refs/")
        if r.startswith(("refs/heads/", "refs/tags/", "refs/remotes/")) and not r.endswith("/HEAD")
    ]
    if repo.head_commit() is not None:
        tips.append("HEAD")
    out = []
    for r in tips:
        try:
            resolve_commit(repo, r)
        except RepositoryError:  # a tag of a tree or a file: no history to search
            continue
        out.append(r)
    return out


def search(
    repo: Repository,
    revs: Sequence[str] = ("HEAD",),
    where: LogFilter | None = None,
    *,
    all_refs: bool = False,
    max_count: int | None = None,
    paths: Sequence[str] = (),
    cwd: Path | None = None,
) -> list[LogEntry]:
    tips = list(revs)
    if all_refs:
        tips = list(dict.fromkeys([*tips, *all_tips(repo)]))
    if not tips:
        return []
    accepts = where.compile() if where is not None else None
    if accepts is None:
        return log(repo, tips, max_count=max_count, paths=paths, cwd=cwd)
    from dsrepo.dvcs.notes import all_notes

    notes = all_notes(repo) if where is not None and where.meta else {}
    out: list[LogEntry] = []
    for e in log(repo, tips, paths=paths, cwd=cwd):
        note = notes.get(e.id)
        if accepts(e.commit, note.metadata if note is not None else {}):
            out.append(e)
            if max_count is not None and len(out) >= max_count:
                break
    return out
