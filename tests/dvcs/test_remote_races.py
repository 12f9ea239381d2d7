"""Racing processes on one directory remote: pushers that loop pull + push until accepted, while
other processes fetch and clone. Nothing may error, every pushed commit must end up on the
remote, and every ref's history must be complete (a fetch that listed the remote's pack indexes
before reading its refs saw a new ref without its packs and called the remote damaged)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dsrepo import Repository
from dsrepo.dvcs.fsck import fsck

PUSHER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from dsrepo import Repository

    remote, work, name, rounds = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    repo = Repository.clone(remote, work)
    pushed = []
    for r in range(rounds):
        (repo.root / f"{name}-{r}.txt").write_text(f"{name} round {r}\\n" * 200)
        repo.add(".")
        pushed.append(repo.commit(f"{name} {r}").id.hex())
        for attempt in range(50):
            result = repo.push("origin")
            if result.ok:
                break
            repo.pull()  # merge the winner's commit, then try again
        else:
            sys.exit(f"{name}: push never accepted")
    print(" ".join(pushed))
    """
)

READER = textwrap.dedent(
    """
    import shutil, sys, time
    from pathlib import Path
    from dsrepo import Repository

    remote, work, stop, deadline = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4])
    repo = Repository.clone(remote, work / "reader")
    n = 0
    while not stop.exists() and time.time() < deadline:
        repo.fetch("origin")
        if n % 3 == 0:
            fresh = Repository.clone(remote, work / f"clone-{n}")
            fresh.close()
            shutil.rmtree(work / f"clone-{n}")
        n += 1
    print(n)
    """
)


@pytest.mark.slow
def test_fetches_and_clones_while_pushers_push(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSREPO_AUTHOR_NAME", "Racer")
    monkeypatch.setenv("DSREPO_AUTHOR_EMAIL", "racer@example.com")
    monkeypatch.setenv("DSREPO_CONFIG_GLOBAL", str(tmp_path / "g"))
    env = {
        **os.environ,
        "DSREPO_AUTHOR_NAME": "Racer",
        "DSREPO_AUTHOR_EMAIL": "racer@example.com",
        "DSREPO_CONFIG_GLOBAL": str(tmp_path / "g"),
    }
    remote = tmp_path / "remote"
    seed = Repository.init(tmp_path / "seed")
    (seed.root / "seed.txt").write_text("seed\n")
    seed.add(".")
    seed.commit("seed")
    assert seed.push(str(remote)).ok
    seed.close()

    stop = tmp_path / "stop"
    deadline = str(time.time() + 60)
    readers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                READER,
                str(remote),
                str(tmp_path / f"r{i}"),
                str(stop),
                deadline,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    pushers = [
        subprocess.Popen(
            [sys.executable, "-c", PUSHER, str(remote), str(tmp_path / f"p{i}"), f"p{i}", "3"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    pushed: list[str] = []
    failures = []
    for p in pushers:
        out, err = p.communicate(timeout=180)
        if p.returncode != 0:
            failures.append(f"pusher exited {p.returncode}: {err.strip()[-2000:]}")
        pushed.extend(out.split())
    stop.touch()
    for p in readers:
        out, err = p.communicate(timeout=120)
        if p.returncode != 0:
            failures.append(f"reader exited {p.returncode}: {err.strip()[-2000:]}")
    assert not failures, "\n".join(failures)
    assert len(pushed) == 12

    final = Repository.clone(str(remote), tmp_path / "final")
    try:
        report = fsck(final)
        assert report.ok, report.problems
        history = {e.id.hex() for e in final.log("HEAD")}
        assert set(pushed) <= history  # every accepted commit is on the remote
        for i in range(4):
            for r in range(3):
                assert (final.root / f"p{i}-{r}.txt").read_text() == f"p{i} round {r}\n" * 200
    finally:
        final.close()
