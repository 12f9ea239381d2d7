"""One writer at a time: the index lock (``.dsrepo/index.lock``) and the config lock, with real
processes. Two ``add`` runs at once, or ``add`` beside ``commit -a``, lose nothing; a killed
holder leaves no stale lock; a writer that cannot get the lock fails with exit 11 and one line;
``status`` neither waits nor fails; two processes setting different config keys lose none."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from dsrepo import Locked, Repository, RepositoryError
from dsrepo.dvcs.config import ConfigFile
from dsrepo.dvcs.lock import FileLock, index_lock
from tests.dvcs.conftest import write

pytestmark = pytest.mark.slow

LOCKED_MESSAGE = (
    "another dsrepo process is writing the index (.dsrepo/index.lock); try again when it is done"
)


def dsrepo_exe() -> str:
    return str(Path(sys.executable).with_name("dsrepo"))


def start(script: str, *args: object) -> subprocess.Popen[str]:
    """``python -c script args`` (the environment, identity and global config, is inherited)."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(p: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.005)


# One verb, started by every process of a round at the same instant: each opens the repository,
# says it is ready, waits for the go file, runs the verb; a loser of the lock (exit 11) retries.
RACER = """
    import sys, time
    from pathlib import Path
    from dsrepo import Locked, Repository

    root, verb, arg, ready, go = sys.argv[1:6]
    repo = Repository.open(root)
    Path(ready).touch()
    while not Path(go).exists():
        time.sleep(0.001)
    for attempt in range(5):
        try:
            if verb == "add":
                repo.add(arg)
            else:
                repo.commit(arg, all=True)
            break
        except Locked:
            print("locked", file=sys.stderr)
    else:
        sys.exit(11)
"""


def race(root: Path, tmp: Path, jobs: list[tuple[str, str]]) -> None:
    """Run each (verb, arg) in its own process, released together; every one must succeed."""
    go = tmp / "go"
    go.unlink(missing_ok=True)
    procs = []
    for i, (verb, arg) in enumerate(jobs):
        ready = tmp / f"ready-{i}"
        ready.unlink(missing_ok=True)
        procs.append((start(RACER, root, verb, arg, ready, go), ready))
    for _, ready in procs:
        wait_for(ready)
    go.touch()
    for p, _ in procs:
        code, _out, err = finish(p)
        assert code == 0, err


def test_two_adds_at_once_lose_no_file(repo: Repository, tmp_path: Path) -> None:
    for r in range(4):
        for side in ("a", "b"):
            for i in range(300):
                write(repo.root, f"{side}/{r}/f{i:03}.txt", f"{side} {r} {i}\n")
        race(repo.root, tmp_path, [("add", f"a/{r}"), ("add", f"b/{r}")])
        with Repository.open(repo.root) as fresh:
            st = fresh.status()
            assert st.untracked == (), f"round {r}: {len(st.untracked)} files not staged"
            assert len(st.staged_added) == 600 * (r + 1)


def test_add_beside_commit_all_loses_no_file(repo: Repository, tmp_path: Path) -> None:
    for i in range(100):
        write(repo.root, f"t/f{i:03}.txt", f"v0 {i}\n")
    repo.add(".")
    repo.commit("tracked files")
    for r in range(4):
        for i in range(100):
            write(repo.root, f"t/f{i:03}.txt", f"v{r + 1} {i}\n")  # work for commit -a
            write(repo.root, f"n/{r}/f{i:03}.txt", f"new {r} {i}\n")  # work for add
        race(repo.root, tmp_path, [("add", f"n/{r}"), ("commit", f"round {r}")])
        with Repository.open(repo.root) as fresh:
            st = fresh.status()
            assert (st.untracked, st.modified, st.deleted) == ((), (), ()), f"round {r}"
            committed = fresh.flatten(fresh.commit_tree(fresh.head_commit()))
            assert fresh.open_file("HEAD", "t/f000.txt").read() == f"v{r + 1} 0\n".encode()
            staged = set(st.staged_added)
            for q in range(r + 1):
                for i in range(100):
                    p = f"n/{q}/f{i:03}.txt"
                    assert p in staged or p in committed, f"round {r}: {p} lost"


HOLDER = """
    import sys, time
    from pathlib import Path
    from dsrepo.dvcs.lock import index_lock

    with index_lock(Path(sys.argv[1])).held():
        print("held", flush=True)
        time.sleep(120)
"""


def hold_index_lock(repo: Repository) -> subprocess.Popen[str]:
    holder = start(HOLDER, repo.dsdir)
    assert holder.stdout is not None
    assert holder.stdout.readline() == "held\n"
    return holder


