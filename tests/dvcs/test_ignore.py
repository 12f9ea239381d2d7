"""Tests for dsrepo.dvcs.ignore: .dsrepoignore files with git's semantics."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dsrepo.dvcs.ignore import IGNORE_FILE, IgnoreError, IgnoreRules
from dsrepo.dvcs.scan import scan


def write(root: Path, rel: str, text: str = "x") -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def rules_with(root: Path, files: dict[str, list[str]]) -> IgnoreRules:
    """Write an ignore file per directory ({"": [...], "sub": [...]}) and load the rules."""
    for rel_dir, lines in files.items():
        write(root, f"{rel_dir}/{IGNORE_FILE}" if rel_dir else IGNORE_FILE, "\n".join(lines) + "\n")
    return IgnoreRules.load(root)


def test_no_ignore_file(tmp_path: Path) -> None:
    rules = IgnoreRules.load(tmp_path)
    assert not rules.is_ignored("a.txt", False)
    assert not rules.is_ignored("a/b/c.txt", False)
    assert not rules.is_ignored("a", True)
    assert not rules.is_ignored("", True)


def test_basic_patterns_and_negation(tmp_path: Path) -> None:
    rules = rules_with(tmp_path, {"": ["# comment", "", "*.log", "!keep.log", "/top.txt"]})
    assert rules.is_ignored("a.log", False)
    assert rules.is_ignored("deep/er/a.log", False)
    assert not rules.is_ignored("keep.log", False)
    assert not rules.is_ignored("deep/keep.log", False)
    assert rules.is_ignored("top.txt", False)
    assert not rules.is_ignored("sub/top.txt", False)  # anchored to the root
    assert not rules.is_ignored("a.txt", False)
    assert not rules.is_ignored("# comment", False)


def test_directory_patterns_match_directories_only(tmp_path: Path) -> None:
    rules = rules_with(tmp_path, {"": ["build/"]})
    assert rules.is_ignored("build", True)
    assert rules.is_ignored("src/build", True)
    assert not rules.is_ignored("build", False)  # a file (or symlink) named build
    assert rules.is_ignored("build/out.o", False)
    assert rules.is_ignored("src/build/deep/out.o", False)
    assert rules.is_ignored("build/", False)  # a trailing slash is tolerated


def test_cannot_reinclude_inside_an_excluded_directory(tmp_path: Path) -> None:
    rules = rules_with(tmp_path, {"": ["build/", "!build/keep.txt", "out/*", "!out/keep.txt"]})
    # Like git: build/ itself is excluded, so nothing under it can be re-included...
    assert rules.is_ignored("build/keep.txt", False)
    # ...but out/* excludes the children, so one of them can be re-included.
    assert not rules.is_ignored("out", True)
    assert not rules.is_ignored("out/keep.txt", False)
    assert rules.is_ignored("out/other.txt", False)
    assert rules.is_ignored("out/sub", True)


def test_double_star_patterns(tmp_path: Path) -> None:
    rules = rules_with(tmp_path, {"": ["logs/**", "!logs/keep", "**/cache", "a/**/z.bin"]})
    assert not rules.is_ignored("logs", True)  # "logs/**" matches inside logs, not logs itself
    assert rules.is_ignored("logs/x", False)
    assert not rules.is_ignored("logs/keep", False)
    assert rules.is_ignored("cache", False)
    assert rules.is_ignored("x/y/cache", True)
    assert rules.is_ignored("a/z.bin", False)
    assert rules.is_ignored("a/b/c/z.bin", False)
    assert not rules.is_ignored("b/a/z.bin", False)


def test_nested_ignore_files(tmp_path: Path) -> None:
    rules = rules_with(
        tmp_path,
        {
            "": ["*.log", "/data.csv"],
            "sub": ["!*.log", "/local.txt", "data.csv"],
            "sub/deeper": ["*.log"],
        },
    )
    assert rules.is_ignored("a.log", False)
    assert rules.is_ignored("other/a.log", False)
    assert not rules.is_ignored("sub/a.log", False)  # the nested file overrides the root one
    assert not rules.is_ignored("sub/x/a.log", False)
    assert rules.is_ignored("sub/deeper/a.log", False)  # and is overridden in turn
    assert rules.is_ignored("sub/local.txt", False)  # anchored to sub/
    assert not rules.is_ignored("local.txt", False)
    assert not rules.is_ignored("sub/x/local.txt", False)
    assert rules.is_ignored("data.csv", False)
    assert rules.is_ignored("sub/x/data.csv", False)
    assert not rules.is_ignored("other/data.csv", False)


def test_nested_file_negating_a_directory_does_not_reinclude_its_files(tmp_path: Path) -> None:
    # git: "!x/" in foo/ matches the directory foo/x, not the file foo/x/f.log, so the root's
    # "*.log" still ignores it.
    rules = rules_with(tmp_path, {"": ["*.log", "x/"], "foo": ["!x/"]})
    assert rules.is_ignored("x", True)
    assert not rules.is_ignored("foo/x", True)
    assert rules.is_ignored("foo/x/f.log", False)
    assert not rules.is_ignored("foo/x/f.txt", False)


def test_ignore_files_inside_ignored_directories_are_not_read(tmp_path: Path) -> None:
    rules = rules_with(tmp_path, {"": ["vendor/"], "vendor": ["!*"]})
    assert rules.is_ignored("vendor/a.txt", False)


@pytest.mark.parametrize(
    "path",
    [".dsrepo", ".DsRepo", ".DSREPO", "sub/.dsrepo", ".dsrepo\u200d", "\ufeff.dsrepo", ".dsrepo."],
)
def test_dsrepo_is_always_ignored(tmp_path: Path, path: str) -> None:
    rules = rules_with(tmp_path, {"": ["!.dsrepo", "!.dsrepo/", "!*", "!.DsRepo", "!**/.dsrepo"]})
    assert rules.is_ignored(path, True)
    assert rules.is_ignored(path, False)
    assert rules.is_ignored(f"{path}/config", False)


def test_dsrepo_is_ignored_without_any_ignore_file(tmp_path: Path) -> None:
    rules = IgnoreRules.load(tmp_path)
    assert rules.is_ignored(".dsrepo", True)
    assert rules.is_ignored(".dsrepo/objects/ab", False)
    assert not rules.is_ignored(".dsrepos", True)
    assert not rules.is_ignored("dsrepo", True)
    assert not rules.is_ignored(".dsrep\u00f8", True)


def test_file_format_details(tmp_path: Path) -> None:
    # BOM, CRLF, escaped "#" and "!", trailing spaces, a malformed pattern that git skips.
    (tmp_path / IGNORE_FILE).write_bytes(
        b"\xef\xbb\xbf*.tmp\r\n\\#hash\r\n\\!bang\nspaced   \n!\nafter\n"
    )
    rules = IgnoreRules.load(tmp_path)
    assert rules.is_ignored("a.tmp", False)
    assert rules.is_ignored("#hash", False)
    assert rules.is_ignored("!bang", False)
    assert rules.is_ignored("spaced", False)
    assert rules.is_ignored("after", False)
    assert not rules.is_ignored("a.txt", False)


def test_symlinked_ignore_file_is_disregarded(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("*\n")
    root = tmp_path / "wc"
    root.mkdir()
    (root / IGNORE_FILE).symlink_to(outside)
    rules = IgnoreRules.load(root)
    assert not rules.is_ignored("a.txt", False)


def test_ignore_file_that_is_a_directory_is_disregarded(tmp_path: Path) -> None:
    (tmp_path / IGNORE_FILE).mkdir()
    assert not IgnoreRules.load(tmp_path).is_ignored("a.txt", False)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_unreadable_ignore_file_raises(tmp_path: Path) -> None:
    path = tmp_path / IGNORE_FILE
    path.write_text("*.log\n")
    path.chmod(0)
    try:
        with pytest.raises(IgnoreError, match="cannot read"):
            IgnoreRules.load(tmp_path)
    finally:
        path.chmod(0o644)


def test_from_lines(tmp_path: Path) -> None:
    write(tmp_path, IGNORE_FILE, "*.txt\n")  # files on disk are not read
    write(tmp_path, f"sub/{IGNORE_FILE}", "*.bin\n")
    rules = IgnoreRules.from_lines(tmp_path, ["*.csv", "out/"])
    assert rules.is_ignored("a.csv", False)
    assert rules.is_ignored("sub/a.csv", False)
    assert rules.is_ignored("sub/out/a", False)
    assert not rules.is_ignored("a.txt", False)
    assert not rules.is_ignored("sub/a.bin", False)


def test_enter_directory_is_cached_and_skips_missing_files(tmp_path: Path) -> None:
    write(tmp_path, f"sub/{IGNORE_FILE}", "*.bin\n")
    rules = IgnoreRules.load(tmp_path)
    # The scanner says there is no ignore file: it is not read.
    blind = rules.enter_directory("sub", has_ignore_file=False)
    assert not blind.is_ignored("a.bin", False)
    assert rules.enter_directory("sub") is blind
    fresh = IgnoreRules.load(tmp_path).enter_directory("sub", has_ignore_file=True)
    assert fresh.is_ignored("a.bin", False)
    assert fresh.rel_dir == "sub"


# Expected results checked against `git ls-files -o --exclude-standard` (git 2.39).
GIT_CASES: list[tuple[dict[str, list[str]], list[str], set[str]]] = [
    (
        {"": ["*", "!*/", "!*.txt"]},
        ["a/b.txt", "a/b.bin", "c.txt", "d"],
        {"a/b.txt", "c.txt"},
    ),
    (
        {"": ["data/", "!data/"]},
        ["data/x", "data/y.log"],
        {"data/x", "data/y.log"},
    ),
    (
        {"": ["*.log", "foo/", "!foo/"]},
        ["foo/a.log", "foo/b.txt"],
        {"foo/b.txt"},
    ),
    (
        {"": ["a*", "!ab"], "ab": ["x", "!x/"]},
        ["ab/x", "ab/x2/f", "ab/y/x/f", "ab/y/x2", "abc", "b"],
        {"ab/y/x/f", "ab/x2/f", "ab/y/x2", "b"},
    ),
    (
        {"": ["*/", "!a/"], "a": ["b/"]},
        ["a/f", "a/b/f", "a/c/f", "top"],
        {"a/f", "top"},
    ),
    (
        {"": ["?b", "[ab]"], "x": ["!a", "*.t?t"]},
        ["a", "b", "ab", "x/a", "x/cb", "x/k.txt", "x/k.tt"],
        {"x/a", "x/k.tt"},
    ),
]


@pytest.mark.parametrize(("ignore_files", "files", "expected"), GIT_CASES)
def test_matches_git(
    tmp_path: Path, ignore_files: dict[str, list[str]], files: list[str], expected: set[str]
) -> None:
    for f in files:
        write(tmp_path, f)
    rules = rules_with(tmp_path, ignore_files)
    scanned = {e.path for e in scan(tmp_path, rules)} - {
        f"{d}/{IGNORE_FILE}" if d else IGNORE_FILE for d in ignore_files
    }
    assert scanned == expected
    fresh = IgnoreRules.load(tmp_path)
    assert {f for f in files if not fresh.is_ignored(f, False)} == expected
