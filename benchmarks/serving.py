"""G) serve: ``dsrepo serve`` on 127.0.0.1 (port 0) over a pushed repository, under a bounded
load: rounds of 16 concurrent ``dsrepo clone`` beside 4 pushers (``dsrepo`` CLI processes that
commit and push once a round, pulling and retrying when another push won). Requests per second
and p95 latency as the server saw them, and whether anything was lost. The server runs as
``run.py _serve`` (:func:`serve_main`): the real ``dsrepo serve`` CLI with its uvicorn app wrapped
in a layer timing every request."""

from __future__ import annotations

import atexit
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    RUN_PY,
    Report,
    Row,
    Sizes,
    bench_env,
    dsrepo_exe,
    fmt_mib,
    progress,
    record_step,
    rmtree,
    verdict,
)

CLONES = 16
PUSHERS = 4

PUSHER = """
set -e
X="$1"; URL="$2"; DIR="$3"; NAME="$4"; ROUNDS="$5"; BYTES="$6"
"$X" clone -q "$URL" "$DIR" >/dev/null
cd "$DIR"
r=0
while [ "$r" -lt "$ROUNDS" ]; do
  head -c "$BYTES" /dev/urandom > "$NAME-$r.bin"
  "$X" add . >/dev/null
  "$X" commit -q -m "$NAME $r" >/dev/null
  n=0
  until "$X" push -q >/dev/null; do
    n=$((n + 1))
    if [ "$n" -ge 50 ]; then echo "$NAME: push never accepted" >&2; exit 1; fi
    "$X" pull >/dev/null
  done
  r=$((r + 1))
done
"""


def serve_main(argv: list[str]) -> None:
    """``_serve DURATIONS_JSON -- ARGS...``: ``dsrepo ARGS...`` (``serve run PATH --port 0``)
    with the served app wrapped so that every HTTP request's duration (first byte in to last
    byte out) and status are recorded; written to DURATIONS_JSON when the server exits."""
    import dsrepo.server.app as server_app

    out_path = argv[0]
    args = argv[argv.index("--") + 1 :]
    durations: list[float] = []
    statuses: dict[str, int] = {}
    orig = server_app.make_server

    class Timing:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            start = time.perf_counter()
            status = ["?"]

            async def sending(message: Any) -> None:
                if message["type"] == "http.response.start":
                    status[0] = str(message["status"])
                await send(message)

            try:
                await self.app(scope, receive, sending)
            finally:
                durations.append(time.perf_counter() - start)
                statuses[status[0]] = statuses.get(status[0], 0) + 1

    def make_server(app: Any, **kw: Any) -> Any:
        return orig(Timing(app), **kw)

    server_app.make_server = make_server

    def dump() -> None:
        with open(out_path, "w") as f:
            json.dump({"durations": durations, "statuses": statuses}, f)

    atexit.register(dump)
    sys.argv = ["dsrepo", *args]
    from dsrepo.cli.main import main

    main()


def _percentile(sorted_values: list[float], p: float) -> float:
    return sorted_values[int(p * (len(sorted_values) - 1))] if sorted_values else 0.0


def section_serving(work: Path, sizes: Sizes, rep: Report, keep: bool) -> None:
    d = work / "serve"
    rmtree(d)
    d.mkdir(parents=True)
    raw: dict[str, Any] = {}
    rep.raw["serve"] = raw
    rows: dict[str, Row] = {}
    try:
        _serve_steps(d, work, sizes, rep, raw, rows)
    finally:
        rep.rows.extend(rows[k] for k in ("G1", "G2", "G3") if k in rows)
        if not keep:
            rmtree(d)


class _Server:
    """``run.py _serve`` in a child process; ``url`` from the CLI's first line."""

    def __init__(self, d: Path, root: Path, env: dict[str, str]) -> None:
        self.stats = d / "server.json"
        serve_args = ["serve", "run", str(root), "--port", "0"]
        self.err = open(d / "server.err", "w+")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, str(RUN_PY), "_serve", str(self.stats), "--", *serve_args],
            stdout=subprocess.PIPE,
            stderr=self.err,
            env=env,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "http://" not in line:
            self.stop()
            raise RuntimeError(f"dsrepo serve did not start: {line!r} {self.stderr()[-2000:]}")
        self.url = line[line.index("http://") :].split()[0]

    def stderr(self) -> str:
        self.err.seek(0)
        return self.err.read()

    def stop(self) -> dict[str, Any]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
        self.err.close()
        try:
            return json.loads(self.stats.read_text())
        except (OSError, ValueError):
            return {}


