"""``.dsrepoignore`` files, with the semantics of ``.gitignore``.

A ``.dsrepoignore`` file may sit in any directory of the working copy; its patterns are relative
to that directory. Patterns are compiled by ``pathspec``'s gitignore implementation
(:class:`pathspec.GitIgnoreSpec`); the evaluation follows git, level by level:

- A path is matched against the patterns that apply to its directory: those of the
  ``.dsrepoignore`` files in that directory and all its ancestors. The deepest file is consulted
  first; within a file the last matching pattern wins; the first file with a match decides
  (``!pattern`` re-includes). No match: not ignored.
- A pattern matches the path itself (its last component), never "because it matched a parent":
  parents are decided on their own, and a path inside an ignored directory is ignored whatever the
  patterns say (like git, ``!build/keep`` cannot re-include a file when ``build/`` is excluded).
- Patterns ending in ``/`` match directories only. A symlink is not a directory.
- ``.dsrepoignore`` files inside ignored directories are never read; a ``.dsrepoignore`` that is
  a symlink or not a regular file is disregarded (git does the same for ``.gitignore``).
- Any component that :func:`dsrepo.dvcs.paths.is_reserved_name` flags (``.dsrepo`` in any letter
  case, with invisible characters, ...) is always ignored, whatever the files say.

Nested files are discovered by the scanner as it walks (see :mod:`dsrepo.dvcs.scan`): it calls
:meth:`IgnoreRules.enter_directory` for each directory it descends into and asks the returned
:class:`DirectoryRules` about each child name. :meth:`IgnoreRules.is_ignored` answers for any
relpath and loads the files it needs lazily. Everything is cached per directory.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dsrepo.dvcs.paths import is_reserved_name
from dsrepo.errors import DsrepoError

if TYPE_CHECKING:
    from pathspec.pattern import RegexPattern

__all__ = ["IGNORE_FILE", "DirectoryRules", "IgnoreError", "IgnoreRules"]

IGNORE_FILE = ".dsrepoignore"

# pathspec marks "this pattern matched a directory, the rest of the path is inside it" with a
# named group; its regexes are used with re.search().
_DIR_MARK = "ps_d"
_DIR_MARK_GROUP = f"(?P<{_DIR_MARK}>"
# An ASCII name can only be reserved (see is_reserved_name) if it starts with one of these.
_RESERVED_FIRST = frozenset(".dD")


class IgnoreError(DsrepoError):
    """A ``.dsrepoignore`` file exists but cannot be read."""

    exit_code = 1


# How a rule is tested: on the path relative to the layer's directory ("dir/" for directories),
# on that path without the trailing "/" even for directories, or on the last component alone.
_PATH, _PATH_NO_SLASH, _BASENAME = 0, 1, 2
# One compiled rule: (test regex, how, ignore?). A test matches only the path itself.
_Rule = tuple[re.Pattern[str], int, bool]
_ANY_PARENTS = "^(?:.+/)?"


def _basename_only(rest: str) -> bool:
    """Whether a regex body cannot match a "/" (so ``^(?:.+/)?BODY`` only sees the basename)."""
    body = rest.replace(f"{_DIR_MARK_GROUP}/)", "").replace("[^/]", "")
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            i += 2
            continue
        if c in "/.[":
            return False
        i += 1
    return True


def _compile_rule(regex: re.Pattern[str]) -> tuple[str, int]:
    """The source of the direct-match test for one pathspec regex, and how to apply it.

    pathspec's regexes are used with ``search`` and, when they match a directory, also match
    everything under it: the directory mark group is followed by nothing. Anchoring them at the
    end keeps only matches of the path itself (a directory is tested as "path/", its mark then
    being the trailing slash). Regexes without a mark ("*" -> ".", "x/**" -> "^x/") match paths
    directly, but "x/**" must not match "x/" itself: directories are tested without the slash.
    """
    src = regex.pattern
    if _DIR_MARK not in regex.groupindex:
        return src, _PATH_NO_SLASH
    # pathspec < 1.0 spells the mark "(?P<ps_d>/).*" (and ends with "$"): same meaning.
    src = src.replace(f"{_DIR_MARK_GROUP}/).*", f"{_DIR_MARK_GROUP}/)")
    basename_only = src.startswith(_ANY_PARENTS) and _basename_only(src[len(_ANY_PARENTS) :])
    src = src.replace(_DIR_MARK_GROUP, "(?:")
    if basename_only:
        # The common "*.log", "build/", "__pycache__" shape: test the last component alone.
        return f"(?:^{src[len(_ANY_PARENTS) :]})\\Z", _BASENAME
    return f"(?:{src})\\Z", _PATH


class _Layer:
    """The patterns of one ``.dsrepoignore`` file, ready for direct-match tests."""

    __slots__ = ("all_ignore", "base_union", "path_union", "rules")

    def __init__(self, lines: Sequence[str]) -> None:
        rules: list[_Rule] = []
        base_sources: list[str] = []
        path_sources: list[str] = []
        for pattern in _compile_patterns(lines):
            regex = pattern.regex
            include = pattern.include
            if regex is None or include is None:
                continue
            assert isinstance(regex, re.Pattern)
            src, how = _compile_rule(regex)
            try:
                test = re.compile(src, regex.flags)
            except re.error:  # pragma: no cover - defensive: an unexpected regex shape
                continue
            rules.append((test, how, bool(include)))
            (base_sources if how == _BASENAME else path_sources).append(f"(?:{src})")
        rules.reverse()  # last pattern first
        self.rules: tuple[_Rule, ...] = tuple(rules)
        # For files every rule tests the path (or its basename) as is: one search per union
        # rejects the common "no pattern matches" case in C.
        self.base_union = re.compile("|".join(base_sources)).search if base_sources else None
        self.path_union = re.compile("|".join(path_sources)).search if path_sources else None
        self.all_ignore = all(ignore for _, _, ignore in rules)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def match_file(self, path: str, name: str) -> bool | None:
        """The verdict of the last rule matching the file ``path`` (basename ``name``), if any."""
        base_union, path_union = self.base_union, self.path_union
        if (base_union is None or base_union(name) is None) and (
            path_union is None or path_union(path) is None
        ):
            return None
        if self.all_ignore:
            return True
        for test, how, ignore in self.rules:
            if test.search(name if how == _BASENAME else path) is not None:
                return ignore
        return None  # pragma: no cover - a union matched, so some rule does

    def match_dir(self, path: str, name: str) -> bool | None:
        """The verdict of the last rule matching the directory ``path`` (basename ``name``)."""
        for test, how, ignore in self.rules:
            if how == _BASENAME:
                subject = name + "/"
            elif how == _PATH:
                subject = path + "/"
            else:
                subject = path
            if test.search(subject) is not None:
                return ignore
        return None


def _compile_patterns(lines: Sequence[str]) -> list[RegexPattern]:
    from pathspec import GitIgnoreSpec  # only when there are patterns: ~55 ms of start-up
    from pathspec.pattern import RegexPattern

    try:
        patterns = list(GitIgnoreSpec.from_lines(lines).patterns)
    except ValueError:
        # git skips a malformed pattern and keeps the others.
        patterns = []
        for line in lines:
            try:
                patterns.extend(GitIgnoreSpec.from_lines([line]).patterns)
            except ValueError:
                continue
    return [p for p in patterns if isinstance(p, RegexPattern)]


class DirectoryRules:
    """The ignore rules that apply to the children of one (not ignored) directory."""

    __slots__ = ("_file_checks", "_layers", "rel_dir")

    def __init__(self, rel_dir: str, layers: tuple[tuple[str, _Layer], ...]) -> None:
        self.rel_dir = rel_dir
        # (path of this directory relative to the layer's directory, with "/"; layer),
        # deepest layer first.
        self._layers = layers
        self._file_checks = tuple(
            (sub, layer.base_union, layer.path_union, layer) for sub, layer in layers
        )

    def is_ignored(self, name: str, is_dir: bool) -> bool:
        """Whether the child ``name`` (a directory when ``is_dir``) of this directory is ignored."""
        if (name[:1] in _RESERVED_FIRST or not name.isascii()) and is_reserved_name(name):
            return True
        if is_dir:
            for sub, layer in self._layers:
                verdict = layer.match_dir(sub + name, name)
                if verdict is not None:
                    return verdict
            return False
        # Files are most of a scan: the "no pattern matches" case is inlined.
        for sub, base_union, path_union, layer in self._file_checks:
            if (base_union is None or base_union(name) is None) and (
                path_union is None or path_union(sub + name) is None
            ):
                continue
            verdict = layer.match_file(sub + name, name)
            if verdict is not None:
                return verdict
        return False

    def child(self, name: str, layer: _Layer | None) -> DirectoryRules:
        """Rules for the subdirectory ``name``, whose own ignore file (if any) is ``layer``."""
        layers = tuple((f"{sub}{name}/", lay) for sub, lay in self._layers)
        if layer:
            layers = (("", layer), *layers)
        rel = f"{self.rel_dir}/{name}" if self.rel_dir else name
        return DirectoryRules(rel, layers)


class IgnoreRules:
    """The ``.dsrepoignore`` rules of a working copy, loaded directory by directory."""

    def __init__(self, worktree_root: Path) -> None:
        self.root = Path(worktree_root)
        self._root_s = os.fspath(worktree_root)
        self._dirs: dict[str, DirectoryRules] = {}
        # Directory -> its rules, or None when it is ignored (for is_ignored).
        self._parents: dict[str, DirectoryRules | None] = {}
        self._read_files = True

    @classmethod
    def load(cls, worktree_root: Path) -> IgnoreRules:
        """Rules for the working copy at ``worktree_root``; reads the root ``.dsrepoignore`` now.

        Nested files are read when their directory is entered (:meth:`enter_directory`, called
        by the scanner) or first needed by :meth:`is_ignored`.
        """
        rules = cls(worktree_root)
        rules.enter_directory("")
        return rules

    @classmethod
    def from_lines(cls, worktree_root: Path, lines: Iterable[str]) -> IgnoreRules:
        """Rules made of ``lines`` alone (as if in the root); no ``.dsrepoignore`` is read."""
        rules = cls(worktree_root)
        rules._read_files = False
        layer = _Layer(list(lines))
        rules._dirs[""] = DirectoryRules("", (("", layer),) if layer else ())
        return rules

    def enter_directory(self, rel_dir: str, has_ignore_file: bool | None = None) -> DirectoryRules:
        """The rules for the children of directory ``rel_dir`` ("" for the root); cached.

        ``has_ignore_file`` says whether the directory holds a ``.dsrepoignore`` entry (the scanner
        knows from its listing, saving a failed open per directory); None means "look". Call it
        only for directories that are not ignored; the parent directories are entered as needed.
        """
        cached = self._dirs.get(rel_dir)
        if cached is not None:
            return cached
        read = self._read_files and has_ignore_file is not False
        layer = self._read_layer(rel_dir) if read else None
        if rel_dir:
            parent, _, name = rel_dir.rpartition("/")
            rules = self.enter_directory(parent).child(name, layer)
        else:
            rules = DirectoryRules("", (("", layer),) if layer else ())
        self._dirs[rel_dir] = rules
        return rules

    def is_ignored(self, relpath: str, is_dir: bool) -> bool:
        """Whether the worktree path ``relpath`` is ignored (directly or by an ignored parent).

        A trailing ``/`` marks a directory, whatever ``is_dir`` says. ``""`` (the root) is not.
        """
        if relpath.endswith("/"):
            is_dir = True
        relpath = relpath.strip("/")
        if not relpath:
            return False
        parent, _, name = relpath.rpartition("/")
        try:
            rules = self._parents[parent]
        except KeyError:
            rules = self._resolve_parent(parent)
        return rules is None or rules.is_ignored(name, is_dir)

    def _resolve_parent(self, rel_dir: str) -> DirectoryRules | None:
        """The rules of directory ``rel_dir``, or None when it (or a parent) is ignored; cached."""
        if not rel_dir:
            rules: DirectoryRules | None = self.enter_directory("")
        else:
            parent, _, name = rel_dir.rpartition("/")
            if parent in self._parents:
                parent_rules = self._parents[parent]
            else:
                parent_rules = self._resolve_parent(parent)
            if parent_rules is None or parent_rules.is_ignored(name, True):
                rules = None
            else:
                rules = self.enter_directory(rel_dir)
        self._parents[rel_dir] = rules
        return rules

    def _read_layer(self, rel_dir: str) -> _Layer | None:
        path = os.path.join(self._root_s, rel_dir, IGNORE_FILE)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EMLINK):
                return None  # missing, or a symlink: disregarded
            raise IgnoreError(f"cannot read {path}: {exc.strerror}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            data = b"".join(iter(lambda: os.read(fd, 1 << 16), b""))
        except OSError as exc:
            raise IgnoreError(f"cannot read {path}: {exc.strerror}") from None
        finally:
            os.close(fd)
        text = data.decode("utf-8", "surrogateescape")
        if text.startswith("\ufeff"):
            text = text[1:]
        # Lines end at "\n" only (a trailing "\r" is dropped), like git.
        layer = _Layer([line.removesuffix("\r") for line in text.split("\n")])
        return layer if layer else None
