"""Crash safety and corruption detection, with real processes: a writer killed with SIGKILL in
the middle of a large ``add`` leaves a repository that checks clean and still holds the last
commit byte for byte; a flipped byte in a pack is found by ``fsck`` and by any read."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
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
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "COMMITTED"
        first = snapshot(root)
        packs = root / ".dsrepo" / "packs"
        packs_after_first = set(os.listdir(packs))
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
        st = repo.status()
        assert st.clean
        assert st.untracked == tuple(sorted(p for p in snapshot(root) if p.startswith("incoming/")))
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
