"""Tests for dsrepo.dvcs.scan: the working-copy walk."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from dsrepo.dvcs.ignore import IGNORE_FILE, IgnoreRules
from dsrepo.dvcs.scan import ScanEntry, ScanError, path_sort_key, scan
from dsrepo.objects.kinds import EntryKind


def write(root: Path, rel: str, data: bytes = b"x") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def run(root: Path, only: Sequence[str] | None = None) -> list[ScanEntry]:
    return list(scan(root, IgnoreRules.load(root), only))


def paths(root: Path, only: Sequence[str] | None = None) -> list[str]:
    return [e.path for e in run(root, only)]


def test_entry_kind_values() -> None:
    assert [(k.name, int(k)) for k in EntryKind] == [
        ("FILE", 0),
        ("EXECUTABLE", 1),
        ("SYMLINK", 2),
        ("TREE", 3),
    ]


def test_empty_working_copy(tmp_path: Path) -> None:
    assert run(tmp_path) == []


def test_component_order(tmp_path: Path) -> None:
    names = ["ab", "a.c", "a-b", "a/x", "a/y/z", "a/y-", "B", "\u00e9", "z", "a b", "a/\u65e5"]
    for n in names:
        write(tmp_path, n)
    got = paths(tmp_path)
    assert got == [
        "B",
        "a/x",
        "a/y/z",
        "a/y-",
        "a/\u65e5",
        "a b",
        "a-b",
        "a.c",
        "ab",
        "z",
        "\u00e9",
    ]
    assert got == sorted(names, key=path_sort_key)
    assert got != sorted(names)  # plain string order puts "a-b" before "a/x"


def test_order_of_names_that_are_not_utf8(tmp_path: Path) -> None:
    # U+E000 is EE 80 80 in UTF-8, below the raw byte FF; as str the surrogate U+DCFF is lower.
    bad = os.fsdecode(b"\xff")
    for name in (bad, "\ue000", "a"):
        write(tmp_path, name)
    got = paths(tmp_path)
    assert got == ["a", "\ue000", bad]
    assert got == sorted(got, key=path_sort_key)


def test_kinds_and_stat_fields(tmp_path: Path) -> None:
    write(tmp_path, "plain.bin", b"12345")
    exe = write(tmp_path, "run.sh", b"#!/bin/sh\n")
    exe.chmod(0o755)
    group_exec = write(tmp_path, "group-exec")
    group_exec.chmod(0o654)  # only the owner's x bit counts
    write(tmp_path, "dir/target.txt", b"t")
    (tmp_path / "link-file").symlink_to("dir/target.txt")
    (tmp_path / "link-dir").symlink_to("dir")
    (tmp_path / "link-broken").symlink_to("nowhere/at/all")
    entries = {e.path: e for e in run(tmp_path)}
    assert {p: e.kind for p, e in entries.items()} == {
        "dir/target.txt": EntryKind.FILE,
        "group-exec": EntryKind.FILE,
        "link-broken": EntryKind.SYMLINK,
        "link-dir": EntryKind.SYMLINK,  # not followed: no link-dir/target.txt
        "link-file": EntryKind.SYMLINK,
        "plain.bin": EntryKind.FILE,
        "run.sh": EntryKind.EXECUTABLE,
    }
    for p, e in entries.items():
        st = os.lstat(tmp_path / p)
        assert (e.size, e.mtime_ns, e.ctime_ns, e.ino, e.mode) == (
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
            st.st_ino,
            st.st_mode,
        )
    assert entries["plain.bin"].size == 5
    assert entries["link-broken"].size == len("nowhere/at/all")


def test_scan_entry_is_a_frozen_slotted_dataclass(tmp_path: Path) -> None:
    write(tmp_path, "a", b"abc")
    (entry,) = run(tmp_path)
    assert dataclasses.is_dataclass(entry)
    assert not hasattr(entry, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.path = "b"  # type: ignore[misc]
    same = ScanEntry(
        entry.path, entry.kind, entry.size, entry.mtime_ns, entry.ctime_ns, entry.ino, entry.mode
    )
    assert entry == same
    assert hash(entry) == hash(same)
    assert dataclasses.replace(entry, size=7).size == 7
    assert isinstance(entry.kind, EntryKind)


def test_special_files_are_skipped(tmp_path: Path) -> None:
    write(tmp_path, "real")
    os.mkfifo(tmp_path / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    with contextlib.suppress(OSError):  # a path too long for AF_UNIX: no socket, fine
        sock.bind(str(tmp_path / "sock"))
    try:
        assert paths(tmp_path) == ["real"]
    finally:
        sock.close()


def test_empty_and_fully_ignored_directories_are_not_reported(tmp_path: Path) -> None:
    (tmp_path / "empty/deeper").mkdir(parents=True)
    write(tmp_path, "ignored-only/a.tmp")
    write(tmp_path, IGNORE_FILE, b"*.tmp\n")
    assert paths(tmp_path) == [IGNORE_FILE]


def test_ignore_rules_apply_during_the_scan(tmp_path: Path) -> None:
    write(tmp_path, IGNORE_FILE, b"*.log\nbuild/\n")
    write(tmp_path, "a.log")
    write(tmp_path, "a.txt")
    write(tmp_path, "build/out.o")
    write(tmp_path, "src/build")  # a file: "build/" does not match it
    write(tmp_path, f"src/{IGNORE_FILE}", b"!*.log\n")
    write(tmp_path, "src/keep.log")
    write(tmp_path, ".dsrepo/config")
    write(tmp_path, "sub/.DSREPO/objects/x")
    assert paths(tmp_path) == [
        IGNORE_FILE,
        "a.txt",
        f"src/{IGNORE_FILE}",
        "src/build",
        "src/keep.log",
    ]


def test_dsrepo_not_scanned_even_when_negated(tmp_path: Path) -> None:
    write(tmp_path, IGNORE_FILE, b"!.dsrepo\n!.dsrepo/\n!**\n")
    write(tmp_path, ".dsrepo/HEAD")
    assert paths(tmp_path) == [IGNORE_FILE]


@pytest.mark.parametrize(
    ("only", "expected"),
    [
        (["images/c00/*"], ["images/c00/a.bin", "images/c00/sub/b.bin"]),
        (["*.csv"], ["tables/t.csv", "top.csv"]),
        (["tables/"], ["tables/t.csv", "tables/t.txt"]),
        (["tables/", "!*.txt"], ["tables/t.csv", "tables/t.txt"]),  # tables/ selected as a whole
        (["tables/*", "!*.txt"], ["tables/t.csv"]),
        (["images/c00/a.bin", "top.csv"], ["images/c00/a.bin", "top.csv"]),
        (["/tables"], ["tables/t.csv", "tables/t.txt"]),
        (["nothing"], []),
    ],
)
def test_only_patterns(tmp_path: Path, only: list[str], expected: list[str]) -> None:
    for rel in (
        "images/c00/a.bin",
        "images/c00/sub/b.bin",
        "images/c01/a.bin",
        "tables/t.csv",
        "tables/t.txt",
        "top.csv",
    ):
        write(tmp_path, rel)
    assert paths(tmp_path, only) == expected


@pytest.mark.parametrize(
    ("only", "listed"),
    [
        (["/tables/"], {"", "tables"}),
        (["images/c00/*"], {"", "images", "images/c00", "images/c00/sub"}),
        (["/images/c00/a.bin", "!x"], {"", "images", "images/c00"}),
        (["*.csv"], {"", "images", "images/c00", "images/c00/sub", "images/c01", "tables"}),
        (["tables/"], {"", "images", "images/c00", "images/c00/sub", "images/c01", "tables"}),
    ],
)
def test_only_prunes_unreachable_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, only: list[str], listed: set[str]
) -> None:
    for rel in ("images/c00/a.bin", "images/c00/sub/b.bin", "images/c01/a.bin", "tables/t.csv"):
        write(tmp_path, rel)
    seen: set[str] = set()
    real = os.scandir

    def spy(path: Any) -> Any:
        seen.add(os.path.relpath(path, tmp_path).replace(os.sep, "/").removeprefix("."))
        return real(path)

    monkeypatch.setattr(os, "scandir", spy)
    list(scan(tmp_path, IgnoreRules.load(tmp_path), only))
    assert seen == listed


def test_only_with_escaped_literal_paths(tmp_path: Path) -> None:
    write(tmp_path, "we*ird dir/a")
    write(tmp_path, "weXird dir/b")
    assert paths(tmp_path, ["/we\\*ird\\ dir/"]) == ["we*ird dir/a"]


def test_only_empty_means_everything(tmp_path: Path) -> None:
    write(tmp_path, "a")
    assert paths(tmp_path, []) == ["a"]


def _failing_scandir(monkeypatch: pytest.MonkeyPatch, fail: str, exc: OSError) -> None:
    real = os.scandir

    def fake(path: Any) -> Any:
        if os.fspath(path) == fail:
            raise exc
        return real(path)

    monkeypatch.setattr(os, "scandir", fake)


def test_unreadable_directory_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "ok/a")
    write(tmp_path, "secret/b")
    secret = os.path.join(tmp_path, "secret")
    _failing_scandir(monkeypatch, secret, PermissionError(13, "Permission denied", secret))
    with pytest.raises(ScanError) as info:
        run(tmp_path)
    message = str(info.value)
    assert message == f"cannot read directory {secret}: Permission denied"
    assert "\n" not in message
    assert info.value.exit_code == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a chmod 000 directory")
def test_unreadable_directory_for_real(tmp_path: Path) -> None:
    write(tmp_path, "secret/b")
    (tmp_path / "secret").chmod(0)
    try:
        with pytest.raises(ScanError, match="secret"):
            run(tmp_path)
    finally:
        (tmp_path / "secret").chmod(0o755)


def test_unreadable_root_raises(tmp_path: Path) -> None:
    with pytest.raises(ScanError, match="cannot read directory"):
        run(tmp_path / "missing")


def test_directory_vanishing_during_the_scan_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "a/x")
    write(tmp_path, "b/y")
    gone = os.path.join(tmp_path, "a")
    _failing_scandir(monkeypatch, gone, FileNotFoundError(2, "No such file or directory", gone))
    assert paths(tmp_path) == ["b/y"]


def test_nested_ignore_file_is_read_once_per_directory(tmp_path: Path) -> None:
    write(tmp_path, f"d/{IGNORE_FILE}", b"*.bin\n")
    write(tmp_path, "d/a.bin")
    write(tmp_path, "d/a.txt")
    rules = IgnoreRules.load(tmp_path)
    assert [e.path for e in scan(tmp_path, rules)] == [f"d/{IGNORE_FILE}", "d/a.txt"]
    # The scan fed the directory to the rules: is_ignored reuses it.
    assert rules.is_ignored("d/b.bin", False)


def test_scan_many_files_is_consistent(tmp_path: Path) -> None:
    expected = []
    for d in range(10):
        for f in range(20):
            rel = f"d{d:02d}/f{f:02d}.bin"
            write(tmp_path, rel, b"")
            expected.append(rel)
    entries = run(tmp_path)
    assert [e.path for e in entries] == expected
    assert all(stat.S_ISREG(e.mode) for e in entries)