def test_a_killed_holder_leaves_no_stale_lock(repo: Repository, tmp_path: Path) -> None:
    write(repo.root, "a.txt", "a\n")
    holder = hold_index_lock(repo)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    assert (repo.dsdir / "index.lock").exists()  # the file stays; only the flock counted
    began = time.monotonic()
    done = subprocess.run(
        [dsrepo_exe(), "add", "a.txt"], cwd=repo.root, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - began < 5  # no waiting for a dead holder
    with Repository.open(repo.root) as fresh:
        assert fresh.status().staged_added == ("a.txt",)


def test_a_writer_gives_up_after_its_timeout(repo: Repository) -> None:
    write(repo.root, "a.txt", "a\n")
    holder = hold_index_lock(repo)
    try:
        repo.lock_timeout = 0.3
        began = time.monotonic()
        with pytest.raises(Locked) as caught:
            repo.add(".")
        assert 0.3 <= time.monotonic() - began < 3
        assert str(caught.value) == LOCKED_MESSAGE
        assert caught.value.exit_code == 11
        with pytest.raises(Locked):
            repo.commit("x", all=True)
        with pytest.raises(Locked):
            repo.checkout("HEAD")
        assert not (repo.dsdir / "index").exists()  # nothing was written
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert repo.add(".").added == ["a.txt"]  # the lock is free again


def test_the_cli_exits_11_with_one_line(repo: Repository) -> None:
    """The default wait (10 s), then exit 11: the slow path, once."""
    write(repo.root, "a.txt", "a\n")
    holder = hold_index_lock(repo)
    try:
        began = time.monotonic()
        done = subprocess.run(
            [dsrepo_exe(), "add", "."], cwd=repo.root, capture_output=True, text=True, timeout=60
        )
        waited = time.monotonic() - began
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert done.returncode == 11
    assert done.stderr == f"dsrepo: error: {LOCKED_MESSAGE}\n"
    assert 10 <= waited < 30


def test_status_neither_waits_nor_fails_nor_overwrites(repo: Repository) -> None:
    write(repo.root, "a.txt", "a\n")
    repo.add(".")
    repo.commit("one")
    index = repo.dsdir / "index"
    before = index.stat()
    later = before.st_mtime_ns + 5 * 10**9
    os.utime(repo.root / "a.txt", ns=(later, later))  # same content, new stat: worth a refresh
    holder = hold_index_lock(repo)
    try:
        began = time.monotonic()
        with Repository.open(repo.root) as other:
            assert other.status().clean
        assert time.monotonic() - began < 2
        assert index.stat().st_mtime_ns == before.st_mtime_ns  # not saved without the lock
    finally:
        holder.kill()
        holder.wait(timeout=30)
    with Repository.open(repo.root) as other:
        assert other.status().clean
    assert index.stat().st_mtime_ns != before.st_mtime_ns  # the refresh is saved now


def test_status_does_not_save_over_an_index_changed_since_it_read_it(repo: Repository) -> None:
    write(repo.root, "a.txt", "a\n")
    repo.add(".")
    reader = Repository.open(repo.root)
    try:
        wt = reader.worktree  # the index as it was before the next add
        later = os.stat(repo.root / "a.txt").st_mtime_ns + 5 * 10**9
        os.utime(repo.root / "a.txt", ns=(later, later))
        write(repo.root, "b.txt", "b\n")
        repo.add("b.txt")  # another writer replaces the index
        wt.changes()  # refreshes a.txt's stat, but must not save its older index
        with Repository.open(repo.root) as fresh:
            assert sorted(fresh.worktree.index.entries) == ["a.txt", "b.txt"]
    finally:
        reader.close()


CONFIG_WRITER = """
    import sys
    from pathlib import Path
    from dsrepo import Repository, user_config

    root, side, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    repo = Repository.open(root)
    for i in range(n):
        repo.config.local.set(f"{side}.k{i}", str(i))
        user_config().set(f"{side}.k{i}", str(i))
"""


def test_two_processes_setting_config_keys_lose_none(repo: Repository, identity: Path) -> None:
    writers = [start(CONFIG_WRITER, repo.root, side, 60) for side in ("a", "b")]
    for p in writers:
        code, _out, err = finish(p)
        assert code == 0, err
    for path in (repo.dsdir / "config", identity):
        cfg = ConfigFile(path)
        missing = [
            f"{side}.k{i}"
            for side in ("a", "b")
            for i in range(60)
            if cfg.get(f"{side}.k{i}") != str(i)
        ]
        assert not missing, f"{path}: lost {len(missing)} keys, e.g. {missing[:5]}"


def test_a_config_change_reads_the_file_again_under_the_lock(tmp_path: Path) -> None:
    one, two = ConfigFile(tmp_path / "config"), ConfigFile(tmp_path / "config")
    one.set("a.x", "1")
    two.set("b.y", "2")  # two was read before one's change: it must not undo it
    assert (ConfigFile(tmp_path / "config").get("a.x"), two.get("a.x")) == ("1", "1")
    assert two.remove_section("a") and not ConfigFile(tmp_path / "config").get("a.x")


# ---------------------------------------------------------------- the lock within one process


def test_the_lock_is_reentrant_in_its_thread_and_excludes_other_threads(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "x.lock", "the thing (x.lock)")
    seen: list[object] = []

    def other() -> None:
        seen.append(lock.try_acquire())
        try:
            lock.acquire(0.1)
        except Locked as exc:
            seen.append(str(exc))

    with lock.held() as first:
        with lock.held() as again:
            assert (first, again) == (True, False)
            t = threading.Thread(target=other)
            t.start()
            t.join()
        assert lock.held_here()
    assert not lock.held_here()
    assert seen == [
        False,
        "another dsrepo process is writing the thing (x.lock); try again when it is done",
    ]
    assert lock.try_acquire()
    lock.release()


def test_the_index_is_saved_only_under_the_lock(repo: Repository) -> None:
    write(repo.root, "a.txt", "a\n")
    repo.add(".")
    wt = repo.worktree
    with pytest.raises(RepositoryError, match=r"may only be written holding .*index\.lock"):
        wt.index.save()
    with index_lock(repo.dsdir).held():
        assert repo.worktree is not wt  # read again under the lock
        repo.worktree.index.save()
