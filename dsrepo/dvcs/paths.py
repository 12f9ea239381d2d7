"""Path safety for untrusted trees and user input.

Entry names
-----------
:func:`validate_entry_name` accepts one path component. A name is rejected (:class:`UnsafePath`)
when, checked in this order, it is empty, ``.`` or ``..``, or contains ``/``, ``\\`` or NUL; it
contains a lone surrogate (a file name that is not valid UTF-8: trees store UTF-8); or it is
*reserved* (:func:`is_reserved_name`, :mod:`dsrepo.objects.names`): some filesystem might open it
as the repository directory ``.dsrepo`` (``.DSREPO``, ``.dsrepo\\u200c``, ``\\ufeff.dsrepo``,
fullwidth ``.\\uff44srepo``, ``.dsrepo.`` which Win32 strips, the 8.3 name ``dsrepo~1``, the NTFS
stream ``.dsrepo:x``), or it folds to nothing, ``.`` or ``..`` (``"\\u200b"``). Folding is close to
Unicode's NFKC_Casefold with every Default_Ignorable_Code_Point removed (HFS+ drops these when
comparing names). Canonically different letters are different names: ``.dsrep\\u00f8`` (ø) is
fine, so is ``.dsrepo\\u0301`` (the accent composes with the ``o``) and ``.dsrepos``. The rule is
deliberately stricter than any one filesystem: a tree is meant to check out safely everywhere.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import posixpath
import re
import secrets
import stat
import sys
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from blake3 import blake3

from dsrepo.errors import DsrepoError
from dsrepo.objects.errors import CorruptObject
from dsrepo.objects.names import is_reserved_name

__all__ = [
    "SafeWriter",
    "UnsafePath",
    "check_link_target",
    "find_case_collisions",
    "is_case_insensitive_fs",
    "is_reserved_name",
    "user_path_to_relpath",
    "validate_entry_name",
    "validate_relpath",
]


class UnsafePath(DsrepoError):
    """A path that is malformed, reserved, or leads outside the working copy."""

    exit_code = 9


TEMP_PREFIX = ".dsrepo-tmp-"
"""Prefix of the temporary files :class:`SafeWriter` creates next to their destination:
``.dsrepo-tmp-<pid>-<12 hex>`` (``.dsrepo-tmp-case-<pid>-<12 hex>`` for the case probe)."""

_TEMP_NAME = re.compile(r"\.dsrepo-tmp-(?:case-)?(?:(\d{1,10})-)?[0-9a-f]{12}")
"""SafeWriter's temp names; the pid is absent in names written by older versions."""

LINK_TARGET_MAX = 4095
"""The longest symlink target POSIX systems store (``PATH_MAX`` minus the NUL)."""


_TEMP_SALT, _temp_counter = secrets.token_hex(3), itertools.count(secrets.randbelow(1 << 24))
_pid = [os.getpid()]  # cached, and refreshed in a forked child
os.register_at_fork(after_in_child=lambda: _pid.__setitem__(0, os.getpid()))


def _temp_name(kind: str = "") -> str:
    # the pid, then 12 hex digits: a random salt per process and a counter (no getrandom per file)
    return f"{TEMP_PREFIX}{kind}{_pid[0]}-{_TEMP_SALT}{next(_temp_counter) & 0xFFFFFF:06x}"


def is_stale_temp(name: str) -> bool:
    """Whether ``name`` is a temp file of a SafeWriter that is gone (a killed process, or an
    older version that did not record its pid): safe to delete. A live process's own temp files
    (this one included) are not stale."""
    m = _TEMP_NAME.fullmatch(name)
    if m is None:
        return False
    if m.group(1) is None:
        return True
    pid = int(m.group(1))
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, OSError):
        return False
    return False


def _q(text: str) -> str:
    """Quote a path for a one-line message (control and invisible characters escaped)."""
    return repr(text)


def validate_entry_name(name: str) -> str:
    """Return ``name`` if it is a safe single path component, else raise :class:`UnsafePath`."""
    if name in ("", ".", ".."):
        raise UnsafePath(f"invalid path component {_q(name)}")
    if "/" in name or "\\" in name or "\0" in name:
        raise UnsafePath(f"invalid path component {_q(name)}: contains '/', '\\' or NUL")
    if not name.isascii():
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise UnsafePath(f"invalid path component {_q(name)}: not valid UTF-8") from None
    if is_reserved_name(name):
        raise UnsafePath(f"invalid path component {_q(name)}: reserved name (like .dsrepo)")
    return name


