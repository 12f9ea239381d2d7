"""The status walk (:mod:`dsrepo.dvcs.statuswalk`): one listing per folder merged with the
index's sorted rows. Every kind of change at any depth, untracked folders (``dir/``, ``all``,
``no``), ignored folders holding tracked files, partial working copies, and the forked walk of
big indexes, which must find exactly what a single process finds (and survive its child)."""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path

import pytest

from dsrepo import Repository
from dsrepo.dvcs import forking, statuswalk
from dsrepo.dvcs.errors import RepositoryError
from dsrepo.dvcs.statuswalk import Untracked, WalkResult, walk
from tests.cli.conftest import Cli
from tests.dvcs.conftest import write

OLD = time.time_ns() - 3600 * 10**9
"""An mtime long before any index: files written with it are never racily clean."""

DEPTHS = ["", "p/", "p/q/r/"]


def old_write(root: Path, rel: str, data: bytes | str) -> Path:
    p = write(root, rel, data)
    os.utime(p, ns=(OLD, OLD))
    return p


def changes(repo: Repository, untracked: str = "normal") -> tuple[tuple[str, ...], ...]:
    st = repo.status(untracked=untracked)
    return st.modified, st.deleted, st.untracked


def committed_tree(repo: Repository, prefix: str) -> None:
    """Files at ``prefix`` (and in a sibling folder o/ and a subfolder sub/), committed."""
    for rel in ("f1", "f2", "f3.bin", "sub/x", "sub/y"):
        old_write(repo.root, prefix + rel, f"{rel} at {prefix}\n")
    old_write(repo.root, "o/keep", "keep\n")
    repo.add()
    repo.commit("base")
    assert changes(repo) == ((), (), ())


# ---------------------------------------------------------------- what status sees


@pytest.mark.parametrize("p", DEPTHS)
def test_created_removed_and_renamed(repo: Repository, p: str) -> None:
    committed_tree(repo, p)
    write(repo.root, p + "new", "new")
    assert changes(repo) == ((), (), (p + "new",))
    (repo.root / (p + "new")).unlink()
    (repo.root / (p + "f2")).unlink()
    assert changes(repo) == ((), (p + "f2",), ())
    os.rename(repo.root / (p + "f1"), repo.root / (p + "f1-renamed"))  # within the folder
    assert changes(repo) == ((), (p + "f1", p + "f2"), (p + "f1-renamed",))
    os.rename(repo.root / (p + "f1-renamed"), repo.root / "o/f1")  # across folders
    assert changes(repo) == ((), (p + "f1", p + "f2"), ("o/f1",))
    os.rename(repo.root / "o/f1", repo.root / (p + "sub/f1"))  # deeper
    assert changes(repo) == ((), (p + "f1", p + "f2"), (p + "sub/f1",))
    os.makedirs(repo.root / "brand/new")
    os.rename(repo.root / (p + "sub/f1"), repo.root / "brand/new/f1")  # into a new folder
    assert changes(repo) == ((), (p + "f1", p + "f2"), ("brand/",))
    shutil.rmtree(repo.root / (p + "sub"))  # a whole folder
    assert changes(repo) == ((), (p + "f1", p + "f2", p + "sub/x", p + "sub/y"), ("brand/",))
    os.rename(repo.root / "brand/new/f1", repo.root / (p + "f1"))  # back
    old_write(repo.root, p + "f2", f"f2 at {p}\n")
    old_write(repo.root, p + "sub/x", f"sub/x at {p}\n")
    old_write(repo.root, p + "sub/y", f"sub/y at {p}\n")
    assert changes(repo) == ((), (), ())


def test_in_a_folder_where_one_file_changed_only_that_file_is_a_suspect(
    repo: Repository,
) -> None:
    """The folder's clean-leaf check fails; the one-by-one comparison then reuses its ``lstat``
    of each file, each for its own row."""
    for i in range(12):
        old_write(repo.root, f"d/f{i:02d}", f"file {i}\n" * (i + 1))
    repo.add()
    repo.commit("base")
    write(repo.root, "d/f05", "changed\n")
    found = walk(repo.root, repo.worktree.rules, repo.worktree.index, Untracked.NO)
    assert [repo.worktree.index.columns().paths[i] for i in found.suspects] == ["d/f05"]


