"""Tests for dsrepo.dvcs.paths: names from untrusted trees, user paths, safe writes."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dsrepo.dvcs.paths import (
    TEMP_PREFIX,
    SafeWriter,
    UnsafePath,
    find_case_collisions,
    is_case_insensitive_fs,
    is_reserved_name,
    user_path_to_relpath,
    validate_entry_name,
    validate_relpath,
)

# -- entry names --------------------------------------------------------------------------------

BAD_NAMES = [
    "",
    ".",
    "..",
    "a/b",
    "a\\b",
    "a\0b",
    ".dsrepo",
    ".DSREPO",
    ".DsRepo",
    ".dsrepo\u200c",
    ".dsrepo\u200d",
    "\ufeff.dsrepo",
    ".ds\u00adrepo",  # soft hyphen
    ".d\u200bsrepo",  # zero width space
    ".\uff44srepo",  # fullwidth d (NFKC)
    ".d\u017frepo",  # long s (casefold)
    ".dsrepo.",  # NTFS strips trailing dots...
    ".dsrepo ",  # ...and spaces
    ".dsrepo::$INDEX_ALLOCATION",  # NTFS stream
    "DSREPO~1",  # NTFS 8.3 short name
    "dsrepo~2",
    "\u200b",  # folds to nothing
    ".\u200d.",  # folds to ".."
    "\udcff",  # not valid UTF-8 (surrogate-escaped byte)
]

GOOD_NAMES = [
    "a",
    "a.txt",
    "...",
    ".dsrepos",
    "dsrepo",
    "x.dsrepo",
    ".dsrep\u00f8",  # a different letter
    ".dsrepo\u0301",  # composes into "ó": a different name
    "\u00e9t\u00e9",
    "\u65e5\u672c\u8a9e",
    "dsrepo~x",
    " lead and trail ",
    "\U0001f600",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_entry_names(name: str) -> None:
    with pytest.raises(UnsafePath) as info:
        validate_entry_name(name)
    assert info.value.exit_code == 9
    message = str(info.value)
    assert "\n" not in message and "\0" not in message


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_entry_names(name: str) -> None:
    assert validate_entry_name(name) == name
    assert not is_reserved_name(name)


@pytest.mark.parametrize("name", [n for n in BAD_NAMES if n.lower().startswith((".ds", "\ufeff"))])
def test_reserved_variants(name: str) -> None:
    assert is_reserved_name(name)


def test_message_escapes_invisible_characters() -> None:
    with pytest.raises(UnsafePath) as info:
        validate_entry_name(".dsrepo\u200d")
    assert "\\u200d" in str(info.value)


@pytest.mark.parametrize("path", ["a", "a/b/c", "images/c00/a.bin", "\u00e9/\u00e8"])
def test_good_relpaths(path: str) -> None:
    assert validate_relpath(path) == path


@pytest.mark.parametrize(
    "path",
    ["", "/a", "a/", "a//b", "./a", "a/./b", "a/../b", "..", ".dsrepo/config", "a/.DSREPO/x"],
)
def test_bad_relpaths(path: str) -> None:
    with pytest.raises(UnsafePath):
        validate_relpath(path)


# -- user paths ---------------------------------------------------------------------------------


@pytest.fixture
def wc(tmp_path: Path) -> Path:
    root = tmp_path / "wc"
    (root / "sub/deeper").mkdir(parents=True)
    (root / ".dsrepo").mkdir()
    return root


def test_user_paths_inside(wc: Path) -> None:
    assert user_path_to_relpath(wc, wc, "x") == "x"
    assert user_path_to_relpath(wc, wc, ".") == ""
    assert user_path_to_relpath(wc, wc, "") == ""
    assert user_path_to_relpath(wc, wc, "sub/") == "sub"
    assert user_path_to_relpath(wc, wc / "sub", "../x") == "x"
    assert user_path_to_relpath(wc, wc / "sub/deeper", "..") == "sub"
    assert user_path_to_relpath(wc, wc / "sub", "./a/../b") == "sub/b"
    assert user_path_to_relpath(wc, Path("/"), str(wc / "sub/x")) == "sub/x"
    assert user_path_to_relpath(wc, wc / "sub", str(wc)) == ""


def test_user_paths_outside(wc: Path) -> None:
    with pytest.raises(UnsafePath) as info:
        user_path_to_relpath(wc, wc, "../x")
    assert str(info.value) == f"'../x' is outside the working copy at {wc}"
    assert info.value.exit_code == 9
    with pytest.raises(UnsafePath, match="outside"):
        user_path_to_relpath(wc, wc, "/etc/passwd")
    with pytest.raises(UnsafePath, match="outside"):
        user_path_to_relpath(wc, wc / "sub", "../../wc-sibling")
    with pytest.raises(UnsafePath, match="outside"):
        user_path_to_relpath(wc, wc, "..")


def test_user_path_into_the_repository_directory(wc: Path) -> None:
    with pytest.raises(UnsafePath):
        user_path_to_relpath(wc, wc, ".dsrepo/config")


def test_user_path_through_a_symlink_leading_outside(wc: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (wc / "evil").symlink_to(outside)
    with pytest.raises(UnsafePath, match="outside the working copy"):
        user_path_to_relpath(wc, wc, "evil/file")
    with pytest.raises(UnsafePath, match="outside the working copy"):
        user_path_to_relpath(wc, wc / "evil", "file")
    # The symlink itself is a path inside the working copy.
    assert user_path_to_relpath(wc, wc, "evil") == "evil"


def test_user_path_through_symlinks_leading_inside(wc: Path, tmp_path: Path) -> None:
    (wc / "alias").symlink_to("sub/deeper")
    assert user_path_to_relpath(wc, wc, "alias/f") == "sub/deeper/f"
    # The working copy reached through a symlinked spelling of its path.
    link = tmp_path / "link-to-wc"
    link.symlink_to(wc)
    assert user_path_to_relpath(wc, link, "sub/f") == "sub/f"
    assert user_path_to_relpath(wc, link, ".") == ""
    assert user_path_to_relpath(link, wc / "sub", "f") == "sub/f"


# -- SafeWriter ---------------------------------------------------------------------------------


def leftovers(root: Path) -> list[str]:
    return [str(p) for p in root.rglob(f"{TEMP_PREFIX}*")]


def test_write_file_creates_parents_and_returns_lstat(tmp_path: Path) -> None:
    w = SafeWriter(tmp_path)
    st = w.write_file("a/b/c.bin", [b"hello ", b"", b"world"], executable=False)
    path = tmp_path / "a/b/c.bin"
    assert path.read_bytes() == b"hello world"
    real = os.lstat(path)
    assert (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode) == (
        real.st_ino,
        real.st_size,
        real.st_mtime_ns,
        real.st_ctime_ns,
        real.st_mode,
    )
    assert stat.S_ISREG(st.st_mode)
    assert not st.st_mode & stat.S_IXUSR
    assert leftovers(tmp_path) == []


def test_write_file_modes_follow_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        w = SafeWriter(tmp_path)
        assert stat.S_IMODE(w.write_file("f", [b"x"], executable=False).st_mode) == 0o644
        assert stat.S_IMODE(w.write_file("x", [b"x"], executable=True).st_mode) == 0o755
        os.umask(0o777)  # pathological: the owner's bits are kept anyway
        w = SafeWriter(tmp_path)
        assert stat.S_IMODE(w.write_file("f2", [b"x"], executable=False).st_mode) == 0o600
        assert stat.S_IMODE(w.write_file("x2", [b"x"], executable=True).st_mode) == 0o700
    finally:
        os.umask(old)


def test_write_file_replaces_existing_file_atomically(tmp_path: Path) -> None:
    w = SafeWriter(tmp_path, durable=True)
    w.write_file("f", [b"old"], executable=True)
    before = os.lstat(tmp_path / "f")
    st = w.write_file("f", [b"new content"], executable=False)
    assert (tmp_path / "f").read_bytes() == b"new content"
    assert st.st_ino != before.st_ino  # a new inode renamed over the old one
    assert not st.st_mode & stat.S_IXUSR


def test_write_file_replaces_a_symlink_not_its_target(tmp_path: Path) -> None:
    (tmp_path / "target").write_bytes(b"keep")
    (tmp_path / "f").symlink_to("target")
    SafeWriter(tmp_path).write_file("f", [b"new"], executable=False)
    assert not (tmp_path / "f").is_symlink()
    assert (tmp_path / "f").read_bytes() == b"new"
    assert (tmp_path / "target").read_bytes() == b"keep"


def test_write_file_refuses_a_symlinked_parent(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "wc"
    root.mkdir()
    (root / "evil").symlink_to(outside)
    w = SafeWriter(root)
    with pytest.raises(UnsafePath, match="'evil' is a symbolic link"):
        w.write_file("evil/x", [b"pwned"], executable=False)
    with pytest.raises(UnsafePath, match="symbolic link"):
        w.write_symlink("evil/y", "../z")
    with pytest.raises(UnsafePath, match="symbolic link"):
        w.remove("evil/x")
    (outside / "sub").mkdir()
    with pytest.raises(UnsafePath, match="symbolic link"):
        w.write_file("evil/sub/x", [b"pwned"], executable=False)
    assert list(outside.rglob("*")) == [outside / "sub"]


def test_write_file_refuses_a_file_as_parent(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"file")
    with pytest.raises(UnsafePath, match="'a' is not a directory"):
        SafeWriter(tmp_path).write_file("a/b", [b"x"], executable=False)
    assert (tmp_path / "a").read_bytes() == b"file"


@pytest.mark.parametrize("bad", ["../x", "/etc/x", ".dsrepo/config", "a/../../x", "", "a//b"])
def test_write_file_refuses_unsafe_paths(tmp_path: Path, bad: str) -> None:
    root = tmp_path / "wc"
    root.mkdir()
    with pytest.raises(UnsafePath):
        SafeWriter(root).write_file(bad, [b"x"], executable=False)
    assert list(tmp_path.rglob("*")) == [root]


def test_write_file_directory_in_the_way(tmp_path: Path) -> None:
    w = SafeWriter(tmp_path)
    (tmp_path / "empty").mkdir()
    w.write_file("empty", [b"x"], executable=False)
    assert (tmp_path / "empty").read_bytes() == b"x"
    (tmp_path / "full").mkdir()
    (tmp_path / "full/keep").write_bytes(b"k")
    with pytest.raises(UnsafePath, match="non-empty directory"):
        w.write_file("full", [b"x"], executable=False)
    assert (tmp_path / "full/keep").read_bytes() == b"k"


def test_write_file_failure_leaves_nothing_behind(tmp_path: Path) -> None:
    w = SafeWriter(tmp_path)
    w.write_file("f", [b"original"], executable=False)

    def chunks() -> Iterator[bytes]:
        yield b"partial"
        raise RuntimeError("source failed")

    with pytest.raises(RuntimeError):
        w.write_file("f", chunks(), executable=False)
    assert (tmp_path / "f").read_bytes() == b"original"
    assert leftovers(tmp_path) == []


def test_write_symlink(tmp_path: Path) -> None:
    w = SafeWriter(tmp_path)
    st = w.write_symlink("a/link", "../b/target")
    assert stat.S_ISLNK(st.st_mode)
    assert os.readlink(tmp_path / "a/link") == "../b/target"
    w.write_symlink("a/link", "other")  # replaced atomically
    assert os.readlink(tmp_path / "a/link") == "other"
    w.write_symlink("top", "./a/./link")
    assert os.readlink(tmp_path / "top") == "./a/./link"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("rel", "target", "why"),
    [
        ("link", "../outside", "points outside the working copy"),
        ("a/b/link", "../../../x", "points outside the working copy"),
        ("link", "/etc/passwd", "points outside the working copy"),
        ("link", ".dsrepo/config", "points into the repository"),
        ("a/link", "../.DSREPO", "points into the repository"),
        ("a/link", "b/../../c", "'..' after a directory name"),
    ],
)
def test_write_symlink_refuses(tmp_path: Path, rel: str, target: str, why: str) -> None:
    with pytest.raises(UnsafePath, match=why):
        SafeWriter(tmp_path).write_symlink(rel, target)
    assert not os.path.lexists(tmp_path / rel)


def test_write_symlink_outside_message(tmp_path: Path) -> None:
    with pytest.raises(UnsafePath) as info:
        SafeWriter(tmp_path).write_symlink("x", "/etc")
    assert str(info.value) == "symlink 'x' -> '/etc' points outside the working copy"


def test_write_symlink_allow_outside(tmp_path: Path) -> None:
    w = SafeWriter(tmp_path)
    w.write_symlink("abs", "/etc/passwd", allow_outside=True)
    assert os.readlink(tmp_path / "abs") == "/etc/passwd"
    with pytest.raises(UnsafePath):
        w.write_symlink("../escape", "x", allow_outside=True)  # the link itself must be inside


def test_remove(tmp_path: Path) -> None:
    w = SafeWriter(tmp_path)
    w.write_file("a/f", [b"x"], executable=False)
    (tmp_path / "target").write_bytes(b"t")
    w.write_symlink("a/link", "../target")
    w.remove("a/f")
    w.remove("a/link")
    assert not (tmp_path / "a/f").exists()
    assert not os.path.lexists(tmp_path / "a/link")
    assert (tmp_path / "target").read_bytes() == b"t"
    w.remove("a/f")  # missing: fine
    w.remove("missing/dir/f")
    (tmp_path / "a/emptydir").mkdir()
    w.remove("a/emptydir")
    assert not (tmp_path / "a/emptydir").exists()
    (tmp_path / "a/full").mkdir()
    (tmp_path / "a/full/x").write_bytes(b"")
    with pytest.raises(UnsafePath, match="non-empty directory"):
        w.remove("a/full")
    with pytest.raises(UnsafePath):
        w.remove("../x")


def test_remove_empty_parents(tmp_path: Path) -> None:
    w = SafeWriter(tmp_path)
    w.write_file("a/b/c/f", [b"x"], executable=False)
    w.write_file("a/keep", [b"x"], executable=False)
    w.remove("a/b/c/f")
    w.remove_empty_parents("a/b/c/f")
    assert not (tmp_path / "a/b").exists()
    assert (tmp_path / "a/keep").exists()
    w.remove("a/keep")
    w.remove_empty_parents("a/keep")
    assert list(tmp_path.iterdir()) == []
    w.remove_empty_parents("x/y/z")  # missing: fine
    assert tmp_path.exists()
    (tmp_path / "p/q").mkdir(parents=True)
    w.remove_empty_parents("p/q/gone/f")  # the deepest part is already gone
    assert list(tmp_path.iterdir()) == []


def test_remove_empty_parents_never_follows_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "empty").mkdir(parents=True)
    root = tmp_path / "wc"
    root.mkdir()
    (root / "link").symlink_to(outside)
    SafeWriter(root).remove_empty_parents("link/empty/f")
    assert (outside / "empty").is_dir()
    assert (root / "link").is_symlink()


# -- case collisions ----------------------------------------------------------------------------


def test_find_case_collisions() -> None:
    assert find_case_collisions(["a/b.txt", "a/c.txt", "B"]) == []
    assert find_case_collisions(["a/B.txt", "a/b.txt", "c"]) == [("a/B.txt", "a/b.txt")]
    assert find_case_collisions(["README", "readme", "ReadMe", "x"]) == [
        ("README", "ReadMe"),
        ("README", "readme"),
    ]
    assert find_case_collisions(["Dir/x", "dir/x", "dir/x"]) == [("Dir/x", "dir/x")]
    assert find_case_collisions(["STRASSE", "stra\u00dfe"]) == [("STRASSE", "stra\u00dfe")]
    # NFC vs NFD spellings of the same name (macOS filesystems merge them too).
    assert find_case_collisions(["caf\u00e9", "Cafe\u0301"]) == [("Cafe\u0301", "caf\u00e9")]


def test_is_case_insensitive_fs(tmp_path: Path) -> None:
    result = is_case_insensitive_fs(tmp_path)
    assert isinstance(result, bool)
    if sys.platform.startswith("linux"):
        assert result is False
    assert list(tmp_path.iterdir()) == []
