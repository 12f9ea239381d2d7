#!/usr/bin/env python3
"""dsrepo benchmark: every timing beside its baseline, measured in the same run.

    .venv/bin/python benchmarks/run.py WORKDIR [--smoke] [--only store,porcelain,git,remotes] [--keep]

A) storage core: ``ObjectStore.write_file`` + ``flush`` throughput beside plain read + BLAKE3,
   store growth for 1 MiB inserted in the middle of a large file, peak memory of each store.
B) porcelain: the real ``dsrepo`` CLI on the shared peer workload (10,000 small files + two
   128 MiB files) beside ``cp -r``: first commit, no-op status, commit of a change, store growth,
   checkout of the first version.
C) reference (only when on PATH): ``git add -A && git commit`` of the same data.
D) remotes: on the same workload, ``dsrepo push`` / ``dsrepo clone`` with a directory remote beside
   ``cp -r``, the bytes and requests of pushing the change, and the same on S3 (moto on loopback).

Prints one table (step | dsrepo | baseline | ratio | target | ok?) and a peak-memory table, and
writes WORKDIR/results.json. A MISS is information: the exit status is 0 unless a step crashed.
See benchmarks/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import random
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
SHARED_WORKLOAD = REPO_ROOT.parent / "shared" / "bench" / "peer_bench.py"
MiB = 1 << 20
BLOCK = 8 * MiB
SECTIONS = ("store", "porcelain", "git", "remotes")


@dataclass(frozen=True)
class Sizes:
    big_file: int  # A1: throughput file
    edit_file: int  # A2: file edited in the middle
    insert: int  # A2: bytes inserted
    n_small: int  # B: small files of the peer workload
    big_mib: int  # B: MiB of each of its two large files
    status_runs: int  # B: no-op status is run this many times (median reported)


FULL = Sizes(1024 * MiB, 256 * MiB, MiB, 10_000, 128, 3)
SMOKE = Sizes(32 * MiB, 16 * MiB, MiB, 300, 4, 1)


# ---------------------------------------------------------------- report rows


@dataclass
class Row:
    id: str
    step: str
    value: str = "-"
    baseline: str = "-"
    ratio: str = "-"
    target: str = "-"
    ok: str = "info"  # OK | MISS | info | n/a | ERROR
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class MemRow:
    id: str
    step: str
    peak_kib: int | None
    above_startup_kib: int | None = None
    data_bytes: int | None = None


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    memory: list[MemRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def error(self, where: str, text: str) -> None:
        msg = f"{where}: {text.rstrip()}"
        self.errors.append(msg)
        print(f"ERROR in {msg}", file=sys.stderr, flush=True)


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISS"


def fmt_s(seconds: float) -> str:
    return f"{seconds:.3f} s"


def fmt_mib(nbytes: float) -> str:
    return f"{nbytes / MiB:.2f} MiB"


def fmt_kib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f} MiB"


_T0 = time.perf_counter()


def progress(text: str) -> None:
    print(f"  [{time.perf_counter() - _T0:6.1f} s] {text}", flush=True)


# ---------------------------------------------------------------- helpers


def load_workload() -> tuple[Callable[..., None], Callable[..., None], str]:
    """``gen`` and ``mutate`` from the shared peer benchmark, else the local copy."""
    if SHARED_WORKLOAD.is_file():
        spec = importlib.util.spec_from_file_location("peer_bench", SHARED_WORKLOAD)
        if spec is not None and spec.loader is not None:
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            return mod.gen, mod.mutate, str(SHARED_WORKLOAD)
    sys.path.insert(0, str(HERE))
    import workload

    return workload.gen, workload.mutate, str(HERE / "workload.py")


def sync() -> None:
    subprocess.run(["sync"], check=False)


def du(path: Path) -> int:
    total = 0
    for dp, _, fs in os.walk(path):
        for f in fs:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dp, f)).st_size
    return total


def count_files(path: Path) -> int:
    return sum(len(fs) for _, _, fs in os.walk(path))


def pack_files(repo: Path) -> dict[str, int]:
    packs = repo / ".dsrepo" / "packs"
    return {p.name: p.stat().st_size for p in packs.iterdir() if p.is_file()}


def write_random(path: Path, size: int, seed: int) -> None:
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(BLOCK, left)
            f.write(rnd.randbytes(n))
            left -= n


def write_with_insert(src: Path, dst: Path, insert: int, seed: int) -> None:
    """A copy of ``src`` with ``insert`` new random bytes in the middle."""
    size = src.stat().st_size
    mid = size // 2
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        left = mid
        while left:
            block = fi.read(min(BLOCK, left))
            fo.write(block)
            left -= len(block)
        fo.write(random.Random(seed).randbytes(insert))
        shutil.copyfileobj(fi, fo, BLOCK)


def warm(*paths: Path) -> None:
    """Read files once so baseline and store both start from a warm page cache."""
    buf = bytearray(BLOCK)
    for root in paths:
        files = (
            [root] if root.is_file() else [Path(dp) / f for dp, _, fs in os.walk(root) for f in fs]
        )
        for p in files:
            with open(p, "rb", buffering=0) as f:
                while f.readinto(buf):
                    pass


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def same_tree(a: Path, b: Path) -> str | None:
    """None when both trees hold the same files with the same bytes, else the first difference."""

    def files(root: Path) -> set[str]:
        return {
            os.path.relpath(os.path.join(dp, f), root)
            for dp, _, fs in os.walk(root)
            for f in fs
            if ".dsrepo" not in Path(dp).relative_to(root).parts
        }

    fa, fb = files(a), files(b)
    if fa != fb:
        return f"file sets differ: {sorted(fa ^ fb)[:5]}"
    for rel in sorted(fa):
        pa, pb = a / rel, b / rel
        if pa.stat().st_size != pb.stat().st_size:
            return f"{rel}: sizes differ"
        with open(pa, "rb") as x, open(pb, "rb") as y:
            while True:
                ba, bb = x.read(BLOCK), y.read(BLOCK)
                if ba != bb:
                    return f"{rel}: contents differ"
                if not ba:
                    break
    return None


@dataclass
class Step:
    cmd: str
    seconds: float
    peak_kib: int
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


TIME = "/usr/bin/time"
_WRAPPER = (
    "import resource, subprocess, sys\n"
    "r = subprocess.run(['/bin/sh', '-c', sys.argv[1]])\n"
    "with open(sys.argv[2], 'w') as f:\n"
    "    print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=f)\n"
    "sys.exit(r.returncode)\n"
)


def run_step(cmd: str, cwd: Path, env: dict[str, str]) -> Step:
    """Run ``cmd`` under /bin/sh: wall time and peak RSS (KiB) of its process tree.

    The peak comes from ``/usr/bin/time -f %M`` (a small C program, so the forked shell does not
    inherit a large parent RSS into its maximum), else from a ``python -S`` wrapper reporting its
    children's ru_maxrss (whose own ~10 MiB then is a floor on every reading)."""
    with tempfile.TemporaryDirectory() as tmp:
        rss_file = os.path.join(tmp, "rss")
        if os.access(TIME, os.X_OK):
            argv = [TIME, "-q", "-f", "%M", "-o", rss_file, "/bin/sh", "-c", cmd]
        else:
            argv = [sys.executable, "-S", "-c", _WRAPPER, cmd, rss_file]
        out, err = Path(tmp, "out"), Path(tmp, "err")
        with open(out, "wb") as fo, open(err, "wb") as fe:
            t0 = time.perf_counter()
            rc = subprocess.run(argv, cwd=cwd, env=env, stdout=fo, stderr=fe).returncode
            seconds = time.perf_counter() - t0
        try:
            peak = int(Path(rss_file).read_text().split()[-1])
        except (OSError, ValueError, IndexError):
            peak = 0
        return Step(
            cmd,
            seconds,
            peak,
            rc,
            out.read_text(errors="replace"),
            err.read_text(errors="replace"),
        )