@pytest.mark.parametrize("p", DEPTHS)
def test_same_size_and_mtime_but_another_file(repo: Repository, p: str) -> None:
    committed_tree(repo, p)
    f1, f2 = repo.root / (p + "f1"), repo.root / (p + "f2")
    before = os.lstat(f1)
    # in place: same inode, same size, mtime put back; only the ctime tells
    f1.write_bytes(f1.read_bytes().upper())
    os.utime(f1, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.lstat(f1)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )
    assert changes(repo) == ((p + "f1",), (), ())
    # a new file moved over it: another inode, same size and mtime
    before = os.lstat(f2)
    tmp = repo.root / "tmp-file"
    tmp.write_bytes(f2.read_bytes().upper())
    os.utime(tmp, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(tmp, f2)
    assert os.lstat(f2).st_ino != before.st_ino
    assert changes(repo) == ((p + "f1", p + "f2"), (), ())
    # the same bytes again, with a new stat: clean (and refreshed)
    old_write(repo.root, p + "f1", f"f1 at {p}\n")
    old_write(repo.root, p + "f2", f"f2 at {p}\n")
    assert changes(repo) == ((), (), ())
    assert changes(repo) == ((), (), ())


@pytest.mark.parametrize("p", DEPTHS)
def test_kind_changes(repo: Repository, p: str) -> None:
    committed_tree(repo, p)
    f1 = repo.root / (p + "f1")
    os.chmod(f1, 0o755)
    assert changes(repo) == ((p + "f1",), (), ())
    os.chmod(f1, 0o644)
    assert changes(repo) == ((), (), ())
    # replaced by a symlink (to a file holding the very same bytes)
    f1.unlink()
    os.symlink("f2", f1)
    assert changes(repo) == ((p + "f1",), (), ())
    f1.unlink()
    # replaced by a folder, then back
    old_write(repo.root, p + "f1/inside", "x")
    assert changes(repo) == ((), (p + "f1",), (p + "f1/",))
    assert changes(repo, "all") == ((), (p + "f1",), (p + "f1/inside",))
    shutil.rmtree(f1)
    old_write(repo.root, p + "f1", f"f1 at {p}\n")
    assert changes(repo) == ((), (), ())
    # a folder replaced by a file, then back
    shutil.rmtree(repo.root / (p + "sub"))
    old_write(repo.root, p + "sub", "now a file")
    assert changes(repo) == ((), (p + "sub/x", p + "sub/y"), (p + "sub",))
    (repo.root / (p + "sub")).unlink()
    old_write(repo.root, p + "sub/x", f"sub/x at {p}\n")
    old_write(repo.root, p + "sub/y", f"sub/y at {p}\n")
    assert changes(repo) == ((), (), ())
    # a folder replaced by a symlink to a folder: not followed
    shutil.rmtree(repo.root / (p + "sub"))
    os.symlink(
        os.path.relpath(repo.root / "o", (repo.root / (p + "sub")).parent), repo.root / (p + "sub")
    )
    assert changes(repo) == ((), (p + "sub/x", p + "sub/y"), (p + "sub",))


# ---------------------------------------------------------------- untracked files


def test_untracked_folders(repo: Repository) -> None:
    old_write(repo.root, ".dsrepoignore", "*.tmp\nbuild/\n")
    old_write(repo.root, "t/tracked", "t")
    repo.add()
    repo.commit("base")
    write(repo.root, "u/a", "a")
    write(repo.root, "u/deeper/b", "b")  # nested in an untracked folder: still one line
    write(repo.root, "t/v/c", "c")  # untracked folder inside a tracked one
    write(repo.root, "t/v/w/d", "d")
    write(repo.root, "junk/x.tmp", "ignored")  # only ignored files: not shown
    write(repo.root, "junk/deep/y.tmp", "ignored")
    write(repo.root, "build/out", "ignored folder")
    os.makedirs(repo.root / "empty/emptier")  # no file at all: not shown
    write(repo.root, "t/x.tmp", "ignored")
    write(repo.root, "top", "top")
    assert repo.status().untracked == ("t/v/", "top", "u/")
    odd = ["a b", "x[1]", "#hash", "!bang", "trail ", "star*", "q?", "back\\slash"]
    for name in odd:  # names a pattern would read otherwise
        write(repo.root, f"odd/{name}/f", "f")
    with Repository.open(repo.root) as fresh:
        assert fresh.status().untracked == ("odd/", "t/v/", "top", "u/")
    (repo.root / "t/v/c").rename(repo.root / "t/c")
    shutil.rmtree(repo.root / "t/v")
    for name in odd:
        os.rename(repo.root / "odd" / name, repo.root / "t" / name)
    with Repository.open(repo.root) as fresh:
        assert fresh.status().untracked == tuple(
            sorted([*(f"t/{n}/" for n in odd), "t/c", "top", "u/"])
        )
        assert fresh.status(untracked="all").untracked == tuple(
            sorted([*(f"t/{n}/f" for n in odd), "t/c", "top", "u/a", "u/deeper/b"])
        )
    shutil.rmtree(repo.root / "odd")
    for name in odd:
        shutil.rmtree(repo.root / "t" / name)
    os.makedirs(repo.root / "t/v/w")
    (repo.root / "t/c").rename(repo.root / "t/v/c")
    write(repo.root, "t/v/w/d", "d")
    assert repo.status().untracked == ("t/v/", "top", "u/")
    assert repo.status(untracked="all").untracked == (
        "t/v/c",
        "t/v/w/d",
        "top",
        "u/a",
        "u/deeper/b",
    )
    assert repo.status(untracked="no").untracked == ()
    # one file that is not ignored makes the folder show
    write(repo.root, "junk/deep/z.txt", "z")
    assert repo.status().untracked == ("junk/", "t/v/", "top", "u/")
    assert "junk/deep/z.txt" in repo.status(untracked="all").untracked
    assert "junk/x.tmp" not in repo.status(untracked="all").untracked
    # ignore rules in the folder itself count too
    old_write(repo.root, "junk/.dsrepoignore", "*.txt\n.dsrepoignore\n")
    with Repository.open(repo.root) as fresh:
        assert fresh.status().untracked == ("t/v/", "top", "u/")
        assert fresh.status(untracked="all").untracked == (
            "t/v/c",
            "t/v/w/d",
            "top",
            "u/a",
            "u/deeper/b",
        )
    with pytest.raises(RepositoryError, match="untracked"):
        repo.status(untracked="some")


def test_untracked_modes_on_the_command_line(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_write(repo.root, "t/tracked", "t")
    repo.add()
    repo.commit("base")
    write(repo.root, "t/new", "n")
    write(repo.root, "u/a", "a")
    write(repo.root, "u/b/c", "c")
    monkeypatch.chdir(repo.root)
    cli = Cli(monkeypatch)
    normal = ["?? t/new", "?? u/"]
    every = ["?? t/new", "?? u/a", "?? u/b/c"]
    for args, lines in (
        ((), normal),
        (("-u", "normal"), normal),
        (("-uall",), every),
        (("-u", "all"), every),
        (("--untracked-files=all",), every),
        (("-uno",), []),
        (("--untracked-files", "no"), []),
    ):
        assert cli("status", "-s", *args).out.splitlines() == lines, args
    assert "\tu/\n" in cli("status").out
    r = cli.run("status", "-u", "some")
    assert r.code == 2 and "some" in r.err


def test_status_sees_an_ignore_file_written_since_the_last_status(repo: Repository) -> None:
    """One Repository object, status after status (a notebook, a service): a .dsrepoignore
    written in between must count, as it does for a new process."""
    old_write(repo.root, "t", "t")
    repo.add()
    repo.commit("base")
    write(repo.root, "junk/a.txt", "a")
    write(repo.root, "z.log", "z")
    assert repo.status().untracked == ("junk/", "z.log")
    write(repo.root, "junk/.dsrepoignore", "*.txt\n.dsrepoignore\n")
    write(repo.root, ".dsrepoignore", "*.log\n.dsrepoignore\n")
    with Repository.open(repo.root) as fresh:
        assert fresh.status().untracked == ()
    assert repo.status().untracked == ()


def test_tracked_files_in_an_ignored_folder_are_compared(repo: Repository) -> None:
    old_write(repo.root, ".dsrepoignore", "build/\n*.log\n")
    old_write(repo.root, "build/x", "x")
    old_write(repo.root, "build/sub/y", "y")
    old_write(repo.root, "run.log", "log")
    repo.add(".dsrepoignore")
    repo.add("build", "run.log", force=True)
    repo.commit("forced")
    write(repo.root, "build/new", "untracked but ignored")
    assert changes(repo) == ((), (), ())
    write(repo.root, "build/x", "x changed")
    (repo.root / "build/sub/y").unlink()
    write(repo.root, "run.log", "log changed")
    assert changes(repo) == (("build/x", "run.log"), ("build/sub/y",), ())
    assert changes(repo, "all") == (("build/x", "run.log"), ("build/sub/y",), ())
    repo.add("build/x", "run.log", "build/sub/y")  # tracked: added without -f
    st = repo.status()
    assert st.staged_modified == ("build/x", "run.log")
    assert st.staged_deleted == ("build/sub/y",)
    assert (st.modified, st.deleted, st.untracked) == ((), (), ())


def test_a_partial_working_copy_reports_nothing_outside(repo: Repository, tmp_path: Path) -> None:
    for i in range(3):
        write(repo.root, f"img/{i}.png", f"png {i}")
        write(repo.root, f"data/{i}.csv", f"csv {i}")
        write(repo.root, f"data/deep/{i}.csv", f"csv {i}")
    write(repo.root, "readme", "hello")
    repo.add()
    repo.commit("all")
    url = str(tmp_path / "remote")
    repo.remote_add("origin", url)
    repo.push("origin")
    with Repository.clone(url, tmp_path / "part", only=["img/*"]) as part:
        assert sorted(p.relative_to(part.root).as_posix() for p in part.root.rglob("*.png")) == [
            "img/0.png",
            "img/1.png",
            "img/2.png",
        ]
        assert not (part.root / "data").exists()
        assert changes(part) == ((), (), ())
        assert changes(part, "all") == ((), (), ())
        assert part.status().clean
        write(part.root, "img/1.png", "changed")
        (part.root / "img/2.png").unlink()
        write(part.root, "img/3.png", "new")
        assert changes(part) == (("img/1.png",), ("img/2.png",), ("img/3.png",))


# ---------------------------------------------------------------- the forked walk


def big_tree(repo: Repository, rng: random.Random) -> list[str]:
    """~2,000 files in ~40 folders (some nested, some tiny, one ignored but tracked, some with
    their own .dsrepoignore), committed."""
    folders = [f"f{i:02}" for i in range(30)] + [f"n/{i}/m" for i in range(8)] + ["a-b", "a"]
    paths = []
    for d in folders:
        for k in range(rng.choice([1, 10, 60, 100, 110])):
            paths.append(f"{d}/{k}.dat")
    paths += [f"top{k}" for k in range(20)]
    paths += [f"ign/{k}.dat" for k in range(30)]
    for p in paths:
        old_write(repo.root, p, p)
    old_write(repo.root, ".dsrepoignore", "*.tmp\nign/\n")
    old_write(repo.root, "f03/.dsrepoignore", "untracked1*\n")
    old_write(repo.root, "n/2/.dsrepoignore", "*.dat\n")  # tracked .dat files stay tracked
    repo.add()
    repo.add("ign", force=True)
    repo.commit("big")
    return paths


def mess_up(repo: Repository, paths: list[str], rng: random.Random) -> None:
    for p in rng.sample(paths, 300):
        full = repo.root / p
        how = rng.choice(["modify", "touch", "delete", "delete", "folder", "chmod"])
        if how == "modify":
            full.write_text(p + " modified")
        elif how == "touch":
            os.utime(full, ns=(OLD + 10**9, OLD + 10**9))
        elif how == "delete":
            full.unlink()
        elif how == "folder":
            full.unlink()
            write(repo.root, p + "/inside", "x")
        else:
            os.chmod(full, 0o755)
    for k in range(60):
        d = rng.choice(["f03", "f17", "n/2/m", "new", "new/deeper", "a-b", "ign", ""])
        name = rng.choice([f"untracked{k}", f"untracked{k}.tmp", f"{k}.dat"])
        write(repo.root, f"{d}/{name}" if d else name, "u")
    write(repo.root, "only-ignored/x.tmp", "i")
    shutil.rmtree(repo.root / "f05")  # a whole tracked folder


def normalized(r: WalkResult) -> tuple[list[int], list[str], list[str]]:
    return sorted(r.suspects), sorted(r.deleted), sorted(r.untracked)


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Forced forking at any size; records (folders here, folders in the child) per fork."""
    monkeypatch.setattr(statuswalk, "PARALLEL_MIN_ROWS", 1)
    monkeypatch.setattr(forking, "can_fork", lambda: True)
    calls: list[tuple[int, int]] = []
    real = statuswalk._fork_walk

    def spy(w: object, mine: list[object], theirs: list[object]) -> WalkResult:
        calls.append((len(mine), len(theirs)))
        return real(w, mine, theirs)  # type: ignore[arg-type]

    monkeypatch.setattr(statuswalk, "_fork_walk", spy)
    return calls


def both_walks(repo: Repository, untracked: Untracked) -> tuple[WalkResult, WalkResult]:
    wt = repo.worktree
    alone = walk(wt.root, wt.rules, wt.index, untracked, wt.sparse, parallel=False)
    forked = walk(wt.root, wt.rules, wt.index, untracked, wt.sparse, parallel=True)
    return alone, forked


def test_the_forked_walk_finds_what_one_process_finds(
    repo: Repository, forks: list[tuple[int, int]]
) -> None:
    rng = random.Random(11)
    paths = big_tree(repo, rng)
    assert 1500 <= len(paths) <= 3000
    for untracked in Untracked:
        alone, forked = both_walks(repo, untracked)
        assert normalized(forked) == normalized(alone) == ([], [], [])
    mess_up(repo, paths, rng)
    forks.clear()
    for untracked in Untracked:
        alone, forked = both_walks(repo, untracked)
        assert normalized(forked) == normalized(alone), untracked
        assert alone.deleted and alone.suspects
        assert bool(alone.untracked) is (untracked is not Untracked.NO)
    assert len(forks) == 3 and all(mine and theirs for mine, theirs in forks)
    # and status through it equals status without it
    forked_status = [repo.status(untracked=u) for u in ("normal", "all", "no")]
    assert len(forks) == 6
    statuswalk.PARALLEL_MIN_ROWS = 10**9  # type: ignore[misc]  # (restored by monkeypatch)
    alone_status = [repo.status(untracked=u) for u in ("normal", "all", "no")]
    assert len(forks) == 6
    assert forked_status == alone_status
    st = alone_status[0]
    assert (
        st.modified
        and st.deleted
        and "new/" in st.untracked
        and "f03/untracked0" not in st.untracked
    )


@pytest.mark.parametrize("failure", ["child-raises", "child-garbage"])
def test_the_walk_survives_its_child(
    repo: Repository,
    forks: list[tuple[int, int]],
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
) -> None:
    rng = random.Random(12)
    paths = big_tree(repo, rng)
    mess_up(repo, paths, rng)
    expected = {u: normalized(both_walks(repo, u)[0]) for u in Untracked}
    forks.clear()
    if failure == "child-raises":  # only the child calls fresh(): it exits 1

        def fresh(self: object) -> object:
            raise RuntimeError("the child fails")

        monkeypatch.setattr(statuswalk._Walker, "fresh", fresh)
    else:  # the child's answer cannot be decoded
        import msgpack

        monkeypatch.setattr(msgpack, "packb", lambda *a, **k: b"\xc1\xc1")
    for u in Untracked:
        forked = walk(repo.root, repo.worktree.rules, repo.worktree.index, u, repo.worktree.sparse)
        assert normalized(forked) == expected[u], u
    assert len(forks) == 3 and all(theirs for _, theirs in forks)