def validate_relpath(path: str) -> str:
    """Return ``path`` if it is a safe worktree-relative POSIX path, else raise UnsafePath.

    Every component must pass :func:`validate_entry_name`: so no leading ``/``, no trailing ``/``,
    no empty, ``.`` or ``..`` components. The root itself (``""``) is not a valid relpath.
    """
    if not path:
        raise UnsafePath("empty path")
    if path.startswith("/"):
        raise UnsafePath(f"path {_q(path)} is absolute")
    for name in path.split("/"):
        try:
            validate_entry_name(name)
        except UnsafePath as exc:
            raise UnsafePath(f"unsafe path {_q(path)}: {exc}") from None
    return path


def user_path_to_relpath(worktree_root: Path, cwd: Path, user_path: str) -> str:
    """Turn a path the user typed (relative to ``cwd``, or absolute) into a worktree relpath.

    Returns ``""`` for the root itself. ``..`` is resolved lexically first (like git); then the
    leading directories are resolved with :func:`os.path.realpath` so a symlinked directory that
    leads outside is caught. The last component is not resolved: it may name a tracked symlink.
    Raises :class:`UnsafePath` when the path is outside the working copy, or names something
    invalid inside it (such as ``.dsrepo/...``).
    """
    root_real = os.path.realpath(worktree_root)
    joined = os.path.normpath(os.path.join(os.fspath(cwd), user_path))
    parent, base = os.path.split(joined)
    full = os.path.join(os.path.realpath(parent), base) if base else os.path.realpath(parent)
    rel = os.path.relpath(full, root_real)
    if rel == os.curdir:
        return ""
    if rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):
        # The root itself, named through a symlink ("cd ~/link-to-worktree && dsrepo add .").
        if os.path.realpath(joined) == root_real:
            return ""
        raise UnsafePath(f"{_q(user_path)} is outside the working copy at {worktree_root}")
    if os.sep != "/":  # pragma: no cover - POSIX only today
        rel = rel.replace(os.sep, "/")
    return validate_relpath(rel)


def _current_umask() -> int:
    """The process umask, read without changing it when the platform allows."""
    with (
        contextlib.suppress(OSError, ValueError, IndexError),
        open("/proc/self/status", encoding="ascii", errors="replace") as f,
    ):
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    old = os.umask(0o022)
    os.umask(old)
    return old


_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_DIR = os.O_RDONLY | os.O_DIRECTORY | _O_CLOEXEC
_O_DIR_NOFOLLOW = _O_DIR | os.O_NOFOLLOW
_O_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _O_CLOEXEC


