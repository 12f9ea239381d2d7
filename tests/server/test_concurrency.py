"""Concurrent clients over HTTP, as real processes against one live server: racing pushers (in
every round exactly one wins, the others are told to fetch first, nothing is lost), then a
bounded load test — 16 concurrent clones beside 4 pushers for a fixed number of rounds — that
prints the server's requests/s and p95 latency (no timing is asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from dsrepo import Repository
from tests.server.conftest import Serve
from tests.server.live import LiveServer, dsrepo_executable


class Timing:
    """ASGI wrapper recording every request's duration (start to last byte sent)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.durations: list[float] = []
        self._lock = threading.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["type"] == "http":
                with self._lock:
                    self.durations.append(time.perf_counter() - start)

    def report(self, label: str, seconds: float) -> str:
        with self._lock:
            d = sorted(self.durations)
        p95 = d[int(0.95 * (len(d) - 1))] if d else 0.0
        line = (
            f"{label}: {len(d)} requests in {seconds:.1f} s = {len(d) / seconds:.0f} requests/s, "
            f"p95 latency {p95 * 1000:.1f} ms, max {d[-1] * 1000 if d else 0:.1f} ms"
        )
        print(line)
        return line


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [dsrepo_executable(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def seed(server: LiveServer, tmp_path: Path, env: dict[str, str]) -> None:
    work = tmp_path / "seed"
    work.mkdir()
    (work / "data").mkdir()
    for i in range(8):
        (work / "data" / f"part-{i}.bin").write_bytes(os.urandom(200_000))
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "seed"]):
        assert run(args, work, env).returncode == 0
    r = run(["push", server.url, "main"], work, env)
    assert r.returncode == 0, r


def client_env(server: LiveServer, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSREPO_")}
    env.update(
        DSREPO_TOKEN=server.token("write"),
        DSREPO_AUTHOR_NAME="Racer",
        DSREPO_AUTHOR_EMAIL="racer@example.com",
        DSREPO_CONFIG_GLOBAL=str(tmp_path / "gconfig"),
        DSREPO_CACHE_DIR=str(tmp_path / "cache"),
    )
    return env


def test_racing_pushers_exactly_one_wins_each_round(
    serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each round, four clones commit on the same tip and push at once (four processes):
    exactly one push is accepted, the others are told to fetch first; they then merge and push
    again, so every commit lands."""
    server = serve()
    env = client_env(server, tmp_path)
    for name in (
        "DSREPO_TOKEN",
        "DSREPO_AUTHOR_NAME",
        "DSREPO_AUTHOR_EMAIL",
        "DSREPO_CONFIG_GLOBAL",
    ):
        monkeypatch.setenv(name, env[name])
    seed(server, tmp_path, env)
    pushers = [Repository.clone(server.url, tmp_path / f"p{i}") for i in range(4)]
    made: list[str] = []
    for rnd in range(2):
        for i, repo in enumerate(pushers):
            (repo.root / f"p{i}-r{rnd}.txt").write_text(f"pusher {i} round {rnd}\n")
            repo.add(".")
            repo.commit(f"p{i} r{rnd}")
            made.append(f"p{i} r{rnd}")
        procs = [
            subprocess.Popen(
                [dsrepo_executable(), "push", "-q"],
                cwd=repo.root,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for repo in pushers
        ]
        results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
        assert len([r for r in results if r[0] == 0]) == 1, results
        for code, _out, err in results:
            if code != 0:
                assert code == 5, results
                assert "fetch first" in err or "changed meanwhile" in err, err
        for repo in pushers:  # the losers merge the winner's work and push again
            for _ in range(10):
                repo.pull()
                if repo.push().ok:
                    break
            else:
                raise AssertionError(f"{repo.root.name} never got its push accepted")
    for repo in pushers:
        repo.close()
    with Repository.clone(server.url, tmp_path / "check") as check:
        messages = {e.commit.message.strip() for e in check.log()}
        assert set(made) <= messages
        assert check.fsck().ok


PUSHER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from dsrepo import Repository

    url, work, name, rounds = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    repo = Repository.clone(url, work)
    for r in range(rounds):
        (repo.root / f"{name}-{r}.bin").write_bytes(bytes([r]) * 300_000 + name.encode())
        repo.add(".")
        repo.commit(f"{name} {r}")
        for attempt in range(50):
            if repo.push("origin").ok:
                break
            repo.pull()
        else:
            sys.exit(f"{name}: push never accepted")
    """
)


def test_load_16_clones_and_4_pushers(
    serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    timing: list[Timing] = []

    def wrap(app: Any) -> Timing:
        timing.append(Timing(app))
        return timing[0]

    server = serve(wrap=wrap)
    env = client_env(server, tmp_path)
    monkeypatch.setenv("DSREPO_TOKEN", env["DSREPO_TOKEN"])
    seed(server, tmp_path, env)
    timing[0].durations.clear()
    rounds, clones = 2, 16
    start = time.perf_counter()
    pushers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                PUSHER,
                server.url,
                str(tmp_path / f"pusher{i}"),
                f"p{i}",
                str(rounds),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    failures = []
    for rnd in range(rounds):
        procs = [
            subprocess.Popen(
                [dsrepo_executable(), "clone", "-q", server.url, str(tmp_path / f"c{rnd}-{i}")],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(clones)
        ]
        for p in procs:
            _out, err = p.communicate(timeout=120)
            if p.returncode != 0:
                failures.append(err)
    for p in pushers:
        _out, err = p.communicate(timeout=120)
        if p.returncode != 0:
            failures.append(err)
    elapsed = time.perf_counter() - start
    assert not failures, failures
    timing[0].report(f"load: {rounds} rounds of {clones} clones beside 4 pushers", elapsed)
    for rnd in range(rounds):
        for i in range(clones):
            assert (tmp_path / f"c{rnd}-{i}" / "data" / "part-0.bin").is_file()
    with Repository.clone(server.url, tmp_path / "check") as check:
        messages = {e.commit.message.strip() for e in check.log()}
        assert {f"p{i} {r}" for i in range(4) for r in range(rounds)} <= messages
        assert check.fsck().ok
    assert elapsed < 120