def run_child(op: str, *args: str) -> dict[str, Any]:
    """One store step in a fresh interpreter (so its peak RSS is its own); see child_main."""
    r = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "_child", op, *args],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise RuntimeError(f"child {op} {' '.join(args)} failed (exit {r.returncode}):\n{r.stderr}")
    result: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    return result


def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_now_kib() -> int:
    now = _proc_status_kib("VmRSS")
    return now if now is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_rss_kib() -> int:
    """This process's peak RSS since exec. VmHWM belongs to the exec'd image; ru_maxrss would also
    count the benchmark parent's RSS inherited through fork."""
    hwm = _proc_status_kib("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


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
    exit what its remote transfers cost: ``result.stats`` of every ``push`` and ``fetch`` (``clone``
    fetches) as the Python API returns them, the request and byte totals of every
    ``CountingBackend`` (the counter in front of each remote), and with ``--count-http`` the HTTP
    requests botocore sent (including retries and the S3 conditional-write probe, which bypass the
    counter). Nothing is imported that the CLI would not import itself (botocore only for S3)."""
    import atexit
    import threading

    from dsrepo.dvcs import sync as dsync
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

    orig_push, orig_fetch = dsync.push, dsync.fetch

    def push(*a: Any, **k: Any) -> Any:
        r = orig_push(*a, **k)
        rec["push"].append(asdict(r.stats))
        return r

    def fetch(*a: Any, **k: Any) -> Any:
        r = orig_fetch(*a, **k)
        rec["fetch"].append(asdict(r.stats))
        return r

    CountingBackend.__init__ = init  # type: ignore[method-assign]
    dsync.push, dsync.fetch = push, fetch  # type: ignore[assignment]
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
    from dsrepo.dvcs.sync import add_remote

    spec = json.loads(argv[0])
    if spec.get("init"):
        Repository.init(spec["repo"]).close()
    with Repository.open(spec["repo"], search_parents=False) as repo:
        repo.add(".")
        info = repo.commit(spec["message"])
        for name, url, endpoint in spec.get("remotes", []):
            add_remote(repo, name, url, endpoint_url=endpoint)
    print(json.dumps({"commit": info.id.hex()}))


# ---------------------------------------------------------------- A) storage core


def section_store(work: Path, sizes: Sizes, rep: Report, keep: bool) -> None:
    d = work / "store"
    rmtree(d)
    d.mkdir(parents=True)
    raw: dict[str, Any] = {}
    rep.raw["store"] = raw

    # A1: throughput beside read + BLAKE3
    big = d / "big.bin"
    progress(f"A1: generating {fmt_mib(sizes.big_file)} random file")
    write_random(big, sizes.big_file, seed=1)
    sync()
    warm(big)
    progress("A1: read + BLAKE3 baseline")
    base = run_child("hash", str(big))
    progress("A1: ObjectStore.write_file + flush into a fresh repository")
    st = run_child("store-new", str(d / "repo-big"), str(big))
    raw["a1_baseline"], raw["a1_store"] = base, st
    mibps_store = st["bytes"] / MiB / st["seconds"]
    mibps_base = base["bytes"] / MiB / base["seconds"]
    ratio = mibps_store / mibps_base
    rep.notes.append(
        f"A1 wall vs CPU (user+sys, all threads): store {st['seconds']:.2f} s / "
        f"{st['cpu_seconds']:.2f} s, baseline {base['seconds']:.2f} s / "
        f"{base['cpu_seconds']:.2f} s; involuntary context switches {st['involuntary_switches']} "
        f"/ {base['involuntary_switches']} (many = CPU contention from other processes)"
    )
    if st["content_id"] != base["content_id"]:
        rep.error("A1", f"content id {st['content_id']} != BLAKE3 of the file {base['content_id']}")
    rep.rows.append(
        Row(
            "A1",
            f"store {fmt_mib(sizes.big_file)} file: throughput (MiB/s)",
            f"{mibps_store:.1f}",
            f"{mibps_base:.1f}",
            f"{ratio:.2f}",
            ">= 0.5",
            verdict(ratio >= 0.5),
            {"store_mib_s": mibps_store, "baseline_mib_s": mibps_base, "ratio": ratio},
        )
    )
    rep.memory.append(
        MemRow(
            "M1",
            "A1 read + BLAKE3 (baseline)",
            base["peak_rss_kib"],
            base["peak_rss_kib"] - base["startup_rss_kib"],
            sizes.big_file,
        )
    )
    rep.memory.append(
        MemRow(
            "M2",
            f"A1 store {fmt_mib(sizes.big_file)}",
            st["peak_rss_kib"],
            st["peak_rss_kib"] - st["startup_rss_kib"],
            sizes.big_file,
        )
    )
    if not keep:
        rmtree(d / "repo-big")
        big.unlink()

    # A2: 1 MiB inserted in the middle
    v1, v2 = d / "edit-v1.bin", d / "edit-v2.bin"
    progress(f"A2: generating {fmt_mib(sizes.edit_file)} file and the edited copy")
    write_random(v1, sizes.edit_file, seed=2)
    write_with_insert(v1, v2, sizes.insert, seed=3)
    sync()
    warm(v1, v2)
    repo = d / "repo-edit"
    progress("A2: storing version 1")
    s1 = run_child("store-new", str(repo), str(v1))
    before = pack_files(repo)
    progress("A2: storing version 2 (1 MiB inserted in the middle)")
    s2 = run_child("store", str(repo), str(v2))
    after = pack_files(repo)
    added = sum(size for name, size in after.items() if name not in before)
    raw["a2_v1"], raw["a2_v2"], raw["a2_added_bytes"] = s1, s2, added
    growth = added / sizes.insert
    rep.rows.append(
        Row(
            "A2",
            f"insert 1 MiB mid-{fmt_mib(sizes.edit_file)} file: pack growth / 1 MiB",
            fmt_mib(added),
            fmt_mib(sizes.insert),
            f"{growth:.2f}",
            "<= 1.5",
            verdict(growth <= 1.5),
            {"added_bytes": added, "inserted_bytes": sizes.insert, "ratio": growth},
        )
    )
    rep.memory.append(
        MemRow(
            "M3",
            f"A2 store {fmt_mib(sizes.edit_file)} v1",
            s1["peak_rss_kib"],
            s1["peak_rss_kib"] - s1["startup_rss_kib"],
            sizes.edit_file,
        )
    )
    rep.memory.append(
        MemRow(
            "M4",
            "A2 store v2 (+1 MiB)",
            s2["peak_rss_kib"],
            s2["peak_rss_kib"] - s2["startup_rss_kib"],
            sizes.edit_file + sizes.insert,
        )
    )

    # A3: peak memory bounded, not proportional to the file size
    big_above = st["peak_rss_kib"] - st["startup_rss_kib"]
    small_above = s1["peak_rss_kib"] - s1["startup_rss_kib"]
    mem_ratio = big_above / max(small_above, 1)
    factor = sizes.big_file / sizes.edit_file
    rep.rows.append(
        Row(
            "A3",
            f"store peak RSS above start-up: {fmt_mib(sizes.big_file)} vs "
            f"{fmt_mib(sizes.edit_file)} file ({factor:.0f}x larger)",
            fmt_kib(big_above),
            fmt_kib(small_above),
            f"{mem_ratio:.2f}",
            "<= 1.5 (bounded)",
            verdict(mem_ratio <= 1.5),
            {
                "big_above_kib": big_above,
                "small_above_kib": small_above,
                "ratio": mem_ratio,
                "big_peak_over_size": big_above * 1024 / sizes.big_file,
            },
        )
    )
    if not keep:
        rmtree(d)


# ---------------------------------------------------------------- B) porcelain and C) git


def bench_env(work: Path) -> dict[str, str]:
    return dict(
        os.environ,
        DSREPO_AUTHOR_NAME="Bench",
        DSREPO_AUTHOR_EMAIL="bench@example.com",
        DSREPO_CONFIG_GLOBAL=str(work / "global-config"),
        GIT_AUTHOR_NAME="Bench",
        GIT_AUTHOR_EMAIL="bench@example.com",
        GIT_COMMITTER_NAME="Bench",
        GIT_COMMITTER_EMAIL="bench@example.com",
        LC_ALL="C",
    )


def dsrepo_exe() -> str:
    explicit = os.environ.get("DSREPO")
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "dsrepo"
    if beside.exists():
        return str(beside)
    found = shutil.which("dsrepo")
    if found is None:
        raise SystemExit("dsrepo executable not found (set DSREPO=/path/to/dsrepo)")
    return found


def median(xs: list[float]) -> float:
    s = sorted(xs)
    return s[len(s) // 2]


def section_porcelain(
    work: Path, sizes: Sizes, rep: Report, keep: bool, sections: set[str]
) -> None:
    d = work / "porcelain"
    rmtree(d)
    d.mkdir(parents=True)
    env = bench_env(work)
    ds = shlex.quote(dsrepo_exe())
    gen, mutate, source = load_workload()
    raw: dict[str, Any] = {"workload_source": source}
    rep.raw["porcelain"] = raw
    rep.notes.append(f"workload: gen()/mutate() from {source}")

    base = d / "base"
    progress(f"B: generating {sizes.n_small} small files + two {sizes.big_mib} MiB files")
    gen(str(base), sizes.n_small, sizes.big_mib)
    data_bytes, n_files = du(base), count_files(base)
    raw["data_bytes"], raw["files"] = data_bytes, n_files
    sync()
    warm(base)

    def step(where: str, cmd: str, cwd: Path) -> Step:
        sync()
        s = run_step(cmd, cwd, env)
        raw.setdefault("steps", {})[where] = {
            "cmd": cmd,
            "seconds": s.seconds,
            "peak_kib": s.peak_kib,
            "rc": s.returncode,
        }
        if not s.ok:
            rep.error(where, f"`{cmd}` exited {s.returncode}:\n{s.stderr[-3000:]}")
        return s

    progress("B: cp -r baseline")
    cp = step("cp", "cp -r base cpcopy && sync", d)
    rep.memory.append(MemRow("M5", "B cp -r (baseline)", cp.peak_kib, None, data_bytes))
    if not keep:
        rmtree(d / "cpcopy")

    sel = sections & {"porcelain", "git"}
    ds_v1: Step | None = None
    if "porcelain" in sel:
        wk = d / "work"
        shutil.copytree(base, wk)
        from dsrepo import Repository  # init is not timed: the Python API saves a start-up

        Repository.init(wk).close()
        progress("B1: dsrepo add . && dsrepo commit -m v1")
        ds_v1 = step("commit1", f"{ds} add . && {ds} commit -m v1 && sync", wk)
        store_v1 = du(wk / ".dsrepo" / "packs")
        raw["store_after_v1"] = store_v1
        r1 = ds_v1.seconds / cp.seconds
        rep.rows.append(
            Row(
                "B1",
                "first commit: add . && commit -m v1 (s) vs cp -r",
                fmt_s(ds_v1.seconds),
                fmt_s(cp.seconds),
                f"{r1:.2f}",
                "<= 1.5x",
                verdict(r1 <= 1.5) if ds_v1.ok else "ERROR",
                {
                    "seconds": ds_v1.seconds,
                    "cp_seconds": cp.seconds,
                    "ratio": r1,
                    "store_bytes": store_v1,
                },
            )
        )
        rep.memory.append(MemRow("M6", "B1 dsrepo add+commit v1", ds_v1.peak_kib, None, data_bytes))

        progress("B2: no-op dsrepo status")
        startups = [step("version", f"{ds} --version", wk) for _ in range(sizes.status_runs)]
        statuses = [step("status", f"{ds} status", wk) for _ in range(sizes.status_runs)]
        st_s = median([s.seconds for s in statuses])
        up_s = median([s.seconds for s in startups])
        raw["status_runs"] = [s.seconds for s in statuses]
        raw["startup_runs"] = [s.seconds for s in startups]
        clean = all("nothing to commit" in s.stdout for s in statuses)
        if not clean:
            rep.notes.append(f"B2: no-op status did not report a clean tree:\n{statuses[0].stdout}")
        rep.rows.append(
            Row(
                "B2",
                f"no-op status, {n_files} files (s) vs CLI start-up (--version)",
                fmt_s(st_s),
                fmt_s(up_s),
                "-",
                "<= 0.15 s",
                verdict(st_s <= 0.15) if all(s.ok for s in statuses) else "ERROR",
                {"seconds": st_s, "startup_seconds": up_s, "clean": clean},
            )
        )
        rep.memory.append(
            MemRow("M7", "B2 dsrepo status", max(s.peak_kib for s in statuses), None, data_bytes)
        )
        startup_kib = min(s.peak_kib for s in startups)
        rep.memory.append(MemRow("M8", "B dsrepo --version (CLI start-up)", startup_kib))

        progress("B3: mutate() and dsrepo add . && dsrepo commit -m v2")
        mutate(str(wk))
        sync()
        ds_v2 = step("commit2", f"{ds} add . && {ds} commit -m v2 && sync", wk)
        rep.rows.append(
            Row(
                "B3",
                "commit after mutate(): add . && commit -m v2 (s)",
                fmt_s(ds_v2.seconds),
                "-",
                "-",
                "<= 0.5 s",
                verdict(ds_v2.seconds <= 0.5) if ds_v2.ok else "ERROR",
                {"seconds": ds_v2.seconds},
            )
        )
        rep.memory.append(MemRow("M9", "B3 dsrepo add+commit v2", ds_v2.peak_kib, None, data_bytes))
        growth = du(wk / ".dsrepo" / "packs") - store_v1
        raw["store_growth_v2"] = growth
        rep.rows.append(
            Row(
                "B4",
                "store growth for the change (MB)",
                f"{growth / 1e6:.2f} MB",
                "-",
                "-",
                "<= 10 MB",
                verdict(growth <= 10e6) if ds_v2.ok else "ERROR",
                {"bytes": growth},
            )
        )

        progress("B5: dsrepo checkout HEAD~1 --into DIR")
        into = d / "checkout-v1"
        co = step("checkout", f"{ds} checkout HEAD~1 --into {shlex.quote(str(into))} && sync", wk)
        r5 = co.seconds / cp.seconds
        diff = same_tree(base, into) if co.ok else "checkout failed"
        raw["checkout_matches_v1"] = diff is None
        if co.ok and diff is not None:
            rep.error("B5", f"checkout of v1 does not match the v1 data: {diff}")
        rep.rows.append(
            Row(
                "B5",
                "checkout HEAD~1 --into DIR (s) vs cp -r",
                fmt_s(co.seconds),
                fmt_s(cp.seconds),
                f"{r5:.2f}",
                "<= 1.5x",
                verdict(r5 <= 1.5) if co.ok and diff is None else "ERROR",
                {
                    "seconds": co.seconds,
                    "cp_seconds": cp.seconds,
                    "ratio": r5,
                    "verified": diff is None,
                },
            )
        )
        rep.memory.append(MemRow("M10", "B5 dsrepo checkout --into", co.peak_kib, None, data_bytes))
        for m in rep.memory:
            if m.id in ("M6", "M7", "M9", "M10") and m.peak_kib is not None:
                m.above_startup_kib = m.peak_kib - startup_kib
        if not keep:
            rmtree(wk)
            rmtree(into)

    if "git" in sel:
        git = shutil.which("git")
        if git is None:
            rep.rows.append(
                Row("C1", "first commit: dsrepo vs git add -A && commit", ok="n/a", baseline="n/a")
            )
            rep.memory.append(MemRow("M11", "C1 git add+commit v1 (n/a)", None))
        else:
            gw = d / "gitwork"
            shutil.copytree(base, gw)
            step("git-init", "git init -q . && git config core.bigFileThreshold 2g", gw)
            progress("C1: git add -A && git commit (reference)")
            g = step("git-commit1", "git add -A && git commit -qm v1 && sync", gw)
            mine = ds_v1.seconds if ds_v1 is not None and ds_v1.ok else None
            rep.rows.append(
                Row(
                    "C1",
                    "first commit: dsrepo vs git add -A && commit (s)",
                    fmt_s(mine) if mine is not None else "n/a",
                    fmt_s(g.seconds),
                    f"{mine / g.seconds:.2f}" if mine is not None else "-",
                    "- (reference)",
                    "info" if g.ok else "ERROR",
                    {
                        "git_seconds": g.seconds,
                        "dsrepo_seconds": mine,
                        "git_store_bytes": du(gw / ".git"),
                    },
                )
            )
            rep.memory.append(MemRow("M11", "C1 git add+commit v1", g.peak_kib, None, data_bytes))
            if not keep:
                rmtree(gw)
    if not keep:
        rmtree(d)


# ---------------------------------------------------------------- D) remotes


def file_digests(root: Path) -> dict[str, tuple[int, str]]:
    """{relative path: (size, BLAKE3)} of the working files under ``root`` (not ``.dsrepo``)."""
    from blake3 import blake3

    out: dict[str, tuple[int, str]] = {}
    for dp, dirs, fs in os.walk(root):
        if Path(dp) == root and ".dsrepo" in dirs:
            dirs.remove(".dsrepo")
        for f in fs:
            p = os.path.join(dp, f)
            h = blake3()
            with open(p, "rb") as fh:
                while block := fh.read(BLOCK):
                    h.update(block)
            out[os.path.relpath(p, root)] = (os.path.getsize(p), h.hexdigest())
    return out


def changed_bytes(
    before: dict[str, tuple[int, str]], after: dict[str, tuple[int, str]]
) -> dict[str, int]:
    """The bytes a change really consists of: new files and rewritten files count whole; a
    changed file that was larger than 1 MiB (the workload's large files, into which ``mutate``
    inserts 1 MiB) counts only by how much it grew; deleted files count nothing."""
    out = {"added_files": 0, "added_bytes": 0, "rewritten_files": 0, "rewritten_bytes": 0}
    out.update(inserted_files=0, inserted_bytes=0, deleted_files=len(before.keys() - after.keys()))
    for rel, (size, digest) in after.items():
        old = before.get(rel)
        if old is None:
            out["added_files"] += 1
            out["added_bytes"] += size
        elif old[1] != digest and old[0] > MiB:
            out["inserted_files"] += 1
            out["inserted_bytes"] += max(size - old[0], 0)
        elif old[1] != digest:
            out["rewritten_files"] += 1
            out["rewritten_bytes"] += size
    out["total"] = out["added_bytes"] + out["rewritten_bytes"] + out["inserted_bytes"]
    return out


def _stats(rec: dict[str, Any], kind: str) -> dict[str, Any]:
    """The API's TransferStats of the (single) push or fetch a wrapped CLI step ran."""
    found: list[dict[str, Any]] = rec.get(kind) or []
    return found[-1] if found else {}


def start_moto() -> tuple[threading.Thread, dict[str, Any]]:
    """Start a moto S3 server and create a bucket in a background thread (it takes seconds, which
    then overlap the untimed data generation). The thread fills ``server``/``bucket`` or ``error``."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            from dsrepo.remotes.s3_testserver import MotoServer

            box["server"] = server = MotoServer().start()
            box["bucket"] = server.create_bucket()
        except Exception:
            box["error"] = traceback.format_exc()

    t = threading.Thread(target=run, name="bench-moto", daemon=True)
    t.start()
    return t, box


def section_remotes(work: Path, sizes: Sizes, rep: Report, keep: bool) -> None:
    d = work / "remotes"
    rmtree(d)
    d.mkdir(parents=True)
    raw: dict[str, Any] = {}
    rep.raw["remotes"] = raw
    rows: dict[str, Row] = {}
    mem: dict[str, MemRow] = {}
    moto: tuple[threading.Thread, dict[str, Any]] | None = None
    if importlib.util.find_spec("moto") is None:
        for n in range(5, 11):
            rows[f"D{n}"] = Row(f"D{n}", "S3 step: moto is not installed", ok="n/a", baseline="n/a")
    else:
        moto = start_moto()
    try:
        _remotes_steps(d, work, sizes, rep, moto, raw, rows, mem)
    finally:
        if moto is not None:
            moto[0].join()
            server = moto[1].get("server")
            if server is not None:
                server.stop()
        rep.rows.extend(rows[f"D{i}"] for i in range(1, 11) if f"D{i}" in rows)
        rep.memory.extend(mem[f"M{i}"] for i in range(12, 19) if f"M{i}" in mem)
        if not keep:
            rmtree(d)


def _remotes_steps(
    d: Path,
    work: Path,
    sizes: Sizes,
    rep: Report,
    moto: tuple[threading.Thread, dict[str, Any]] | None,
    raw: dict[str, Any],
    rows: dict[str, Row],
    mem: dict[str, MemRow],
) -> None:
    rep.notes.append(
        "D runs the dsrepo CLI's main() inside `run.py _cli`, which records the push/fetch "
        "TransferStats the Python API returns (requests and bytes as dsrepo's CountingBackend "
        "counts them); S3 rows also give the HTTP requests botocore sent (retries and the "
        "conditional-write probe included). S3 is moto, a Python server on loopback sharing "
        "the CPUs: its seconds are our client plus moto, not S3; its counts are what matters."
    )
    env = bench_env(work)
    q = shlex.quote
    me = f"{q(sys.executable)} {q(str(Path(__file__).resolve()))}"
    gen, mutate, source = load_workload()
    raw["workload_source"] = source
    steps: dict[str, Any] = {}
    raw["steps"] = steps

    def step(where: str, cmd: str, cwd: Path, step_env: dict[str, str] | None = None) -> Step:
        sync()
        s = run_step(cmd, cwd, step_env or env)
        steps[where] = {
            "cmd": cmd,
            "seconds": s.seconds,
            "peak_kib": s.peak_kib,
            "rc": s.returncode,
        }
        if not s.ok:
            rep.error(f"D {where}", f"`{cmd}` exited {s.returncode}:\n{s.stderr[-3000:]}")
        return s

    def cli(
        where: str, args: str, cwd: Path, step_env: dict[str, str] | None = None
    ) -> tuple[Step, dict[str, Any]]:
        """A timed ``dsrepo ARGS && sync`` through the recording wrapper (``_cli``)."""
        stats_file = d / f"stats-{where}.json"
        flag = " --count-http" if step_env is not None else ""
        s = step(where, f"{me} _cli {q(str(stats_file))}{flag} -- {args} && sync", cwd, step_env)
        rec: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            rec = json.loads(stats_file.read_text())
        steps[where]["stats"] = rec
        return s, rec

    def setup(where: str, spec: dict[str, Any]) -> bool:
        return step(where, f"{me} _setup {q(json.dumps(spec))}", d).ok

    base = d / "base"
    progress(f"D: generating {sizes.n_small} small files + two {sizes.big_mib} MiB files")
    gen(str(base), sizes.n_small, sizes.big_mib)
    data_bytes = du(base)
    raw["data_bytes"], raw["files"] = data_bytes, count_files(base)
    wk = d / "work"
    shutil.copytree(base, wk)
    remote = d / "remote-dir"
    remotes: list[list[str | None]] = [["origin", str(remote), None]]

    # the S3 server (started in the background) and the environment of every S3 step
    server: Any = None
    s3env: dict[str, str] = {}
    url = ""
    if moto is not None:
        moto[0].join()
        if "error" in moto[1]:
            rep.error("D moto server", moto[1]["error"])
        else:
            from dsrepo.remotes.s3_testserver import TEST_CREDENTIALS

            server = moto[1]["server"]
            url = f"s3://{moto[1]['bucket']}/ds"
            remotes.append(["s3", url, server.endpoint_url])
            raw["s3"] = {"url": url, "endpoint_url": server.endpoint_url}
            s3env = {
                **env,
                **TEST_CREDENTIALS,
                "AWS_CONFIG_FILE": str(d / "no-aws-config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(d / "no-aws-credentials"),
                "AWS_EC2_METADATA_DISABLED": "true",
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
            }

    progress("D: init, add ., commit v1, remote add (Python API, not timed)")
    if not setup("setup-v1", {"repo": str(wk), "init": True, "message": "v1", "remotes": remotes}):
        return
    raw["store_after_v1"] = du(wk / ".dsrepo" / "packs")
    startup = step("version", f"{me} _cli {q(str(d / 'stats-version.json'))} -- --version", wk)
    mem["M18"] = MemRow("M18", "D CLI start-up (wrapped --version)", startup.peak_kib)

    def memrow(mid: str, text: str, peak_kib: int) -> None:
        mem[mid] = MemRow(mid, text, peak_kib, peak_kib - startup.peak_kib, data_bytes)

    # D1: push v1 to a directory remote, beside cp -r of the store
    warm(wk / ".dsrepo" / "packs")
    progress("D1: cp -r .dsrepo/packs (baseline)")
    cp = step("cp-packs", f"cp -r .dsrepo/packs {q(str(d / 'cp-packs'))} && sync", wk)
    rmtree(d / "cp-packs")
    progress("D1: dsrepo push origin (directory remote)")
    p1, r1 = cli("push1-dir", "push origin", wk)
    st = _stats(r1, "push")
    raw["remote_dir_bytes_v1"] = du(remote) if p1.ok else None
    ratio = p1.seconds / cp.seconds
    rows["D1"] = Row(
        "D1",
        "push v1 to a directory remote (s) vs cp -r .dsrepo/packs",
        fmt_s(p1.seconds),
        fmt_s(cp.seconds),
        f"{ratio:.2f}",
        "<= 1.5x",
        verdict(ratio <= 1.5) if p1.ok and cp.ok and st else "ERROR",
        {"seconds": p1.seconds, "cp_seconds": cp.seconds, "ratio": ratio, "stats": st},
    )
    memrow("M12", "D1 dsrepo push v1 -> directory", p1.peak_kib)
    if st:
        rep.notes.append(
            f"D1 push v1 to a directory: {st['objects']} objects in {st['packs']} packs, "
            f"{st['requests']} requests, {st['bytes_sent']} bytes sent "
            f"({st['bytes_sent'] / data_bytes:.3f} x the data)"
        )
    if not p1.ok:
        return

    # D2: clone from the directory remote, beside cp -r of the remote
    warm(remote)
    progress("D2: cp -r of the remote directory (baseline)")
    cp2 = step("cp-remote", f"cp -r {q(str(remote))} {q(str(d / 'cp-remote'))} && sync", d)
    rmtree(d / "cp-remote")
    progress("D2: dsrepo clone DIR CLONE")
    clone_dir = d / "clone-dir"
    c1, rc1 = cli("clone-dir", f"clone {q(str(remote))} {q(str(clone_dir))}", d)
    diff = same_tree(base, clone_dir) if c1.ok else "clone failed"
    if c1.ok and diff is not None:
        rep.error("D2", f"the clone does not match the v1 data: {diff}")
    fst = _stats(rc1, "fetch")
    ratio = c1.seconds / cp2.seconds
    rows["D2"] = Row(
        "D2",
        "clone from the directory remote (s) vs cp -r of the remote"
        + (" (verified)" if diff is None else ""),
        fmt_s(c1.seconds),
        fmt_s(cp2.seconds),
        f"{ratio:.2f}",
        "<= 1.5x",
        verdict(ratio <= 1.5) if c1.ok and cp2.ok and diff is None else "ERROR",
        {
            "seconds": c1.seconds,
            "cp_seconds": cp2.seconds,
            "ratio": ratio,
            "verified": diff is None,
        },
    )
    rows["D2"].raw["stats"] = fst
    memrow("M13", "D2 dsrepo clone <- directory", c1.peak_kib)
    if diff is None:
        rep.notes.append(
            f"D2/D7: a clone is verified when its {raw['files']} files equal the v1 data byte for "
            f"byte ({data_bytes} bytes; compared after the timed step)"
            + (
                f"; D2 fetched {fst['objects']} objects, {fst['requests']} requests, "
                f"{fst['bytes_received']} bytes received"
                if fst
                else ""
            )
        )
    rmtree(clone_dir)

    # D5-D8: push v1 to S3 and clone it back (moto on loopback)
    if server is not None:
        progress("D5: dsrepo push s3 (v1, moto)")
        p3, r3 = cli("push1-s3", "push s3", wk, s3env)
        s3_rows(rows, "D5", "push v1 to S3", p3, p1, _stats(r3, "push"), r3, data_bytes)
        memrow("M15", "D5 dsrepo push v1 -> S3 (moto)", p3.peak_kib)
        if p3.ok:
            progress("D7: dsrepo clone s3://... (v1, moto)")
            clone_s3 = d / "clone-s3"
            ep = q(server.endpoint_url)
            c3, rc3 = cli(
                "clone-s3", f"clone {q(url)} {q(str(clone_s3))} --endpoint-url {ep}", d, s3env
            )
            diff3 = same_tree(base, clone_s3) if c3.ok else "clone failed"
            if c3.ok and diff3 is not None:
                rep.error("D7", f"the clone from S3 does not match the v1 data: {diff3}")
            s3_rows(rows, "D7", "clone from S3", c3, c1, _stats(rc3, "fetch"), rc3, data_bytes)
            rows["D7"].raw["verified"] = diff3 is None
            if diff3 is None:
                rows["D7"].step += " (verified)"
            elif rows["D7"].ok != "ERROR":
                rows["D7"].ok = "ERROR"
            memrow("M16", "D7 dsrepo clone <- S3 (moto)", c3.peak_kib)
            rmtree(clone_s3)

    # D3/D4 and D9/D10: push the change
    progress("D3: mutate(), then add . and commit v2 (Python API, not timed)")
    before = file_digests(wk)
    mutate(str(wk))
    change = changed_bytes(before, file_digests(wk))
    raw["change"] = change
    if not setup("setup-v2", {"repo": str(wk), "message": "v2"}):
        return
    raw["store_growth_v2"] = du(wk / ".dsrepo" / "packs") - raw["store_after_v1"]
    rep.notes.append(
        f"D3/D9 changed bytes = {change['total']}: {change['rewritten_files']} rewritten files "
        f"({change['rewritten_bytes']} B) + {change['added_files']} new files "
        f"({change['added_bytes']} B) + {change['inserted_bytes']} B inserted into "
        f"{change['inserted_files']} large file(s); {change['deleted_files']} files deleted "
        f"(0 B); the local store grew by {raw['store_growth_v2']} B"
    )
    progress("D3: dsrepo push origin (v2, directory remote)")
    p2, r2 = cli("push2-dir", "push origin", wk)
    change_rows(rows, "D3", "directory remote", p2, _stats(r2, "push"), r2, change["total"])
    memrow("M14", "D3 dsrepo push v2 -> directory", p2.peak_kib)
    if server is not None and steps.get("push1-s3", {}).get("rc") == 0:
        progress("D9: dsrepo push s3 (v2, moto)")
        p4, r4 = cli("push2-s3", "push s3", wk, s3env)
        change_rows(rows, "D9", "S3 (moto)", p4, _stats(r4, "push"), r4, change["total"])
        memrow("M17", "D9 dsrepo push v2 -> S3 (moto)", p4.peak_kib)


def s3_rows(
    rows: dict[str, Row],
    rid: str,
    what: str,
    s: Step,
    dir_step: Step,
    st: dict[str, Any],
    rec: dict[str, Any],
    data_bytes: int,
) -> None:
    """Two rows for an S3 transfer of v1: seconds (beside the same step on a directory remote),
    then requests and bytes on the wire (sent by a push, received by a clone) beside the data."""
    n = int(rid[1:])
    key = "bytes_received" if "clone" in what else "bytes_sent"
    ratio = s.seconds / dir_step.seconds
    rows[rid] = Row(
        rid,
        f"{what} (moto): seconds vs the directory remote",
        fmt_s(s.seconds),
        fmt_s(dir_step.seconds),
        f"{ratio:.2f}",
        "- (moto)",
        "info" if s.ok else "ERROR",
        {"seconds": s.seconds, "dir_seconds": dir_step.seconds, "ratio": ratio},
    )
    moved = st.get(key, 0)
    http = rec.get("http_requests")
    rows[f"D{n + 1}"] = Row(
        f"D{n + 1}",
        f"{what}: requests, {key.replace('_', ' ')} vs data size"
        + (f" ({http} HTTP requests)" if http is not None else ""),
        f"{st.get('requests', '?')} req, {fmt_mib(moved)}",
        fmt_mib(data_bytes),
        f"{moved / data_bytes:.3f}",
        "- (info)",
        "info" if s.ok and st else "ERROR",
        {
            "stats": st,
            "http_requests": http,
            "counter": rec.get("counter"),
            "data_bytes": data_bytes,
        },
    )


def change_rows(
    rows: dict[str, Row],
    rid: str,
    where: str,
    s: Step,
    st: dict[str, Any],
    rec: dict[str, Any],
    changed: int,
) -> None:
    """Two rows for pushing the change: bytes sent / changed bytes, then requests."""
    n = int(rid[1:])
    sent = st.get("bytes_sent", 0)
    ratio = sent / changed if changed else float("inf")
    ok = s.ok and bool(st)
    rows[rid] = Row(
        rid,
        f"push v2 to {where}: bytes sent / changed bytes ({s.seconds:.2f} s)",
        fmt_mib(sent),
        fmt_mib(changed),
        f"{ratio:.2f}",
        "<= 1.5",
        verdict(ratio <= 1.5) if ok else "ERROR",
        {
            "seconds": s.seconds,
            "bytes_sent": sent,
            "changed_bytes": changed,
            "ratio": ratio,
            "stats": st,
        },
    )
    reqs = st.get("requests", 0)
    http = rec.get("http_requests")
    rows[f"D{n + 1}"] = Row(
        f"D{n + 1}",
        f"push v2 to {where}: requests"
        + (f" ({http} HTTP requests)" if http is not None else "")
        + f", {st.get('objects', '?')} objects in {st.get('packs', '?')} packs",
        str(reqs),
        "-",
        "-",
        "< 100 (tens)",
        verdict(reqs < 100) if ok else "ERROR",
        {"requests": reqs, "http_requests": http, "counter": rec.get("counter")},
    )


# ---------------------------------------------------------------- output


def table(headers: list[str], rows: list[list[str]]) -> Iterator[str]:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    yield line(headers)
    yield "-+-".join("-" * w for w in widths)
    for r in rows:
        yield line(r)


def print_report(rep: Report, header: dict[str, Any]) -> None:
    print()
    print("dsrepo benchmark" + (" (SMOKE sizes: not comparable)" if header["smoke"] else ""))
    for k in ("dsrepo", "commit", "python", "cpus", "load_before", "load_after", "workdir"):
        print(f"  {k}: {header[k]}")
    print()
    for ln in table(
        ["id", "step", "dsrepo", "baseline", "ratio", "target", "ok?"],
        [[r.id, r.step, r.value, r.baseline, r.ratio, r.target, r.ok] for r in rep.rows],
    ):
        print(ln)
    print()
    print("Peak memory (max RSS of the step's process tree)")
    mem_rows = []
    for m in rep.memory:
        per = (
            f"{m.peak_kib * 1024 / m.data_bytes:.3f}"
            if m.peak_kib is not None and m.data_bytes
            else "-"
        )
        mem_rows.append(
            [
                m.id,
                m.step,
                fmt_kib(m.peak_kib),
                fmt_kib(m.above_startup_kib),
                fmt_mib(m.data_bytes) if m.data_bytes else "-",
                per,
            ]
        )
    for ln in table(["id", "step", "peak RSS", "above start-up", "data", "peak/data"], mem_rows):
        print(ln)
    print()
    print("Notes")
    for n in [
        "Warm page cache: every input is read once before its baseline and dsrepo step.",
        "Timed write steps end with `sync` (cp -r and dsrepo alike); `sync` also runs before "
        "each timed step.",
        "A1 times only write_file + flush (the child's interpreter and Repository.init are not "
        "timed); the baseline reads 8 MiB blocks into one buffer and hashes single-threaded.",
        "Above start-up: A = RSS after imports/open; B = peak minus `dsrepo --version` peak; "
        "D = peak minus the wrapped `--version` peak (M18).",
        "MISS is information, not failure; the exit status is non-zero only if a step crashed.",
        *rep.notes,
    ]:
        print(f"  - {n}")
    if rep.errors:
        print()
        print(f"{len(rep.errors)} step(s) crashed:")
        for e in rep.errors:
            print(f"  - {e}")


def git_commit() -> str:
    try:
        r = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        return r.stdout.strip() + (" (+ uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str]) -> int:
    if argv and argv[0] == "_child":
        child_main(argv[1:])
        return 0
    if argv and argv[0] == "_cli":
        cli_main(argv[1:])
        return 0
    if argv and argv[0] == "_setup":
        setup_main(argv[1:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workdir", type=Path)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the bench runs")
    ap.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections among {','.join(SECTIONS)}",
    )
    ap.add_argument("--keep", action="store_true", help="keep generated data and repositories")
    a = ap.parse_args(argv)
    sections = {s.strip() for s in a.only.split(",") if s.strip()}
    if not sections or sections - set(SECTIONS):
        ap.error(f"--only takes a subset of {','.join(SECTIONS)}")
    sizes = SMOKE if a.smoke else FULL
    work: Path = a.workdir.absolute()
    work.mkdir(parents=True, exist_ok=True)
    from dsrepo import __version__

    header: dict[str, Any] = {
        "dsrepo": __version__,
        "commit": git_commit(),
        "python": f"{platform.python_version()} ({sys.executable})",
        "cpus": os.cpu_count(),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "workdir": str(work),
        "smoke": a.smoke,
        "sizes": asdict(sizes),
        "sections": sorted(sections),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    rep = Report()
    t0 = time.perf_counter()
    if "store" in sections:
        print("A) storage core", flush=True)
        try:
            section_store(work, sizes, rep, a.keep)
        except Exception:
            rep.error("store section", traceback.format_exc())
    if sections & {"porcelain", "git"}:
        print("B) porcelain" + (" / C) git reference" if "git" in sections else ""), flush=True)
        try:
            section_porcelain(work, sizes, rep, a.keep, sections)
        except Exception:
            rep.error("porcelain section", traceback.format_exc())
    if "remotes" in sections:
        print("D) remotes", flush=True)
        try:
            section_remotes(work, sizes, rep, a.keep)
        except Exception:
            rep.error("remotes section", traceback.format_exc())
    header["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    header["total_seconds"] = round(time.perf_counter() - t0, 1)
    print_report(rep, header)
    results = {
        "header": header,
        "rows": [asdict(r) for r in rep.rows],
        "memory": [asdict(m) for m in rep.memory],
        "errors": rep.errors,
        "notes": rep.notes,
        "raw": rep.raw,
    }
    (work / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nresults: {work / 'results.json'} ({header['total_seconds']} s)")
    return 1 if rep.errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
