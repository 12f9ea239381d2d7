"""Materializing versions safely: whatever is written hashes to the id its tree entry names; a
hostile or lying tree is refused before anything changes; a killed checkout, merge or clone is
completed by running it again; temp files of a killed writer do not survive the next run; ``add``
refuses the symlinks checkout would refuse.

Hostile trees are crafted in the local store (``put_chunk``/``put``/``put_tree``, bypassing every
validating writer) and a branch is pointed at them with ``refs.update``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dsrepo import Repository
from dsrepo.dvcs import opstate, writebatch
from dsrepo.dvcs.errors import PathError, StateError, WouldOverwrite
from dsrepo.dvcs.paths import TEMP_PREFIX, SafeWriter, is_stale_temp
from dsrepo.errors import DsrepoError
from dsrepo.objects.errors import CorruptObject
from dsrepo.objects.ids import ObjectId, hash_data
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import Commit, Manifest, Signature, TreeEntry
from tests.snapshots import snapshot

SIG = Signature("Mallory", "mallory@example.com", 1_700_000_000, 0)


def write(root: Path, rel: str, data: bytes | str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data.encode() if isinstance(data, str) else data)


def temps(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(f"{TEMP_PREFIX}*"))


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------- crafting trees by hand


def craft(
    repo: Repository, entries: list[TreeEntry], parents: tuple[ObjectId, ...] = ()
) -> ObjectId:
    """A commit of exactly ``entries`` (top level), written without any validation."""
    tree = repo.store.put_tree(entries)
    cid = repo.store.put(Commit(tree, parents, SIG, SIG, "crafted\n", {}))
    repo.store.flush()
    return cid


def refused_into(
    repo: Repository, rev: str, into: Path, error: type[BaseException] = DsrepoError
) -> None:
    """``checkout rev --into`` a folder holding one file of the user's refuses with ``error``
    and leaves the folder as it was."""
    into.mkdir()
    write(into, "mine.txt", "user data")
    with pytest.raises(error):
        repo.checkout(rev, into=into)
    assert snapshot(into) == {"mine.txt": b"user data"}


def point(repo: Repository, branch: str, cid: ObjectId) -> None:
    repo.refs.update(f"refs/heads/{branch}", cid, repo.refs.resolve(f"refs/heads/{branch}"))


def file_entry(repo: Repository, name: str, data: bytes) -> TreeEntry:
    return TreeEntry(name, EntryKind.FILE, len(data), repo.store.put_chunk(data))


def manifest_entry(
    repo: Repository,
    name: str,
    parts: list[bytes],
    *,
    content_id: ObjectId | None = None,
    lengths: list[int] | None = None,
    entry_size: int | None = None,
) -> TreeEntry:
    """A file stored as the chunks ``parts``; each claim can be made to lie."""
    ids = [repo.store.put_chunk(p) for p in parts]
    lens = lengths or [len(p) for p in parts]
    cid = content_id or hash_data(b"".join(parts))
    mid = repo.store.put(Manifest(cid, sum(lens), tuple(zip(ids, lens, strict=True))))
    size = sum(lens) if entry_size is None else entry_size
    return TreeEntry(name, EntryKind.FILE, size, cid, mid)


PARTS = [bytes([i]) * 70_000 for i in range(1, 4)]

# Entries whose bytes do not match their claims: each individual chunk is valid.
LIES: dict[str, Callable[[Repository], TreeEntry]] = {
    "content-id": lambda r: manifest_entry(r, "big.bin", PARTS, content_id=hash_data(b"other")),
    "entry-size": lambda r: manifest_entry(r, "big.bin", PARTS, entry_size=210_001),
    "chunk-length": lambda r: manifest_entry(r, "big.bin", PARTS, lengths=[70_001, 70_000, 69_999]),
    "small-size": lambda r: TreeEntry(
        "big.bin", EntryKind.FILE, 6, r.store.put_chunk(b"hello"), None
    ),
}


@pytest.fixture
def base(repo: Repository) -> Iterator[tuple[Repository, ObjectId]]:
    """A working copy at a commit holding keep.txt, gone.txt and sub/x.txt (clean)."""
    write(repo.root, "keep.txt", "keep\n")
    write(repo.root, "gone.txt", "gone\n")
    write(repo.root, "sub/x.txt", "x\n")
    repo.add()
    info = repo.commit("base")
    yield repo, info.id


def _base_entries(repo: Repository, drop: str = "") -> list[TreeEntry]:
    tree = repo.commit_tree(repo.head_commit())
    assert tree is not None
    return [e for e in repo.store.tree_entries(tree) if e.name != drop]


def _state(repo: Repository) -> tuple[Any, ...]:
    return (
        snapshot(repo.root),
        sorted((p, e.version) for p, e in repo.worktree.index.entries.items()),
        repo.head_commit(),
        repo.head_branch(),
    )


# ---------------------------------------------------------------- 1. whole-file hash and sizes


def test_safewriter_refuses_bytes_that_do_not_hash_to_the_id(tmp_path: Path) -> None:
    w = SafeWriter(tmp_path)
    (tmp_path / "f").write_bytes(b"old\n")
    with pytest.raises(CorruptObject) as info:
        w.write_file("f", [b"new", b"\n"], False, content_id=hash_data(b"other"), size=4)
    assert "'f'" in str(info.value) and hash_data(b"other").hex() in str(info.value)
    assert info.value.exit_code == 7
    with pytest.raises(CorruptObject):
        w.write_file("g", [b"new\n"], False, content_id=hash_data(b"new\n"), size=5)
    assert (tmp_path / "f").read_bytes() == b"old\n"  # the destination is untouched
    assert not (tmp_path / "g").exists()
    assert temps(tmp_path) == []
    w.write_file("g", [b"new", b"\n"], False, content_id=hash_data(b"new\n"), size=4)
    assert (tmp_path / "g").read_bytes() == b"new\n"


@pytest.mark.parametrize("lie", sorted(LIES))
def test_lying_entry_is_never_materialized(
    lie: str, base: tuple[Repository, ObjectId], tmp_path: Path
) -> None:
    repo, base_id = base
    point(repo, "evil", craft(repo, [*_base_entries(repo), LIES[lie](repo)], (base_id,)))
    before = _state(repo)
    with pytest.raises(CorruptObject) as info:
        repo.checkout("evil")
    assert "big.bin" in str(info.value)
    assert _state(repo) == before
    assert temps(repo.root) == []
    into = tmp_path / "into"
    with pytest.raises(CorruptObject):
        repo.checkout("evil", into=into)
    assert not (into / "big.bin").exists() and temps(into) == []
    with pytest.raises(CorruptObject):
        repo.merge("evil")  # a fast-forward
    assert _state(repo) == before


@pytest.mark.parametrize("how", ["clone", "get"])
def test_lying_content_through_clone_and_get(
    how: str, base: tuple[Repository, ObjectId], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, base_id = base
    point(repo, "main", craft(repo, [*_base_entries(repo), LIES["content-id"](repo)], (base_id,)))
    url = str(repo.dsdir)  # a repository folder is a remote's layout
    monkeypatch.setenv("DSREPO_CACHE_DIR", str(tmp_path / "cache"))
    dest = tmp_path / "dest"
    with pytest.raises(CorruptObject) as info:
        if how == "clone":
            Repository.clone(url, dest)
        else:
            Repository.get(url, dest)
    assert "big.bin" in str(info.value) and info.value.exit_code == 7
    assert not (dest / "big.bin").exists()
    assert not dest.exists() or temps(dest) == []


# ---------------------------------------------------------------- 2. refuse before any change


HOSTILE: dict[str, Callable[[Repository], TreeEntry]] = {
    "escaping-link": lambda r: TreeEntry(
        "link", EntryKind.SYMLINK, 13, r.store.put_chunk(b"../../outside")
    ),
    "absolute-link": lambda r: TreeEntry("link", EntryKind.SYMLINK, 4, r.store.put_chunk(b"/etc")),
    "file-is-a-tree": lambda r: TreeEntry(
        "evil", EntryKind.FILE, 10, r.store.put_tree([file_entry(r, "a", b"0123456789")])
    ),
    "name-300-bytes": lambda r: file_entry(r, "n" * 300, b"long\n"),
    "lying-size": lambda r: TreeEntry("evil", EntryKind.FILE, 99, r.store.put_chunk(b"short")),
    "manifest-content": LIES["content-id"],  # found while streaming, still before any change
    "manifest-size": LIES["entry-size"],
    "missing-chunk": lambda r: TreeEntry("evil", EntryKind.FILE, 3, hash_data(b"absent")),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_refused_checkout_leaves_the_working_copy_as_it_was(
    case: str, base: tuple[Repository, ObjectId], tmp_path: Path
) -> None:
    repo, base_id = base
    # the target deletes gone.txt and changes keep.txt: both would be touched before the refusal
    entries = [e for e in _base_entries(repo, drop="gone.txt") if e.name != "keep.txt"]
    entries.append(file_entry(repo, "keep.txt", b"changed\n"))
    point(repo, "evil", craft(repo, [*entries, HOSTILE[case](repo)], (base_id,)))
    before = _state(repo)
    for attempt in (lambda: repo.checkout("evil"), lambda: repo.merge("evil")):
        with pytest.raises(DsrepoError) as info:
            attempt()
        assert info.value.exit_code in (4, 7, 9), info.value
        assert "\n" not in str(info.value)
        assert _state(repo) == before
        assert repo.status().interrupted is None
    into = tmp_path / "into"
    with pytest.raises(DsrepoError):
        repo.checkout("evil", into=into)
    assert snapshot(into) == {}  # not even the valid files
    assert not (tmp_path / "outside").exists()


def test_refusal_messages_name_the_problem(base: tuple[Repository, ObjectId]) -> None:
    repo, base_id = base
    expect = {
        "escaping-link": (PathError, "outside"),
        "file-is-a-tree": (CorruptObject, "is a tree"),
        "name-300-bytes": (PathError, "255 bytes"),
        "lying-size": (CorruptObject, "99"),
    }
    for case, (cls, words) in expect.items():
        point(repo, case, craft(repo, [*_base_entries(repo), HOSTILE[case](repo)], (base_id,)))
        with pytest.raises(cls) as info:
            repo.checkout(case)
        assert words in str(info.value), (case, str(info.value))


# ---------------------------------------------------------------- 3. interrupted operations


def reopen(repo: Repository) -> Repository:
    """The repository as a new process sees it (a killed process's memory is gone)."""
    repo.close()
    return Repository.open(repo.root)


class Interrupt:
    """Make the working-copy writer raise KeyboardInterrupt (a kill) after ``after`` files."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, after: int) -> None:
        self.left = after
        real = writebatch.write_entry

        def write_entry(*args: Any, **kwargs: Any) -> Any:
            if self.left == 0:
                raise KeyboardInterrupt
            self.left -= 1
            return real(*args, **kwargs)

        monkeypatch.setattr(writebatch, "write_entry", write_entry)
        self.restore = (monkeypatch, real)

    def undo(self) -> None:
        monkeypatch, real = self.restore
        monkeypatch.setattr(writebatch, "write_entry", real)


@pytest.fixture
def two_versions(repo: Repository) -> tuple[Repository, dict[str, bytes], dict[str, bytes]]:
    """main: m0..m5, d.txt (clean working copy); next: m0..m5 changed, d.txt gone, a.txt."""
    for i in range(6):
        write(repo.root, f"m{i}.txt", f"v1 {i}\n")
    write(repo.root, "d.txt", "deleted in v2\n")
    repo.add()
    repo.commit("v1")
    v1 = snapshot(repo.root)
    repo.switch("next", create=True)
    for i in range(6):
        write(repo.root, f"m{i}.txt", f"v2 {i}\n")
    (repo.root / "d.txt").unlink()
    write(repo.root, "a.txt", "added in v2\n")
    repo.add()
    repo.commit("v2")
    v2 = snapshot(repo.root)
    repo.switch("main")
    assert snapshot(repo.root) == v1
    return repo, v1, v2


def test_rerun_of_an_interrupted_checkout_completes_it(
    two_versions: tuple[Repository, dict[str, bytes], dict[str, bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo, v1, v2 = two_versions
    cut = Interrupt(monkeypatch, after=3)
    with pytest.raises(KeyboardInterrupt):
        repo.checkout("next")
    cut.undo()
    repo = reopen(repo)
    half = snapshot(repo.root)
    assert half not in (v1, v2) and "d.txt" not in half  # removed, some files written
    assert repo.head_branch() == "refs/heads/main"
    st = repo.status()
    assert st.interrupted == "checkout next"
    assert st.modified  # what the killed run wrote shows as changes until the re-run
    repo.checkout("next")  # no --force needed
    assert snapshot(repo.root) == v2
    st = repo.status()
    assert st.clean and st.interrupted is None and not st.untracked
    assert repo.head_branch() == "refs/heads/next"
    assert not (repo.dsdir / opstate.OPERATION).exists()
    repo.close()


def test_a_really_edited_file_still_blocks_the_rerun(
    two_versions: tuple[Repository, dict[str, bytes], dict[str, bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo, _v1, _v2 = two_versions
    cut = Interrupt(monkeypatch, after=3)  # a.txt, m0.txt, m1.txt
    with pytest.raises(KeyboardInterrupt):
        repo.checkout("next")
    cut.undo()
    repo = reopen(repo)
    written = [p for p in (f"m{i}.txt" for i in range(6)) if b"v2" in (repo.root / p).read_bytes()]
    untouched = [f"m{i}.txt" for i in range(6) if f"m{i}.txt" not in written]
    assert len(written) == 2
    write(repo.root, untouched[0], "my own edit\n")  # a real local change to a touched path
    # ...and a staged change on a path the killed run wrote: staged work is local work too
    write(repo.root, written[0], "staged edit\n")
    repo.add(written[0])
    write(repo.root, written[0], f"v2 {written[0][1]}\n")
    half = snapshot(repo.root)
    with pytest.raises(WouldOverwrite) as info:
        repo.checkout("next")
    assert untouched[0] in str(info.value) and written[0] in str(info.value)
    assert written[1] not in str(info.value)
    assert snapshot(repo.root) == half
    assert repo.status().interrupted == "checkout next"
    repo.close()


def _diverged(repo: Repository) -> dict[str, bytes]:
    for i in range(5):
        write(repo.root, f"f{i}.txt", f"base {i}\n")
    repo.add()
    repo.commit("base")
    repo.switch("feature", create=True)
    for i in range(4):
        write(repo.root, f"f{i}.txt", f"feature {i}\n")
    write(repo.root, "new.txt", "new on feature\n")
    repo.add()
    repo.commit("feature work")
    repo.switch("main")
    write(repo.root, "f4.txt", "main 4\n")
    repo.add()
    repo.commit("main work")
    return {
        **{f"f{i}.txt": f"feature {i}\n".encode() for i in range(4)},
        "f4.txt": b"main 4\n",
        "new.txt": b"new on feature\n",
    }


@pytest.mark.parametrize("no_commit", [False, True])
def test_rerun_of_an_interrupted_merge_completes_it(
    repo: Repository, monkeypatch: pytest.MonkeyPatch, no_commit: bool
) -> None:
    merged = _diverged(repo)
    head = repo.head_commit()
    cut = Interrupt(monkeypatch, after=2)
    with pytest.raises(KeyboardInterrupt):
        repo.merge("feature", no_commit=no_commit)
    cut.undo()
    repo = reopen(repo)
    assert repo.head_commit() == head
    expected_op = "merge --no-commit feature" if no_commit else "merge feature"
    assert repo.status().interrupted == expected_op
    outcome = repo.merge("feature", no_commit=no_commit)
    assert snapshot(repo.root) == merged
    st = repo.status()
    assert st.interrupted is None and not st.modified and not st.untracked
    if no_commit:
        assert outcome.kind == "staged" and st.merging
    else:
        assert outcome.kind == "merged" and st.clean
        assert len(repo.get_commit(repo.head_commit()).parents) == 2  # type: ignore[arg-type]
    repo.close()


# ---------------------------------------------------------------- 4. temp files of a killed writer


def test_stale_temp_files_are_removed_and_nothing_else(tmp_path: Path) -> None:
    dead = dead_pid()
    (tmp_path / "sub").mkdir()
    stale = [f"sub/{TEMP_PREFIX}{dead}-0123456789ab", f"sub/{TEMP_PREFIX}0123456789ab"]
    live = f"sub/{TEMP_PREFIX}{os.getppid()}-0123456789ab"  # a running process's: kept
    mine = f"sub/{TEMP_PREFIX}{os.getpid()}-0123456789ab"  # this process's: kept
    users = ["sub/.dsrepo-tmp-notes.txt", "sub/.dsrepo-tmp-12-xyz"]
    for rel in [*stale, live, mine, *users]:
        write(tmp_path, rel, "x")
    assert [is_stale_temp(Path(p).name) for p in [*stale, live, mine, *users]] == [
        True,
        True,
        False,
        False,
        False,
        False,
    ]
    SafeWriter(tmp_path).write_file("sub/f", [b"data"], False)
    left = set(os.listdir(tmp_path / "sub"))
    assert left == {"f", *(Path(p).name for p in [live, mine, *users])}


def test_checkout_into_removes_what_a_killed_run_left(
    two_versions: tuple[Repository, dict[str, bytes], dict[str, bytes]], tmp_path: Path
) -> None:
    repo, v1, _v2 = two_versions
    into = tmp_path / "into"
    repo.checkout("main", into=into)
    (into / "m3.txt").unlink()  # the killed run had not renamed m3.txt into place yet...
    write(into, f"{TEMP_PREFIX}{dead_pid()}-00000000000a", "v1 3\n")  # ...its temp file
    repo.checkout("main", into=into)
    assert snapshot(into) == v1
    assert temps(into) == []


# ---------------------------------------------------------------- 5. clone resumes


@pytest.fixture
def published(repo: Repository, tmp_path: Path) -> tuple[Repository, str, dict[str, bytes]]:
    for i in range(8):
        write(repo.root, f"data/p{i}.bin", hash_data(b"%d" % i) * 4096)  # 128 KiB each
    write(repo.root, "readme.txt", "hello\n")
    repo.add()
    repo.commit("data")
    url = str(tmp_path / "remote")
    repo.remote_add("origin", url)
    repo.push("origin")
    return repo, url, snapshot(repo.root)


def _packs(root: Path) -> set[str]:
    return set(os.listdir(root / ".dsrepo" / "packs"))


def test_an_interrupted_clone_resumes(
    published: tuple[Repository, str, dict[str, bytes]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _src, url, files = published
    dest = tmp_path / "dest"
    cut = Interrupt(monkeypatch, after=4)  # killed while materializing, after the fetch
    with pytest.raises(KeyboardInterrupt):
        Repository.clone(url, dest)
    cut.undo()
    assert (dest / ".dsrepo" / opstate.CLONING).exists()
    with Repository.open(dest) as half:
        assert half.status().interrupted == f"clone {url}"
    fetched = _packs(dest)
    assert fetched
    with pytest.raises(StateError, match="other options"):
        Repository.clone(url, dest, only=["data/*"])
    with Repository.clone(url, dest) as done:
        assert snapshot(dest) == files
        assert done.status().clean and done.status().interrupted is None
    assert _packs(dest) == fetched  # nothing was downloaded again
    assert not (dest / ".dsrepo" / opstate.CLONING).exists()


def test_clone_killed_before_init_resumes_and_others_are_refused(
    published: tuple[Repository, str, dict[str, bytes]], tmp_path: Path
) -> None:
    _src, url, files = published
    dest = tmp_path / "dest"
    opstate.write_clone_marker(dest / ".dsrepo", opstate.clone_marker(url, None, None))
    with Repository.clone(url, dest):
        assert snapshot(dest) == files
    other = tmp_path / "other"
    write(other, "mine.txt", "not a clone\n")
    with pytest.raises(StateError, match="not empty"):
        Repository.clone(url, other)
    assert snapshot(other) == {"mine.txt": b"not a clone\n"}


def test_a_clone_refused_before_any_fetch_leaves_nothing(tmp_path: Path, identity: Path) -> None:
    with pytest.raises(DsrepoError):
        Repository.clone(str(tmp_path / "nowhere"), tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


# ---------------------------------------------------------------- 6. add refuses bad symlinks


@pytest.mark.parametrize(
    ("link", "target"),
    [
        ("abs", "/etc/passwd"),
        ("up", "../outside"),
        ("sub/up2", "../../outside"),
        ("sneaky", "sub/../../outside"),
        ("meta", ".dsrepo/config"),
        ("meta2", "sub/../.DSREPO/config"),
    ],
)
def test_add_refuses_symlinks_that_checkout_refuses(
    repo: Repository, link: str, target: str
) -> None:
    write(repo.root, "sub/f.txt", "f\n")
    (repo.root / link).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, repo.root / link)
    with pytest.raises(PathError) as info:
        repo.add()
    msg = str(info.value)
    assert info.value.exit_code == 9 and "\n" not in msg
    assert repr(link) in msg and repr(target) in msg
    assert reopen(repo).worktree.index.entries == {}  # nothing staged


def test_links_add_accepts_check_out(repo: Repository, tmp_path: Path) -> None:
    write(repo.root, "sub/f.txt", "f\n")
    os.symlink("sub/f.txt", repo.root / "in")
    os.symlink("../sub/f.txt", repo.root / "sub" / "self")
    os.symlink("f.txt", repo.root / "sub" / "same-dir")
    repo.add()
    repo.commit("links")
    repo.checkout("HEAD", into=tmp_path / "out")
    assert os.readlink(tmp_path / "out" / "sub" / "self") == "../sub/f.txt"
    assert (tmp_path / "out" / "in").read_bytes() == b"f\n"


def test_status_says_which_operation_was_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from dsrepo.cli.main import cli
    from dsrepo.dvcs import opstate

    repo = Repository.init(tmp_path / "r")
    opstate.begin(repo.dsdir, "checkout main")  # as a killed checkout leaves it
    assert repo.status().interrupted == "checkout main"
    monkeypatch.chdir(repo.root)
    result = CliRunner().invoke(cli, ["status"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "'checkout main' was interrupted; run it again to complete it" in result.output
