"""The benchmark's subprocess entry points, run as ``run.py _child|_cli|_setup ARGS``.

Each runs in a fresh interpreter so that its peak RSS is its own; none imports more than the step
it measures needs (the section modules start them; ``run.py`` dispatches to them)."""

from __future__ import annotations

import atexit
import functools
import json
import resource
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from common import BLOCK, peak_rss_kib, rss_now_kib


def child_main(argv: list[str]) -> None:
    """``_child hash FILE`` | ``_child store-new REPO FILE`` | ``_child store REPO FILE``.

    Prints one JSON line: wall and CPU seconds of the timed part only (after imports and opening
    the repository), bytes, content id, RSS before the timed part and peak RSS."""
    op = argv[0]
    if op == "hash":
        from blake3 import blake3

        path = argv[1]

        def timed() -> dict[str, Any]:
            h = blake3()
            total = 0
            buf = bytearray(BLOCK)
            view = memoryview(buf)
            with open(path, "rb", buffering=0) as f:
                while n := f.readinto(buf):
                    h.update(view[:n])
                    total += n
            return {"bytes": total, "content_id": h.hexdigest()}

        close: Callable[[], None] = lambda: None  # noqa: E731
    elif op in ("store-new", "store"):
        from dsrepo import Repository

        repo_dir, path = argv[1], argv[2]
        if op == "store-new":
            repo = Repository.init(repo_dir)
        else:
            repo = Repository.open(repo_dir, search_parents=False)

        def timed() -> dict[str, Any]:
            ref = repo.store.write_file(path)
            packs = repo.store.flush()
            return {
                "bytes": ref.size,
                "content_id": ref.content_id.hex(),
                "packs_flushed": len(packs),
                "objects_written": repo.store.stats.objects_written,
            }

        close = repo.close
    else:
        raise SystemExit(f"unknown child op {op!r}")
    startup = rss_now_kib()
    u0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    out = timed()
    seconds = time.perf_counter() - t0
    u1 = resource.getrusage(resource.RUSAGE_SELF)
    close()
    out.update(
        op=op,
        seconds=seconds,
        cpu_seconds=u1.ru_utime + u1.ru_stime - u0.ru_utime - u0.ru_stime,
        involuntary_switches=u1.ru_nivcsw - u0.ru_nivcsw,
        startup_rss_kib=startup,
        peak_rss_kib=peak_rss_kib(),
    )
    print(json.dumps(out))


def cli_main(argv: list[str]) -> None:
    """``_cli STATS_JSON [--count-http] -- ARGS...``: the dsrepo CLI run as ``dsrepo ARGS...``
    (the same ``dsrepo.cli.main.main`` the console script calls), recording into STATS_JSON at
    exit what its remote transfers cost: ``result.stats`` of every ``Repository.push`` and
    ``Repository.fetch`` (``Repository.clone`` fetches) as the Python API returns them, the
    request and byte totals of every ``CountingBackend`` (the counter in front of each remote),
    and with ``--count-http`` the HTTP requests botocore sent (including retries and the S3
    conditional-write probe, which bypass the counter). Nothing is imported that the CLI would
    not import itself (botocore only for S3)."""
    from dsrepo import Repository
    from dsrepo.remotes.counting import CountingBackend

    stats_path = argv[0]
    sep = argv.index("--")
    flags, args = argv[1:sep], argv[sep + 1 :]
    rec: dict[str, Any] = {"push": [], "fetch": [], "http_requests": None}
    counters: list[CountingBackend] = []
    lock = threading.Lock()

    orig_init = CountingBackend.__init__

    def init(self: CountingBackend, inner: Any) -> None:
        orig_init(self, inner)
        counters.append(self)

    orig_push, orig_fetch = Repository.push, Repository.fetch

    @functools.wraps(orig_push)
    def push(self: Repository, *a: Any, **k: Any) -> Any:
        r = orig_push(self, *a, **k)
        rec["push"].append(asdict(r.stats))
        return r

    @functools.wraps(orig_fetch)
    def fetch(self: Repository, *a: Any, **k: Any) -> Any:
        r = orig_fetch(self, *a, **k)  # also the fetch inside Repository.clone
        rec["fetch"].append(asdict(r.stats))
        return r

    CountingBackend.__init__ = init  # type: ignore[method-assign]
    Repository.push, Repository.fetch = push, fetch  # type: ignore[method-assign]
    if "--count-http" in flags:
        from botocore.endpoint import Endpoint

        orig_send = Endpoint._send
        rec["http_requests"] = 0

        def send(self: Any, request: Any) -> Any:
            with lock:
                rec["http_requests"] += 1
            return orig_send(self, request)

        Endpoint._send = send

    def dump() -> None:
        requests: dict[str, int] = {}
        for c in counters:
            for op, n in c.requests.items():
                requests[op] = requests.get(op, 0) + n
        rec["counter"] = {
            "requests": sum(requests.values()),
            "by_op": requests,
            "bytes_sent": sum(c.bytes_sent for c in counters),
            "bytes_received": sum(c.bytes_received for c in counters),
        }
        with open(stats_path, "w") as f:
            json.dump(rec, f)

    atexit.register(dump)
    sys.argv = ["dsrepo", *args]
    from dsrepo.cli.main import main

    main()


def setup_main(argv: list[str]) -> None:
    """``_setup JSON``: untimed preparation through the Python API, in one interpreter (four CLI
    start-ups would cost more than the smoke run's data): ``{"repo": DIR, "init": bool,
    "message": MSG, "remotes": [[NAME, URL, ENDPOINT_URL or null], ...]}`` initializes DIR if
    asked, stages everything and commits MSG, then adds the remotes."""
    from dsrepo import Repository

    spec = json.loads(argv[0])
    if spec.get("init"):
        Repository.init(spec["repo"]).close()
    with Repository.open(spec["repo"], search_parents=False) as repo:
        repo.add(".")
        info = repo.commit(spec["message"])
        for name, url, endpoint in spec.get("remotes", []):
            repo.remote_add(name, url, endpoint_url=endpoint)
    print(json.dumps({"commit": info.id.hex()}))