class SafeWriter:
    """Materializes files under ``root`` without ever writing through a symlink.

    Every operation validates its relpath (:func:`validate_relpath`), then walks the parent
    directories one component at a time with ``open(O_DIRECTORY | O_NOFOLLOW)`` relative to the
    previous directory's descriptor, creating missing ones with ``mkdir(dir_fd=...)``. A leading
    component that is a symlink or not a directory raises :class:`UnsafePath` naming it; since all
    later calls are relative to the verified descriptors, a concurrent rename cannot redirect them.

    Files are written to ``.dsrepo-tmp-<pid>-XXXXXXXXXXXX`` in the destination directory, then
    ``os.replace``-d over the destination (atomic: readers see the old or the new file, never a
    partial one). An existing file or symlink at the destination is replaced; an existing *empty*
    directory is removed first; a non-empty directory raises :class:`UnsafePath`. On any error the
    temp file is removed. Permissions are ``0o777``/``0o666`` minus the umask (``0o755``/``0o644``
    with the usual umask 022), always keeping the owner's read/write (and execute for executables)
    bits. ``durable=True`` fsyncs each file and its directory; checkout skips that by default.

    Given a content id and size, :meth:`write_file` hashes the bytes (plain BLAKE3) as they
    stream and renames the temp file into place only if both match; else it is removed and
    :class:`~dsrepo.objects.errors.CorruptObject` names the path and both ids. The first time a
    writer opens a directory it deletes the temp files there whose process is gone (only this
    class's names, :func:`is_stale_temp`), so a re-run leaves no trace of a killed one.
    """

    def __init__(self, root: Path, *, durable: bool = False) -> None:
        self.root = Path(root)
        self.durable = durable
        umask = _current_umask()
        self._file_mode = (0o666 & ~umask) | 0o600
        self._exec_mode = (0o777 & ~umask) | 0o700
        self._modes_need_chmod = (umask & 0o700) != 0
        self._swept: set[str] = set()

    # -- directory walking -------------------------------------------------------------------

    def _open_parent(self, relpath: str, parts: list[str], *, create: bool) -> int | None:
        """Descriptor of the directory holding ``parts[-1]``; None when missing and not create."""
        fd = os.open(self.root, _O_DIR)
        try:
            for i, name in enumerate(parts[:-1]):
                try:
                    nfd = os.open(name, _O_DIR_NOFOLLOW, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        os.close(fd)
                        return None
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, 0o777, dir_fd=fd)
                    nfd = self._open_existing_dir(fd, relpath, parts[: i + 1])
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                        raise
                    nfd = self._open_existing_dir(fd, relpath, parts[: i + 1])
                os.close(fd)
                fd = nfd
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _open_existing_dir(self, dir_fd: int, relpath: str, leading: list[str]) -> int:
        name = leading[-1]
        try:
            return os.open(name, _O_DIR_NOFOLLOW, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                raise
        where = "/".join(leading)
        try:
            is_link = stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        except OSError:
            is_link = False
        what = "a symbolic link" if is_link else "not a directory"
        raise UnsafePath(f"cannot write {_q(relpath)}: {_q(where)} is {what}")

    def _clear_directory(self, dir_fd: int, name: str, relpath: str) -> None:
        """If ``name`` is a directory, remove it when empty, else raise UnsafePath."""
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            try:
                os.rmdir(name, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise UnsafePath(
                        f"cannot write {_q(relpath)}: a non-empty directory is in the way"
                    ) from None
                raise

    def _fsync_fd(self, fd: int) -> None:
        if self.durable:
            os.fsync(fd)

    def _sweep_once(self, dir_fd: int, reldir: str) -> None:
        if reldir not in self._swept:
            self._swept.add(reldir)
            _remove_stale_temps(dir_fd)

    def sweep(self, reldir: str = "") -> int:
        """Delete stale temp files (:func:`is_stale_temp`) in directory ``reldir`` of the root
        (``""``: the root itself); returns how many. A missing directory is not an error."""
        if reldir in self._swept:
            return 0
        parts = [*validate_relpath(reldir).split("/"), "."] if reldir else ["."]
        try:
            dir_fd = self._open_parent(reldir or ".", parts, create=False)
        except (OSError, UnsafePath):
            return 0  # not a directory we would write into
        if dir_fd is None:
            return 0
        try:
            self._swept.add(reldir)
            return _remove_stale_temps(dir_fd)
        finally:
            os.close(dir_fd)

    # -- public operations -------------------------------------------------------------------

    def open_parent(self, relpath: str) -> int:
        """The directory of ``relpath`` (validated), made if missing, reached never through a
        symlink, swept; :meth:`write_at` writes its files into it. The caller closes it."""
        validate_relpath(relpath)
        dir_fd = self._open_parent(relpath, relpath.split("/"), create=True)
        assert dir_fd is not None
        try:
            self._sweep_once(dir_fd, relpath.rpartition("/")[0])
        except BaseException:
            os.close(dir_fd)
            raise
        return dir_fd

    def write_file(
        self,
        relpath: str,
        chunks: Iterable[bytes],
        executable: bool,
        *,
        content_id: bytes | None = None,
        size: int | None = None,
    ) -> os.stat_result:
        """Write ``chunks`` to ``relpath`` atomically; return the written file's lstat. With
        ``content_id``/``size``, only bytes hashing to it, that many (else CorruptObject)."""
        dir_fd = self.open_parent(relpath)
        try:
            st = self.write_at(
                dir_fd, relpath, chunks, executable, content_id=content_id, size=size
            )
            assert st is not None
            return st
        finally:
            os.close(dir_fd)

    def write_at(
        self,
        dir_fd: int,
        relpath: str,
        chunks: Iterable[bytes],
        executable: bool,
        *,
        content_id: bytes | None = None,
        size: int | None = None,
        stat_after: bool = True,
    ) -> os.stat_result | None:
        """:meth:`write_file` into ``dir_fd`` (:meth:`open_parent` of a file of ``relpath``'s
        directory; its last name valid); the lstat only with ``stat_after``."""
        name = relpath.rpartition("/")[2]
        tmp: str | None = None
        fd = -1
        try:
            mode = self._exec_mode if executable else self._file_mode
            tmp, fd = self._create_temp(dir_fd, _O_NEW_FILE, mode)
            if self._modes_need_chmod:
                os.fchmod(fd, mode)
            hasher = blake3() if content_id is not None else None  # a size alone: counted
            written = 0
            for chunk in chunks:
                if hasher is not None:
                    hasher.update(chunk)
                written += len(chunk)
                n = os.write(fd, chunk)
                if n < len(chunk):  # a short write: the rest, piece by piece
                    view = memoryview(chunk)[n:]
                    while view:
                        view = view[os.write(fd, view) :]
            _check_content(relpath, hasher, written, content_id, size)
            self._fsync_fd(fd)
            os.close(fd)
            fd = -1
            try:
                os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except OSError as exc:  # a directory in the way: removed if empty, else refused
                if exc.errno not in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                    raise
                self._clear_directory(dir_fd, name, relpath)
                os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            tmp = None
            self._fsync_fd(dir_fd)
            return os.stat(name, dir_fd=dir_fd, follow_symlinks=False) if stat_after else None
        finally:
            if fd >= 0:
                os.close(fd)
            if tmp is not None:
                _unlink_quietly(tmp, dir_fd)

    def _create_temp(self, dir_fd: int, flags: int, mode: int) -> tuple[str, int]:
        for _ in range(100):
            tmp = _temp_name()
            try:
                return tmp, os.open(tmp, flags, mode, dir_fd=dir_fd)
            except FileExistsError:
                continue
        raise FileExistsError(errno.EEXIST, "could not create a temporary file")  # pragma: no cover

    def write_symlink(
        self, relpath: str, target: str, allow_outside: bool = False
    ) -> os.stat_result:
        """Create (or atomically replace) the symlink ``relpath -> target``; return its lstat.
        Unless ``allow_outside``, refuses a target that is absolute, escapes the root resolved
        lexically from the link's directory, points into ``.dsrepo``, or has ``..`` after a
        normal component (``a/../b``: lexical resolution of ``a/..`` is right only when ``a`` is
        no symlink, so it could escape through another link). With only leading ``..`` and real
        directories as parents (as this class makes them), it stays inside through checked links.
        """
        validate_relpath(relpath)
        check_link_target(relpath, target, allow_outside=allow_outside)
        name = relpath.rpartition("/")[2]
        dir_fd = self.open_parent(relpath)
        tmp: str | None = None
        try:
            self._clear_directory(dir_fd, name, relpath)
            for _ in range(100):
                tmp = _temp_name()
                try:
                    os.symlink(target, tmp, dir_fd=dir_fd)
                    break
                except FileExistsError:
                    tmp = None
            if tmp is None:  # pragma: no cover
                raise FileExistsError(errno.EEXIST, "could not create a temporary symlink")
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            tmp = None
            self._fsync_fd(dir_fd)
            return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        finally:
            if tmp is not None:
                _unlink_quietly(tmp, dir_fd)
            os.close(dir_fd)

    def remove(self, relpath: str) -> None:
        """Remove the file or symlink at ``relpath``; an empty directory there is removed too.

        Missing is not an error. A non-empty directory, or a leading component that is a symlink
        or not a directory, raises :class:`UnsafePath` (nothing is removed through a symlink).
        """
        validate_relpath(relpath)
        parts = relpath.split("/")
        dir_fd = self._open_parent(relpath, parts, create=False)
        if dir_fd is None:
            return
        try:
            os.unlink(parts[-1], dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        except (IsADirectoryError, PermissionError) as exc:
            # Linux says EISDIR, POSIX allows EPERM for unlink() on a directory.
            try:
                st = os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                return
            if not stat.S_ISDIR(st.st_mode):
                raise exc from None
            try:
                os.rmdir(parts[-1], dir_fd=dir_fd)
            except OSError as exc2:
                if exc2.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise UnsafePath(
                        f"cannot remove {_q(relpath)}: it is a non-empty directory"
                    ) from None
                raise
        finally:
            os.close(dir_fd)

    def remove_empty_parents(self, relpath: str) -> None:
        """Remove the now-empty directories above ``relpath``, deepest first (not the root).

        Stops at the first directory that is not empty (or missing, or not removable). Does not
        touch ``relpath`` itself; never follows a symlink.
        """
        validate_relpath(relpath)
        dirs = relpath.split("/")[:-1]
        fds = [os.open(self.root, _O_DIR)]
        try:
            for name in dirs:
                try:
                    fds.append(os.open(name, _O_DIR_NOFOLLOW, dir_fd=fds[-1]))
                except OSError:
                    break
            # fds[i + 1] is dirs[i], opened from fds[i] (its parent). Start at the deepest
            # directory that exists (and is one): a missing deeper part does not stop us.
            for i in range(len(fds) - 2, -1, -1):
                try:
                    os.rmdir(dirs[i], dir_fd=fds[i])
                except OSError:
                    break
        finally:
            for fd in fds:
                os.close(fd)


def _unlink_quietly(name: str, dir_fd: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name, dir_fd=dir_fd)


def _remove_stale_temps(dir_fd: int) -> int:
    removed = 0
    with contextlib.suppress(OSError), os.scandir(dir_fd) as it:
        for entry in it:
            if entry.name.startswith(TEMP_PREFIX) and is_stale_temp(entry.name):
                with contextlib.suppress(OSError):
                    if not entry.is_dir(follow_symlinks=False):
                        os.unlink(entry.name, dir_fd=dir_fd)
                        removed += 1
    return removed


def _check_content(
    relpath: str, hasher: blake3 | None, got_size: int, content_id: bytes | None, size: int | None
) -> None:
    got = hasher.digest() if hasher is not None else b""
    if (content_id is None or got == content_id) and (size is None or got_size == size):
        return
    hashed, want = (f" hashing to {got.hex()}", f"{content_id.hex()}, ") if content_id else ("", "")
    raise CorruptObject(
        f"refusing to write {_q(relpath)}: its {got_size} bytes{hashed} are not what its tree "
        f"entry names ({want}{size if size is not None else '?'} bytes)"
    )


def check_link_target(relpath: str, target: str, *, allow_outside: bool = False) -> None:
    """Raise :class:`UnsafePath` unless symlink ``relpath -> target`` may be written (and, at
    ``add``, stored): the target is non-empty, has no NUL, fits ``PATH_MAX`` and, unless
    ``allow_outside``, stays inside the working copy and out of ``.dsrepo`` (the rules of
    :meth:`SafeWriter.write_symlink`). One rule for ``add`` and ``checkout``."""
    if not target or "\0" in target:
        raise UnsafePath(f"symlink {_q(relpath)} has an invalid target {_q(target)}")
    if len(os.fsencode(target)) > LINK_TARGET_MAX:
        raise UnsafePath(
            f"symlink {_q(relpath)} has a target of {len(os.fsencode(target))} bytes "
            f"(at most {LINK_TARGET_MAX})"
        )
    if not allow_outside:
        _check_link_target(relpath, target)


def _check_link_target(relpath: str, target: str) -> None:
    link = f"symlink {_q(relpath)} -> {_q(target)}"
    outside = UnsafePath(f"{link} points outside the working copy")
    if target.startswith("/") or (sys.platform == "win32" and posixpath.isabs(target)):
        raise outside
    stack = relpath.split("/")[:-1]
    seen_name = False
    for comp in target.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if seen_name:
                raise UnsafePath(
                    f"{link} has '..' after a directory name "
                    "(it could escape through another symlink)"
                )
            if not stack:
                raise outside
            stack.pop()
        else:
            seen_name = True
            stack.append(comp)
    if stack and is_reserved_name(stack[0]):
        raise UnsafePath(f"{link} points into the repository directory")


def find_case_collisions(paths: Iterable[str]) -> list[tuple[str, str]]:
    """Pairs of distinct paths that a case-insensitive filesystem would store as one.

    Two paths collide when ``str.casefold`` of their NFD forms are equal (so NFC/NFD variants,
    which macOS filesystems also merge, are reported too). Each pair is ``(a, b)`` with ``a < b``
    and the first path of each group paired with every other; the list is sorted.
    """
    groups: dict[str, list[str]] = {}
    for p in set(paths):
        if p.isascii():
            key = p.lower()
        else:
            key = unicodedata.normalize("NFD", unicodedata.normalize("NFD", p).casefold())
        groups.setdefault(key, []).append(p)
    out: list[tuple[str, str]] = []
    for members in groups.values():
        if len(members) > 1:
            members.sort()
            out.extend((members[0], other) for other in members[1:])
    out.sort()
    return out


def is_case_insensitive_fs(root: Path) -> bool:
    """Probe whether the filesystem holding ``root`` ignores letter case (creates a temp file)."""
    name = _temp_name("case-")
    path = os.path.join(root, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _O_CLOEXEC, 0o600)
    try:
        os.close(fd)
        return os.path.lexists(os.path.join(root, name.upper()))
    finally:
        os.unlink(path)
