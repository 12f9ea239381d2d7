"""Ref name rules: git's ``check-ref-format``, so names that work in git work here and vice versa.

Two limits git does not have, because a ref is a file (``<name>.lock`` while it is updated): a
name must be valid UTF-8 (no lone surrogates, which a command line can carry), a component at
most :data:`MAX_COMPONENT_BYTES` and the whole name at most :data:`MAX_NAME_BYTES` bytes of it.
"""

from __future__ import annotations

from dsrepo.dvcs.errors import InvalidRefName

_BAD_CHARS = set(" ~^:?*[\\\x7f")

HEADS = "refs/heads/"
TAGS = "refs/tags/"
REMOTES = "refs/remotes/"
NOTES = "refs/notes/"

MAX_COMPONENT_BYTES = 250
"""Bytes of UTF-8 in one component: ``<component>.lock`` must fit a 255-byte file name."""
MAX_NAME_BYTES = 1000
"""Bytes of UTF-8 in a whole ref name (backend keys are at most 1024 bytes)."""


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
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "not valid UTF-8"
    if size > MAX_NAME_BYTES:
        return f"longer than {MAX_NAME_BYTES} bytes"
    for part in name.split("/"):
        if part.startswith("."):
            return f"component {show_name(part)} starts with '.'"
        if part.endswith(".lock"):
            return f"component {show_name(part)} ends with '.lock'"
        if len(part.encode("utf-8")) > MAX_COMPONENT_BYTES:
            return f"a component is longer than {MAX_COMPONENT_BYTES} bytes"
    return None


def check_refname(name: str) -> str:
    """A full ref name under ``refs/`` with at least two components after it, or InvalidRefName."""
    problem = refname_problem(name)
    if problem is None and (not name.startswith("refs/") or name.count("/") < 2):
        problem = "must look like refs/<kind>/<name>"
    if problem:
        raise InvalidRefName(f"invalid ref name {show_name(name)}: {problem}")
    return name


def show_name(name: str) -> str:
    """``name`` (a ref name or revision) quoted for a one-line message, at most 80 characters."""
    return repr(name) if len(name) <= 80 else repr(name[:80]) + "..."


def _short_name(kind: str, short: str) -> None:
    """git's extra rules for a branch or tag name given by its short form: not ``-...`` (an
    option), not ``HEAD`` and not ``@`` (both name the current commit in every revision)."""
    if short.startswith("-"):
        raise InvalidRefName(f"invalid {kind} name {show_name(short)}: starts with '-'")
    if short in ("HEAD", "@"):
        raise InvalidRefName(f"invalid {kind} name {short!r}: it names the current commit")


def branch_ref(short: str) -> str:
    _short_name("branch", short)
    return check_refname(HEADS + short)


def tag_ref(short: str) -> str:
    _short_name("tag", short)
    return check_refname(TAGS + short)


def shorten(name: str) -> str:
    for prefix in (HEADS, TAGS, REMOTES):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name
