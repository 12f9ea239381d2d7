"""Crash safety and corruption detection, with real processes: a writer killed with SIGKILL in
the middle of a large ``add`` leaves a repository that checks clean and still holds the last
commit byte for byte; a flipped byte in a pack is found by ``fsck`` and by any read; a killed
``checkout``, ``checkout --into`` or ``clone`` is completed by running the same command again."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dsrepo import Repository
from dsrepo.dvcs.fsck import fsck as fsck_fn
from dsrepo.objects import layout
from dsrepo.objects.errors import CorruptObject
from tests.snapshots import snapshot

pytestmark = pytest.mark.slow

MiB = 1024 * 1024


def dsrepo_exe() -> str:
    candidate = Path(sys.executable).parent / "dsrepo"
    return str(candidate) if candidate.exists() else str(shutil.which("dsrepo"))


def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DSREPO_AUTHOR_NAME": "Crash Tester",
        "DSREPO_AUTHOR_EMAIL": "crash@example.com",
        "DSREPO_CONFIG_GLOBAL": str(tmp_path / "gconfig"),
    }


def run(tmp_path: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [dsrepo_exe(), *args],
        cwd=cwd,
        env=env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )


WRITER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from blake3 import blake3
    from dsrepo import Repository

    root = Path(sys.argv[1])
    repo = Repository.init(root)
    for i in range(5):
        (root / f"v1_{i}.bin").write_bytes(os.urandom(300_000 + i))
    (root / "big_v1.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    repo.add(".")
    repo.commit("first version")
    print("COMMITTED", flush=True)
    sys.stdin.readline()  # the test has taken its snapshot of the first version
    (root / "incoming").mkdir()
    for i in range(12):  # 96 MiB that does not deduplicate (BLAKE3 XOF is a fast generator)
        data = blake3(b"part %d" % i).digest(length=8 * 1024 * 1024)
        (root / "incoming" / f"part_{i:02d}.bin").write_bytes(data)
    repo.store.pack_target = 8 * 1024 * 1024  # several packs, so the kill lands between them
    print("ADDING", flush=True)
    repo.add(".")
    repo.commit("second version")
    print("DONE", flush=True)
    """
)


