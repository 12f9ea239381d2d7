"""Placing a version that ``get`` fetched into a folder (:mod:`dsrepo.dvcs.getcache`): each
file written once into the cache's file area, verified and read-only, then linked into the
folder (:mod:`dsrepo.dvcs.linkcopy`); the folder made exactly the version, using the record the
cache keeps of what was written there (``dirs/``).

Rules: every check comes before the first change (files in the way, :func:`preflight`); a file
that is right stays; a file ``get`` wrote there earlier and that is unchanged since is replaced
or, when the version lacks it, removed (and named); anything else is refused (exit 6) unless
``force``. A file of the area whose size, mode or mtime moved (a write through a hard link) is
never linked again: it is rewritten from the store first.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from blake3 import blake3

from dsrepo.dvcs.checkout import _check_case
from dsrepo.dvcs.errors import PathError, WouldOverwrite, path_errors
from dsrepo.dvcs.linkcopy import Placer
from dsrepo.dvcs.paths import SafeWriter, UnsafePath, _temp_name, is_stale_temp
from dsrepo.dvcs.preflight import preflight
from dsrepo.dvcs.worktree import hash_file
from dsrepo.dvcs.writebatch import write_entry
from dsrepo.objects.errors import CorruptObject
from dsrepo.objects.ids import hash_data
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import TreeEntry
from dsrepo.objects.transfer import Progress

if TYPE_CHECKING:
    from dsrepo.dvcs.getcache import GetResult
    from dsrepo.dvcs.repository import Repository

FIXED_MTIME = 1_000_000_000
"""The mtime of every file in the file area; any write through a hard link changes it."""
_PLACE_TRIES = 5
"""Placings of a file whose area file lost its name meanwhile (:func:`_place_from_area`)."""


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = SafeWriter(path.parent)
    writer.write_file(path.name, [json.dumps(data, sort_keys=True).encode()], False)


# ---------------------------------------------------------------- the file area


def area_name(e: TreeEntry) -> str:
    h = e.id.hex()
    return f"{h[:2]}/{h}" + ("x" if e.kind == EntryKind.EXECUTABLE else "")


def _area_file(cache: Repository, area: SafeWriter, e: TreeEntry, path: str) -> Path:
    """The read-only file of ``e`` in the file area, written (and verified) when absent or
    touched since (its size, mode or mtime moved)."""
    name = area_name(e)
    full = area.root / name
    mode = 0o555 if e.kind == EntryKind.EXECUTABLE else 0o444
    with contextlib.suppress(OSError):
        st = full.lstat()
        if _untouched(st, e, mode):
            return full
    # written under a temp name, made read-only with the fixed mtime, then renamed: another get
    # never sees (and links) the file before it is final
    tmp = f"{name.rpartition('/')[0]}/{_temp_name()}"
    try:
        area.write_file(
            tmp, cache.store.read_chunks(e), mode == 0o555, content_id=e.id, size=e.size
        )
        os.chmod(area.root / tmp, mode)
        os.utime(area.root / tmp, (FIXED_MTIME, FIXED_MTIME))
        os.replace(area.root / tmp, full)
    except CorruptObject as exc:
        raise CorruptObject(f"refusing to write {path!r}: {exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(area.root / tmp)
    return full


def _place_from_area(
    cache: Repository, area: SafeWriter, placer: Placer, e: TreeEntry, path: str
) -> None:
    """Place ``e`` at ``path`` from its file in the area (:func:`_area_file`), trying again when
    that file lost its name under the placing.

    An area name only ever holds a verified copy, renamed into place; no prune runs meanwhile
    (the gc lock is held shared). But another get may rename its own copy over it at any moment
    (both found it absent, as right after a prune, or touched), and a hard link made while that
    happens fails with ENOENT: the kernel refuses to link an inode whose last name just went.
    The name still holds a right file, so looking again and linking again is enough."""
    for attempt in range(_PLACE_TRIES):
        src = _area_file(cache, area, e, path)
        try:
            placer.place(src, path, e.kind == EntryKind.EXECUTABLE)
            return
        except FileNotFoundError:
            if attempt + 1 == _PLACE_TRIES:
                raise
        except UnsafePath as exc:
            raise PathError(str(exc)) from None


def _untouched(st: os.stat_result, e: TreeEntry, mode: int) -> bool:
    return (
        st.st_size == e.size
        and int(st.st_mtime) == FIXED_MTIME
        and (st.st_mode & 0o7777) == mode
        and stat.S_ISREG(st.st_mode)
    )


# ---------------------------------------------------------------- placing the version


def marker_path(root: Path, into: Path) -> Path:
    """Where the cache records what ``get`` wrote into folder ``into``."""
    return root / "dirs" / f"{blake3(os.fsencode(os.path.realpath(into))).hexdigest()[:32]}.json"


def _read_marker(marker: Path) -> dict[str, set[str]] | None:
    try:
        data = json.loads(marker.read_text("utf-8"))
        return {str(p): {str(i) for i in ids} for p, ids in data["files"].items()}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _write_marker(marker: Path, result: GetResult, rev: str, files: Mapping[str, set[str]]) -> None:
    data = {
        "dir": str(result.path),
        "url": result.url,
        "rev": rev,
        "commit": result.commit.hex() if result.commit else None,
        "files": {p: sorted(ids) for p, ids in sorted(files.items())},
    }
    write_json(marker, data)


def _present(into: Path) -> Iterator[str]:
    """Every file and symlink below ``into`` (never following a link), but the temp files of a
    dead writer."""
    for dirpath, dirs, names in os.walk(into):
        rel = Path(dirpath).relative_to(into).as_posix()
        for name in [*names, *(d for d in dirs if os.path.islink(os.path.join(dirpath, d)))]:
            p = name if rel == "." else f"{rel}/{name}"
            if is_stale_temp(name):
                continue
            yield p


def _content(full: Path) -> str | None:
    """The content id of the file or symlink at ``full`` (hex), None when unreadable."""
    try:
        if full.is_symlink():
            return hash_data(os.fsencode(os.readlink(full))).hex()
        if not full.is_file():
            return None
        return hash_file(str(full), 0).content_id.hex()
    except OSError:
        return None


def place(
    cache: Repository,
    root: Path,
    files: Mapping[str, TreeEntry],
    result: GetResult,
    rev: str,
    *,
    force: bool,
    link: str,
    mutable: bool,
    progress: Progress | None,
) -> None:
    into = result.path
    home = root.absolute()
    if (into == home or into in home.parents or home in into.parents) and into.parent != (
        home / "copies"
    ):
        raise PathError(f"refusing to materialize into the cache folder {root}")
    with path_errors(into, "directory"):
        into.mkdir(parents=True, exist_ok=True)
    _check_case(into, files)
    area_root = root / "files"
    area_root.mkdir(parents=True, exist_ok=True)
    area = SafeWriter(area_root)
    marker = marker_path(root, into)
    listed = _read_marker(marker) or {}
    present = set(_present(into))
    todo: list[tuple[str, TreeEntry]] = []
    conflicts: list[str] = []
    for p, e in sorted(files.items()):
        full = into / p
        if p in present:
            state = _state(full, e, area_root, mutable)
            if state == "same":
                result.kept += 1
                continue
            if state == "mode":
                with contextlib.suppress(OSError):
                    os.chmod(full, 0o555 if e.kind == EntryKind.EXECUTABLE else 0o444)
                result.kept += 1
                continue
            if state == "differs" and not force and _content(full) not in listed.get(p, set()):
                conflicts.append(p)
                continue
        todo.append((p, e))
    stale = sorted(present - set(files))
    for p in stale:
        if not force and _content(into / p) not in listed.get(p, set()):
            conflicts.append(p)
    if conflicts:
        raise WouldOverwrite(
            f"{len(conflicts)} file(s) in {into} were not written by get or changed since "
            f"(use --force to replace or remove them): " + ", ".join(sorted(conflicts)[:20])
        )
    preflight(cache, into, todo)
    writer = SafeWriter(into)
    placer = Placer(writer, link, mutable=mutable)  # refuses a bad choice before any change
    for d in sorted({"", *(p.rpartition("/")[0] for p in files)}):
        writer.sweep(d)
    intent = {p: set(ids) for p, ids in listed.items() if p in files or p in stale}
    for p, e in files.items():
        intent.setdefault(p, set()).add(e.id.hex())
    _write_marker(marker, result, rev, intent)
    for p in stale:
        try:
            writer.remove(p)
            writer.remove_empty_parents(p)
        except UnsafePath as exc:
            raise PathError(str(exc)) from None
        result.removed.append(p)
    total = sum(e.size for _, e in todo)
    created: list[str] = []
    try:
        for p, e in todo:
            existed = p in present
            if e.kind == EntryKind.SYMLINK:
                write_entry(cache.store, writer, p, e, False)
            else:
                _place_from_area(cache, area, placer, e, p)
            if not existed:
                created.append(p)
            result.written.append(p)
            result.bytes_written += e.size
            if progress:
                progress(result.bytes_written, total)
    except (CorruptObject, PathError):  # what this run created goes again
        for p in created:
            with contextlib.suppress(OSError, UnsafePath):
                writer.remove(p)
                writer.remove_empty_parents(p)
        raise
    result.methods = dict(placer.used)
    result.linked = placer.used.get("reflink", 0) + placer.used.get("hardlink", 0)
    _write_marker(marker, result, rev, {p: {e.id.hex()} for p, e in files.items()})


def _state(full: Path, e: TreeEntry, area_root: Path, mutable: bool) -> str:
    """``same`` (nothing to do), ``mode`` (right bytes, writable: made read-only), ``shared``
    (right bytes, but a hard link to the cache where a copy of its own is wanted), ``differs``."""
    try:
        st = full.lstat()
    except OSError:
        return "differs"
    if e.kind == EntryKind.SYMLINK:
        return "same" if _content(full) == e.id.hex() else "differs"
    mode = 0o555 if e.kind == EntryKind.EXECUTABLE else 0o444
    try:
        ast = (area_root / area_name(e)).lstat()
    except OSError:
        ast = None
    if ast is not None and (ast.st_ino, ast.st_dev) == (st.st_ino, st.st_dev):
        if not _untouched(ast, e, mode):
            return "differs"
        return "shared" if mutable else "same"
    if not stat.S_ISREG(st.st_mode) or st.st_size != e.size:
        return "differs"
    if _content(full) != e.id.hex():
        return "differs"
    if bool(st.st_mode & 0o100) != (e.kind == EntryKind.EXECUTABLE):
        return "differs"
    if mutable or (st.st_mode & 0o222) == 0:
        return "same"
    return "mode"
