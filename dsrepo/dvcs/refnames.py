"""Ref name rules: git's ``check-ref-format``, so names that work in git work here and vice versa."""

from __future__ import annotations

from dsrepo.dvcs.errors import InvalidRefName

_BAD_CHARS = set(" ~^:?*[\\\x7f")

HEADS = "refs/heads/"
TAGS = "refs/tags/"
REMOTES = "refs/remotes/"


def refname_problem(name: str) -> str | None:
    """Why ``name`` is not a valid full ref name (``refs/...``), or None."""
    if not name:
        return "empty"
    if name == "@":
        return "'@' alone is not allowed"
    if name.startswith("/") or name.endswith("/"):
        return "starts or ends with '/'"
    if name.endswith("."):
        return "ends with '.'"
    if "//" in name or ".." in name or "@{" in name:
        return "contains '//', '..' or '@{'"
    for ch in name:
        if ord(ch) < 0x20 or ch in _BAD_CHARS:
            return f"contains {ch!r}"
    for part in name.split("/"):
        if part.startswith("."):
            return f"component {part!r} starts with '.'"
        if part.endswith(".lock"):
            return f"component {part!r} ends with '.lock'"
    return None


def check_refname(name: str) -> str:
    """A full ref name under ``refs/`` with at least two components after it, or InvalidRefName."""
    problem = refname_problem(name)
    if problem is None and (not name.startswith("refs/") or name.count("/") < 2):
        problem = "must look like refs/<kind>/<name>"
    if problem:
        raise InvalidRefName(f"invalid ref name {name!r}: {problem}")
    return name


def branch_ref(short: str) -> str:
    if short.startswith("-"):
        raise InvalidRefName(f"invalid branch name {short!r}: starts with '-'")
    if short == "HEAD":
        raise InvalidRefName("invalid branch name 'HEAD'")
    return check_refname(HEADS + short)


def tag_ref(short: str) -> str:
    if short.startswith("-"):
        raise InvalidRefName(f"invalid tag name {short!r}: starts with '-'")
    return check_refname(TAGS + short)


def shorten(name: str) -> str:
    for prefix in (HEADS, TAGS, REMOTES):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name