def _serve_steps(
    d: Path, work: Path, sizes: Sizes, rep: Report, raw: dict[str, Any], rows: dict[str, Row]
) -> None:
    import dsrepo
    from dsrepo import Repository

    q = shlex.quote
    me = f"{q(sys.executable)} {q(str(RUN_PY))}"
    env = bench_env(work)
    env = {k: v for k, v in env.items() if k != "DSREPO_TOKEN"}
    env["DSREPO_CACHE_DIR"] = str(d / "cache")
    steps: dict[str, Any] = {}
    raw["steps"] = steps
    exe = dsrepo_exe()

    seed, served = d / "seed", d / "served"
    progress(f"G: seed repository ({fmt_mib(sizes.serve_seed)} in 8 files) pushed to a folder")
    (seed / "data").mkdir(parents=True)
    for i in range(8):
        (seed / "data" / f"part-{i}.bin").write_bytes(os.urandom(sizes.serve_seed // 8))
    spec = {
        "repo": str(seed),
        "init": True,
        "message": "seed",
        "remotes": [["origin", str(served), None]],
    }
    if not record_step(rep, steps, "setup", f"{me} _setup {q(json.dumps(spec))}", d, env).ok:
        return
    if not record_step(rep, steps, "seed-push", f"{q(exe)} push -q origin", seed, env).ok:
        return
    token = dsrepo.serve_tokens(served).create("write", "bench")[0]
    cenv = {**env, "DSREPO_TOKEN": token}

    progress("G: dsrepo serve on 127.0.0.1, port 0")
    server = _Server(d, served, env)
    rounds = sizes.serve_rounds
    push_bytes = max(sizes.serve_seed // 16, 1024)
    failures: list[str] = []
    clients: list[subprocess.Popen[str]] = []
    try:
        progress(f"G: {rounds} round(s) of {CLONES} concurrent clones beside {PUSHERS} pushers")
        start = time.perf_counter()
        args = [str(rounds), str(push_bytes)]
        pushers = [
            subprocess.Popen(
                [
                    "/bin/sh",
                    "-c",
                    PUSHER,
                    "pusher",
                    exe,
                    server.url,
                    str(d / f"p{i}"),
                    f"p{i}",
                    *args,
                ],
                env=cenv,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(PUSHERS)
        ]
        clients.extend(pushers)
        for rnd in range(rounds):
            clones = [
                subprocess.Popen(
                    [exe, "clone", "-q", server.url, str(d / f"c{rnd}-{i}")],
                    env=cenv,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for i in range(CLONES)
            ]
            clients.extend(clones)
            for i, p in enumerate(clones):
                _, err = p.communicate(timeout=600)
                if p.returncode != 0:
                    failures.append(f"clone c{rnd}-{i} exited {p.returncode}: {err[-500:]}")
                elif not all(
                    (d / f"c{rnd}-{i}" / "data" / f"part-{j}.bin").is_file() for j in range(8)
                ):
                    failures.append(f"clone c{rnd}-{i} lacks seed files")
                rmtree(d / f"c{rnd}-{i}")
        for i, p in enumerate(pushers):
            _, err = p.communicate(timeout=600)
            if p.returncode != 0:
                failures.append(f"pusher p{i} exited {p.returncode}: {err[-500:]}")
        elapsed = time.perf_counter() - start
    finally:
        for p in clients:  # only after a failure or a timeout are any still running
            if p.poll() is None:
                p.kill()
                p.wait()
        stats = server.stop()
    durations = sorted(stats.get("durations", []))
    raw.update(
        elapsed=elapsed,
        requests=len(durations),
        statuses=stats.get("statuses", {}),
        failures=failures,
        rounds=rounds,
        push_bytes=push_bytes,
    )
    if not durations:
        rep.error("G server", f"no request durations recorded; server stderr:\n{server.stderr()}")
        return

    progress("G: check the served store (clone from its folder, log, fsck; not timed)")
    with Repository.clone(str(served), d / "check") as check:
        messages = {e.commit.message.strip() for e in check.log()}
        fsck_ok = check.fsck().ok
    expected = {f"p{i} {r}" for i in range(PUSHERS) for r in range(rounds)}
    missing = sorted(expected - messages)
    raw.update(fsck_ok=fsck_ok, missing_commits=missing)

    n = len(durations)
    rps = n / elapsed
    label = f"{rounds} round(s) of {CLONES} clones beside {PUSHERS} pushers"
    rows["G1"] = Row(
        "G1",
        f"dsrepo serve: requests/s over {label} ({n} requests in {elapsed:.1f} s)",
        f"{rps:.1f} req/s",
        "-",
        "-",
        "- (info)",
        "info",
        {"requests": n, "seconds": elapsed, "rps": rps, "statuses": stats.get("statuses")},
    )
    p50, p95 = _percentile(durations, 0.5), _percentile(durations, 0.95)
    rows["G2"] = Row(
        "G2",
        f"dsrepo serve: p95 request latency, server side (median {p50 * 1000:.1f} ms, "
        f"max {durations[-1] * 1000:.1f} ms)",
        f"{p95 * 1000:.1f} ms",
        "-",
        "-",
        "- (info)",
        "info",
        {"p50": p50, "p95": p95, "max": durations[-1]},
    )
    lost = bool(failures or missing or not fsck_ok)
    rows["G3"] = Row(
        "G3",
        f"nothing lost: {len(expected) - len(missing)}/{len(expected)} pushed commits present, "
        f"fsck {'clean' if fsck_ok else 'FAILED'}, {len(failures)} failed client(s)",
        "no loss" if not lost else "LOSS",
        "-",
        "-",
        "all commits, fsck clean",
        verdict(not lost),
        {"missing": missing, "fsck_ok": fsck_ok, "failures": failures},
    )
    rep.notes.append(
        "G: the server is the `dsrepo serve` CLI in a child process, its app wrapped in a layer "
        "timing each request (request start to last byte sent); clients are `dsrepo` CLI "
        f"processes (pushers add {push_bytes} B a round) on the same CPUs as the server."
    )