def test_sigkill_during_a_large_add_leaves_a_consistent_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "repo"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root)],
        env=env(tmp_path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "COMMITTED"
        first = snapshot(root)
        packs = root / ".dsrepo" / "packs"
        packs_after_first = set(os.listdir(packs))
        proc.stdin.write("go\n")  # only now may the writer go on (it raced the snapshot)
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "ADDING"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            now = set(os.listdir(packs))
            if any(n.startswith(".tmp-") for n in now) or now - packs_after_first:
                break
            time.sleep(0.002)
        assert proc.poll() is None, "the writer finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "DONE" not in proc.stdout.read()

    fsck = run(tmp_path, root, "fsck")
    assert fsck.returncode == 0, fsck
    assert fsck.stdout.startswith("ok: ")
    log = run(tmp_path, root, "log", "--oneline")
    assert log.returncode == 0, log
    assert [line.split(" ", 1)[1] for line in log.stdout.splitlines()] == [
        "(HEAD -> main) first version"
    ]
    out = tmp_path / "restored"
    co = run(tmp_path, root, "checkout", "--into", str(out), "HEAD")
    assert co.returncode == 0, co
    assert snapshot(out) == first
    # the interrupted add staged nothing, and the repository keeps working
    monkeypatch.setenv("DSREPO_AUTHOR_NAME", "After Crash")
    monkeypatch.setenv("DSREPO_AUTHOR_EMAIL", "after@example.com")
    monkeypatch.setenv("DSREPO_CONFIG_GLOBAL", str(tmp_path / "gconfig"))
    with Repository.open(root) as repo:
        st = repo.status(untracked="all")
        assert st.clean
        assert st.untracked == tuple(sorted(p for p in snapshot(root) if p.startswith("incoming/")))
        assert repo.status().untracked == ("incoming/",)  # git's default: the folder, once
        shutil.rmtree(root / "incoming")
        (root / "after.txt").write_text("after the crash\n")
        repo.add("after.txt")
        repo.commit("after crash")
        report = fsck_fn(repo)
        assert report.ok, report.problems
        assert [e.commit.message for e in repo.log()] == ["after crash\n", "first version\n"]


def test_a_flipped_byte_is_found_by_fsck_and_by_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in env(tmp_path).items():
        if k.startswith("DSREPO_"):
            monkeypatch.setenv(k, v)
    root = tmp_path / "repo"
    data = random.Random(3).randbytes(200_000)
    with Repository.init(root) as repo:
        (root / "victim.bin").write_bytes(data)
        (root / "bystander.txt").write_text("fine\n")
        repo.add()
        repo.commit("v1")
        assert fsck_fn(repo).ok
        [info] = [f for f in repo.ls("HEAD") if f.path == "victim.bin"]
        loc = repo.store.locate(info.content_id)
        assert loc is not None
        oid = info.content_id.hex()
    pack = root / ".dsrepo" / layout.pack_key(loc.pack)
    raw = bytearray(pack.read_bytes())
    raw[loc.offset + loc.stored_size // 2] ^= 0x40
    pack.chmod(0o644)
    pack.write_bytes(bytes(raw))

    fsck = run(tmp_path, root, "fsck")
    assert fsck.returncode == 7, fsck
    assert any(oid in line and loc.pack in line for line in fsck.stderr.splitlines()), fsck.stderr
    assert fsck.stderr.splitlines()[-1].startswith("dsrepo: error: ")

    for rev in (oid[:16], "HEAD:victim.bin"):
        cat = run(tmp_path, root, "cat-file", "-p", rev)
        assert cat.returncode == 7, cat
        lines = [line for line in cat.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("dsrepo: error: "), cat.stderr
        assert oid in lines[0] and loc.pack in lines[0]
        assert cat.stdout == ""

    with Repository.open(root) as repo:
        with pytest.raises(CorruptObject) as exc, repo.open_file("HEAD", "victim.bin") as f:
            f.read()
        assert oid in str(exc.value)
        with pytest.raises(CorruptObject):
            repo.checkout("HEAD", into=tmp_path / "out")
        assert not (tmp_path / "out" / "victim.bin").exists()
        with repo.open_file("HEAD", "bystander.txt") as f:
            assert f.read() == b"fine\n"
        report = fsck_fn(repo)
        assert not report.ok


# ---------------------------------------------------------------- killed checkout, --into, clone
# Each command is killed with SIGKILL at a random instant while it writes, then run again: the
# second run must complete the operation (no --force, no "not empty") and leave exactly what an
# uninterrupted run leaves.


def _blob(tag: str, size: int) -> bytes:
    from blake3 import blake3

    return blake3(tag.encode()).digest(length=size)


def _fill(root: Path, version: str, count: int, size: int) -> None:
    for i in range(count):
        (root / f"f{i:02d}.bin").write_bytes(_blob(f"{version} {i}", size))


def _api_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in env(tmp_path).items():
        if k.startswith("DSREPO_"):
            monkeypatch.setenv(k, v)


def _start(tmp_path: Path, cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [dsrepo_exe(), *args],
        cwd=cwd,
        env=env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_when(proc: subprocess.Popen[str], ready: Callable[[], bool], timeout: float = 30) -> bool:
    """SIGKILL ``proc`` as soon as ``ready()``; False if it finished first."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if ready():
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.001)
    finally:
        if proc.poll() is None and time.monotonic() >= deadline:
            proc.kill()
        proc.wait(timeout=30)
    return proc.returncode == -signal.SIGKILL


def _temps(root: Path) -> list[str]:
    return [str(p) for p in root.rglob(".dsrepo-tmp-*")]


def test_sigkill_during_checkout_then_the_same_checkout_completes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _api_env(tmp_path, monkeypatch)
    root = tmp_path / "repo"
    with Repository.init(root) as repo:
        _fill(root, "v1", 48, 2 * MiB)
        repo.add(".")
        repo.commit("v1")
        repo.switch("next", create=True)
        _fill(root, "v2", 46, 2 * MiB)  # every file changes, two are deleted, one is added
        for gone in ("f46.bin", "f47.bin"):
            (root / gone).unlink()
        (root / "added.txt").write_text("new in v2\n")
        repo.add(".")
        repo.commit("v2")
        v2 = snapshot(root)
        repo.switch("main")
    start = time.time_ns()
    goal = random.randint(3, 40)

    def some_written() -> bool:
        done = 0
        with os.scandir(root) as it:
            for e in it:
                with contextlib.suppress(OSError):  # a temp file may vanish meanwhile
                    done += e.is_file() and e.stat().st_mtime_ns > start
        return done >= goal

    proc = _start(tmp_path, root, "checkout", "next")
    assert _kill_when(proc, some_written), "the checkout finished before it could be killed"
    with Repository.open(root) as repo:
        assert repo.status().interrupted == "checkout next"
        assert repo.head_branch() == "refs/heads/main"
    again = run(tmp_path, root, "checkout", "next")
    assert again.returncode == 0, again.stderr
    assert snapshot(root) == v2
    assert _temps(root) == []
    with Repository.open(root) as repo:
        st = repo.status()
        assert st.clean and not st.untracked and st.interrupted is None
        assert repo.head_branch() == "refs/heads/next"


def test_sigkill_during_checkout_into_leaves_no_trace_after_the_rerun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _api_env(tmp_path, monkeypatch)
    root = tmp_path / "repo"
    with Repository.init(root) as repo:
        (root / "sub").mkdir()
        _fill(root / "sub", "v1", 24, 4 * MiB)
        repo.add(".")
        repo.commit("v1")
    expected = snapshot(root)
    out = tmp_path / "out"
    for _attempt in range(5):  # until the kill leaves a temp file behind
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        (out / "sub").mkdir()
        time.sleep(random.uniform(0, 0.05))
        proc = _start(tmp_path, root, "checkout", "--into", str(out), "HEAD")
        killed = _kill_when(proc, lambda: bool(_temps(out)))
        if killed and _temps(out):
            break
    else:
        pytest.fail("no kill left a temp file behind")
    again = run(tmp_path, root, "checkout", "--into", str(out), "HEAD")
    assert again.returncode == 0, again.stderr
    assert snapshot(out) == expected  # what an uninterrupted run writes, and nothing else
    assert _temps(out) == []


def test_sigkill_during_clone_then_the_same_clone_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _api_env(tmp_path, monkeypatch)
    src = tmp_path / "src"
    remote = tmp_path / "remote"
    with Repository.init(src) as repo:
        _fill(src, "data", 40, 2 * MiB)
        repo.add(".")
        repo.commit("data")
        repo.remote_add("origin", str(remote))
        repo.push("origin")
    expected = snapshot(src)
    dest = tmp_path / "dest"
    packs = dest / ".dsrepo" / "packs"
    delay = random.uniform(0, 0.05)

    def fetching() -> bool:
        try:
            found = any(not n.startswith(".") for n in os.listdir(packs))
        except OSError:
            return False
        if found:
            time.sleep(delay)
        return found

    proc = _start(tmp_path, tmp_path, "clone", str(remote), "dest")
    assert _kill_when(proc, fetching), "the clone finished before it could be killed"
    kept = {n for n in os.listdir(packs) if not n.startswith(".")}
    unrelated = tmp_path / "unrelated"
    unrelated.mkdir()
    (unrelated / "mine.txt").write_text("mine\n")
    refused = run(tmp_path, tmp_path, "clone", str(remote), "unrelated")
    assert refused.returncode != 0 and "not empty" in refused.stderr
    again = run(tmp_path, tmp_path, "clone", str(remote), "dest")
    assert again.returncode == 0, again.stderr
    assert snapshot(dest) == expected
    assert kept <= set(os.listdir(packs))  # what the killed run fetched was kept
    assert _temps(dest) == []
    with Repository.open(dest) as repo:
        st = repo.status()
        assert st.clean and not st.untracked and st.interrupted is None
        assert fsck_fn(repo).ok
