"""Shared by every benchmark section: sizes, report rows, timed steps, file helpers, the moto S3
server (D, F), printing."""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
SHARED_WORKLOAD = REPO_ROOT.parent / "shared" / "bench" / "peer_bench.py"
MiB = 1 << 20
BLOCK = 8 * MiB
RUN_PY = HERE / "run.py"  # the entry point, also what runs the `_child`/`_cli`/`_setup` steps


@dataclass(frozen=True)
class Sizes:
    big_file: int  # A1: throughput file
    edit_file: int  # A2: file edited in the middle
    insert: int  # A2: bytes inserted
    n_small: int  # B: small files of the peer workload
    big_mib: int  # B: MiB of each of its two large files
    status_runs: int  # B: no-op status is run this many times (median reported)
    parquet: int  # F: bytes of the parquet file one column is read from
    serve_rounds: int  # G: rounds of 16 clones (each of the 4 pushers pushes once a round)
    serve_seed: int  # G: bytes of the served repository's data


FULL = Sizes(1024 * MiB, 256 * MiB, MiB, 10_000, 128, 3, 200 * MiB, 3, 16 * MiB)
SMOKE = Sizes(32 * MiB, 16 * MiB, MiB, 300, 4, 1, 4 * MiB, 1, MiB)


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
    import workload  # benchmarks/workload.py, beside this module

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


SETTLE_SECONDS = float(os.environ.get("DSREPO_BENCH_SETTLE", "61"))
"""How long a timed step waits after a large delete (:func:`rmtree` of ``LARGE_DELETE`` files or
more). ext4 without a journal (this machine's disk) skips every inode freed in the last 60 s
(360 s while its inode-table block is dirty) each time it allocates one, so creating files right
after deleting many costs up to a hundred times more per file (``perf``: ``recently_deleted`` in
``ext4_create``; 250 us instead of 10 us per file after deleting 10k). Whichever side of a row ran
first after a delete paid for it; now neither does: the delete is synced (clean blocks: 60 s)
and the next timed step waits out the rest. ``DSREPO_BENCH_SETTLE=0``: no wait (smoke tests)."""
LARGE_DELETE = 1000
_last_delete: list[float] = []
_trash: list[Path] = []
_keep_free: list[int] = [0]
_trashed = itertools.count()


def defer_deletes(trash: Path, keep_free: int = 0) -> None:
    """From now on :func:`rmtree` moves trees into ``trash`` (a rename frees no inode, so no
    step waits) and :func:`empty_trash` deletes them once nothing is timed any more, as long
    as the disk keeps ``keep_free`` bytes free; past that it deletes and the next step waits.
    ``make bench``'s trees fit on the disk many times over; ``scale.py``'s million-file trees
    fit a few times (its 61 s wait was not enough after deleting a million files: ``checkout
    --into`` and ``cp -r`` ran 2x slower than on a quiet disk). A trash left by a killed run is
    deleted first."""
    rmtree(trash)
    trash.mkdir(parents=True)
    _trash[:] = [trash]
    _keep_free[:] = [keep_free]


def empty_trash() -> None:
    """Delete the trash; the next timed step (if any) waits as after any large delete (without
    counting its files first: a million-file run's trash holds millions)."""
    if _trash:
        shutil.rmtree(_trash.pop(), ignore_errors=True)
        sync()
        _last_delete[:] = [time.monotonic()]


def rmtree(path: Path) -> None:
    """Remove a tree (into the trash, see :func:`defer_deletes`); after a large delete, sync and
    make the next timed step wait (:func:`settle`)."""
    if _trash and os.path.lexists(path) and shutil.disk_usage(_trash[0]).free >= _keep_free[0]:
        with contextlib.suppress(OSError):  # else (another filesystem?) deleted now
            os.rename(path, _trash[0] / f"{next(_trashed)}-{path.name}")
            return
    n = count_files(path) if path.is_dir() else 0
    shutil.rmtree(path, ignore_errors=True)
    if n >= LARGE_DELETE:
        sync()
        _last_delete[:] = [time.monotonic()]


def settle() -> None:
    """Wait until :data:`SETTLE_SECONDS` have passed since the last large delete."""
    if _last_delete and (wait := _last_delete[0] + SETTLE_SECONDS - time.monotonic()) > 0:
        progress(f"waiting {wait:.0f} s: files were just deleted (see common.SETTLE_SECONDS)")
        time.sleep(wait)


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


def record_step(
    rep: Report,
    steps: dict[str, Any],
    where: str,
    cmd: str,
    cwd: Path,
    env: dict[str, str],
    label: str | None = None,
) -> Step:
    """:func:`settle`, ``sync``, then ``run_step``; its figures go into ``steps[where]``, a
    crash into ``rep.errors`` (under ``label``, default ``where``)."""
    settle()
    sync()
    s = run_step(cmd, cwd, env)
    steps[where] = {
        "cmd": cmd,
        "seconds": s.seconds,
        "peak_kib": s.peak_kib,
        "rc": s.returncode,
    }
    if not s.ok:
        rep.error(label or where, f"`{cmd}` exited {s.returncode}:\n{s.stderr[-3000:]}")
    return s


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


# ---------------------------------------------------------------- moto S3 (D, F)


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


def moto_env(env: dict[str, str], d: Path) -> dict[str, str]:
    """``env`` for a step talking to the moto server: its dummy credentials, no AWS config files
    (``d`` holds none), no instance metadata, no proxy for loopback."""
    from dsrepo.remotes.s3_testserver import TEST_CREDENTIALS

    return {
        **env,
        **TEST_CREDENTIALS,
        "AWS_CONFIG_FILE": str(d / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(d / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


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
