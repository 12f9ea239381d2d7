"""A repository on a full or read-only filesystem: reads keep working, writes fail in one line.

Expected of every command: a write the filesystem refuses is ``dsrepo: error: no space left on
device: PATH`` (or ``read-only file system: PATH``), exit 12, nothing corrupt, everything committed
before still readable; read-only commands (status, log, show, ls-files, fsck, checkout --into
elsewhere) work as if nothing were wrong.

The real-filesystem tests mount a small tmpfs (root only; skipped where mounting is refused). The
in-process test fills the disk at every ``fsync`` of an add and a commit in turn, and always runs.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Cli, Dsrepo, Run, write

NO_SPACE = "dsrepo: error: no space left on device: "
READ_ONLY = "dsrepo: error: read-only file system: "


def _mount(*args: str) -> bool:
    try:
        proc = subprocess.run(["mount", *args], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (``mount -t tmpfs`` needs root; CI runs as root)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small filesystem needs root")
    point = tmp_path / "fs"
    point.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(point)):
        pytest.skip("mount -t tmpfs is not permitted here")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True, timeout=30)


def fill(fs: Path, leave: int) -> Path:
    """Fill ``fs`` up, then give back ``leave`` bytes (a tmpfs frees truncated pages)."""
    filler = fs / "filler"
    block = b"\0" * 65536
    with open(filler, "wb", buffering=0) as f:
        while True:
            try:
                f.write(block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
        for size in (4096, 1):
            while True:
                try:
                    f.write(b"\0" * size)
                except OSError:
                    break
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def make_repo(dsrepo: Dsrepo, root: Path) -> Path:
    """Two commits (a.txt, data/b.bin; then a.txt changed); files older than the index."""
    root.mkdir()
    dsrepo(root, "init", "-q")
    write(root, "a.txt", "one\n")
    write(root, "data/b.bin", os.urandom(3000))
    time.sleep(0.05)  # coarse tmpfs timestamps: not racily clean when read-only commands run
    dsrepo(root, "add", ".")
    dsrepo(root, "commit", "-q", "-m", "one")
    write(root, "a.txt", "two\n")
    time.sleep(0.05)
    dsrepo(root, "commit", "-q", "-a", "-m", "two")
    return root


def one_line(r: Run, start: str) -> None:
    assert len(r.err_lines) == 1 and r.err_lines[0].startswith(start), r
    assert r.code == 12, r


def reads_work(dsrepo: Dsrepo, root: Path, outside: Path) -> None:
    """Every read-only command, exit 0 and the right answers."""
    assert dsrepo(root, "log", "--oneline").out.count("\n") == 2
    assert dsrepo(root, "ls-files").out.split() == ["a.txt", "data/b.bin"]
    assert dsrepo(root, "show", "HEAD:a.txt").out == "two\n"
    assert dsrepo(root, "show", "HEAD~1:a.txt").out == "one\n"
    assert "a.txt" in dsrepo(root, "diff", "HEAD~1", "HEAD", "--stat").out
    dsrepo(root, "fsck")
    dsrepo(root, "status")
    dsrepo(root, "checkout", "HEAD~1", "--into", str(outside))
    assert (outside / "a.txt").read_text() == "one\n"
    assert (outside / "data" / "b.bin").read_bytes() == (root / "data" / "b.bin").read_bytes()
    shutil.rmtree(outside)


@pytest.mark.parametrize("free_kib", [0, 24, 160])
def test_a_full_disk_keeps_reads_working_and_refuses_writes_in_one_line(
    small_fs: Path, dsrepo: Dsrepo, tmp_path: Path, free_kib: int
) -> None:
    """Regression: with a few KiB free every command, status and log included, exited 70 (the
    location cache re-created itself until a RecursionError)."""
    root = make_repo(dsrepo, small_fs / "repo")
    write(root, "big.bin", os.urandom(600_000))
    filler = fill(small_fs, free_kib * 1024)

    reads_work(dsrepo, root, tmp_path / "out")
    one_line(dsrepo.run(root, "add", "big.bin"), NO_SPACE)
    if free_kib == 0:
        one_line(dsrepo.run(root, "config", "user.name", "Someone"), NO_SPACE)
    reads_work(dsrepo, root, tmp_path / "out")

    filler.unlink()
    dsrepo(root, "fsck")
    dsrepo(root, "add", "big.bin")
    dsrepo(root, "commit", "-q", "-m", "three")
    assert dsrepo(root, "show", "HEAD:big.bin").out_bytes == (root / "big.bin").read_bytes()
    assert dsrepo(root, "log", "--oneline").out.count("\n") == 3


def test_status_on_a_full_disk_does_not_need_to_save_the_stat_cache(
    small_fs: Path, dsrepo: Dsrepo
) -> None:
    """status records the new stat of files found unchanged; when that cannot be saved it
    answers anyway (the next status re-hashes them)."""
    root = make_repo(dsrepo, small_fs / "repo")
    os.utime(root / "a.txt", ns=(time.time_ns(), time.time_ns()))  # same content, new stat
    fill(small_fs, 0)
    r = dsrepo(root, "status", "--short")
    assert r.out == "" and r.err == ""


def test_ref_updates_on_a_full_disk_are_one_line(small_fs: Path, dsrepo: Dsrepo) -> None:
    root = make_repo(dsrepo, small_fs / "repo")
    fill(small_fs, 0)
    one_line(dsrepo.run(root, "branch", "other"), NO_SPACE)
    one_line(dsrepo.run(root, "tag", "v1"), NO_SPACE)
    assert dsrepo(root, "branch").out.split() == ["*", "main"]


@pytest.fixture
def read_only_repo(small_fs: Path, dsrepo: Dsrepo, request: pytest.FixtureRequest) -> Path:
    root = make_repo(dsrepo, small_fs / "repo")
    write(root, "new.txt", "untracked\n")
    cache = root / ".dsrepo" / "cache"
    damage = getattr(request, "param", "kept")
    if damage == "stale":  # the last pack was never recorded
        dsrepo(root, "commit", "-q", "--allow-empty", "-m", "three")
        con = sqlite3.connect(cache / "objects.sqlite")
        con.execute("DELETE FROM packs WHERE no = (SELECT MAX(no) FROM packs)")
        con.commit()
        con.close()
    elif damage == "file deleted":
        for p in cache.iterdir():
            p.unlink()
    elif damage == "directory deleted":
        shutil.rmtree(cache)
    if not _mount("-o", "remount,ro", str(small_fs)):
        pytest.skip("remounting read-only is not permitted here")
    return root


@pytest.mark.parametrize(
    "read_only_repo", ["kept", "stale", "file deleted", "directory deleted"], indirect=True
)
def test_a_read_only_repository_answers_read_only_commands(
    read_only_repo: Path, dsrepo: Dsrepo, tmp_path: Path
) -> None:
    """Regression: every command exited 70, as the location cache could not be opened for
    writing."""
    root = read_only_repo
    assert "new.txt" in dsrepo(root, "status", "--short").out
    assert dsrepo(root, "log", "--oneline").out.count("\n") >= 2
    dsrepo(root, "fsck")
    dsrepo(root, "checkout", "HEAD", "--into", str(tmp_path / "out"))
    assert (tmp_path / "out" / "a.txt").read_text() == "two\n"
    one_line(dsrepo.run(root, "add", "new.txt"), READ_ONLY)
    one_line(dsrepo.run(root, "commit", "-m", "x", "--allow-empty"), READ_ONLY)
    one_line(dsrepo.run(root, "config", "user.name", "Someone"), READ_ONLY)


# ---------------------------------------------------------------- in process, always


@pytest.fixture
def failing_fsync(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """``state[0] = N`` makes the Nth ``os.fsync`` from then on, and every later one, fail with
    ENOSPC, as a disk that fills up would (every durable write of dsrepo fsyncs)."""
    real = os.fsync
    state = [0, 0]

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):  # a full disk fails writes of data, not renames
            return real(fd)
        state[1] += 1
        if state[0] and state[1] >= state[0]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    yield state


def test_add_and_commit_with_the_disk_filling_at_every_write(
    wc: Path, cli: Cli, failing_fsync: list[int]
) -> None:
    write(wc, "a.txt", "one\n")
    cli("add", ".")
    cli("commit", "-q", "-m", "one")
    committed = "one\n"
    for n in range(1, 100):
        write(wc, f"f{n}.txt", f"file {n}\n")
        write(wc, "a.txt", f"version {n}\n")
        failing_fsync[:] = [n, 0]
        add = cli.run("add", ".")
        commit = cli.run("commit", "-q", "-m", f"c{n}") if add.code == 0 else None
        failing_fsync[0] = 0
        for r in (add, commit):
            if r is not None and r.code != 0:
                one_line(r, NO_SPACE)
        cli("fsck")
        if commit is not None and commit.code == 0:
            committed = f"version {n}\n"
        assert cli("show", "HEAD:a.txt").out == committed  # all or nothing
        assert cli("log", "--oneline").out.splitlines()[-1].endswith(" one")
        if commit is not None and commit.code == 0:
            break
    else:
        raise AssertionError("the add and commit never got through")
    assert n > 3  # the disk filled at the pack, its index, the staging index, the ref...
