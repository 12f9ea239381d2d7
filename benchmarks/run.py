#!/usr/bin/env python3
"""dsrepo benchmark: every timing beside its baseline, measured in the same run.

    .venv/bin/python benchmarks/run.py WORKDIR [--smoke] [--only store,porcelain,git] [--keep]

A) storage core: ``ObjectStore.write_file`` + ``flush`` throughput beside plain read + BLAKE3,
   store growth for 1 MiB inserted in the middle of a large file, peak memory of each store.
B) porcelain: the real ``dsrepo`` CLI on the shared peer workload (10,000 small files + two
   128 MiB files) beside ``cp -r``: first commit, no-op status, commit of a change, store growth,
   checkout of the first version.
C) reference (only when on PATH): ``git add -A && git commit`` of the same data.

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
SECTIONS = ("store", "porcelain", "git")


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
        "Above start-up: A = RSS after imports/open; B = peak minus `dsrepo --version` peak.",
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
