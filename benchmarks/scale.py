#!/usr/bin/env python3
"""dsrepo at scale: 300,000 and 1,000,000 small files, each step beside git (and ``cp -r``).

    .venv/bin/python benchmarks/scale.py WORKDIR [--sizes 300k,1M] [--steps 1,3,5] [--keep]
                                                 [--timeout 900]

For each size N, a tree of N files of 1-2 KiB in N/100 folders of 100 files
(``dNNN/sNN/fNNN.bin``) is generated once and cached as ``WORKDIR/tree-N`` (pristine, never
modified); every run copies it with ``cp -r --reflink=auto`` into a working copy for dsrepo and
one for git, then times the same steps with the real ``dsrepo`` CLI and with ``git``: first add,
first commit, no-op status, status / add / commit of 100 rewritten files, ``commit -a`` of 100 and
of 1,000 changes, ``ls-files`` (and its first line), status beside an untracked folder of 1,000
files, ``checkout --into`` beside ``cp -r``, clone and push to a directory beside ``cp -r`` and
git. Peak memory is each command's max RSS (``wait4`` of its process tree, through
``/usr/bin/time``).

Prints a table per size (markdown) and writes ``WORKDIR/results-N.json``. A failed step is
printed as FAILED with the last line of its stderr; the exit status is 1 when a step failed or
timed out, else 0 (timings are information, never a failure). Progress goes to stderr.
See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common import defer_deletes, dsrepo_exe, empty_trash, git_commit, rmtree, settle

HERE = Path(__file__).resolve().parent

TIME = "/usr/bin/time"
PER_FOLDER = 100
BLOB = 1 << 22  # the random blob every file is a slice of
STEPS = tuple(range(1, 11))
DEFAULT_SIZES = "300k,1M"
GIT_SETTINGS = (
    "git defaults: GIT_CONFIG_NOSYSTEM=1, GIT_CONFIG_GLOBAL=/dev/null; only user.name, "
    "user.email and gc.auto=0 (no background gc stealing a core from the next step) set in the "
    "repository (no untracked cache, no fsmonitor, no feature.manyFiles)"
)

_T0 = time.perf_counter()


def progress(text: str) -> None:
    print(f"  [{time.perf_counter() - _T0:7.1f} s] {text}", file=sys.stderr, flush=True)


def parse_size(text: str) -> int:
    m = re.fullmatch(r"(\d+)([kKmM]?)", text.strip().replace("_", "").replace(",", ""))
    if m is None or int(m.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"bad size {text!r} (examples: 2000, 2k, 300k, 1M)")
    return int(m.group(1)) * {"": 1, "k": 1000, "m": 1_000_000}[m.group(2).lower()]


def size_label(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def rel(k: int, i: int) -> str:
    """Path of file ``i`` of folder ``k``."""
    return f"d{k // 100:03d}/s{k % 100:02d}/f{i:03d}.bin"


def rel_of(index: int) -> str:
    return rel(index // PER_FOLDER, index % PER_FOLDER)


# ---------------------------------------------------------------- the tree


def generate(root: Path, n: int) -> dict[str, Any]:
    """N files of 1024-2048 random bytes + 8 bytes making each unique, 100 per folder.

    One 4 MiB random blob; each file is a random slice of it (about 50k files/s)."""
    rnd = random.Random(5)
    blob = rnd.randbytes(BLOB)
    total = 0
    folders = (n + PER_FOLDER - 1) // PER_FOLDER
    step = max(1, folders // 10)
    for k in range(folders):
        d = root / f"d{k // 100:03d}" / f"s{k % 100:02d}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(min(PER_FOLDER, n - k * PER_FOLDER)):
            size = rnd.randint(1024, 2048)
            off = rnd.randrange(0, BLOB - size)
            data = blob[off : off + size] + k.to_bytes(4, "big") + i.to_bytes(4, "big")
            fd = os.open(d / f"f{i:03d}.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            total += len(data)
        if (k + 1) % step == 0:
            progress(f"generated {min(n, (k + 1) * PER_FOLDER):,} of {n:,} files")
    return {"files": n, "bytes": total, "folders": folders}


def cached_tree(work: Path, n: int) -> tuple[Path, dict[str, Any]]:
    """``WORKDIR/tree-N``, generated the first time (into ``.partial``, renamed when complete)."""
    tree = work / f"tree-{n}"
    meta_file = work / f"tree-{n}.json"
    if tree.is_dir() and meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        meta["cached"] = True
        progress(f"tree-{n}: cached ({meta['files']:,} files, {meta['bytes'] / 1e6:,.1f} MB)")
        return tree, meta
    partial = work / f"tree-{n}.partial"
    rmtree(partial)
    rmtree(tree)
    progress(f"tree-{n}: generating {n:,} files")
    t0 = time.perf_counter()
    meta = generate(partial, n)
    meta["generate_seconds"] = round(time.perf_counter() - t0, 1)
    partial.rename(tree)
    meta_file.write_text(json.dumps(meta) + "\n")
    meta["cached"] = False
    progress(f"tree-{n}: generated in {meta['generate_seconds']} s")
    return tree, meta


def rewrite(roots: list[Path], n: int, count: int, seed: int) -> list[str]:
    """Rewrite ``count`` files spread over the tree with new random bytes of the same size,
    identically in every root. Returns their paths (sorted)."""
    rnd = random.Random(seed)
    picks = sorted(rnd.sample(range(n), min(count, n)))
    paths = [rel_of(x) for x in picks]
    for p in paths:
        size = (roots[0] / p).stat().st_size
        data = rnd.randbytes(size)
        for root in roots:
            fd = os.open(root / p, os.O_WRONLY | os.O_TRUNC)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
    return paths


def count_files(path: Path) -> int:
    return sum(len(fs) for dp, ds, fs in os.walk(path) if not _drop_meta(ds))


def _drop_meta(dirs: list[str]) -> bool:
    for name in (".dsrepo", ".git"):
        if name in dirs:
            dirs.remove(name)
    return False


def spot_check(a: Path, b: Path, n: int, sample: int = 200) -> str | None:
    """None when ``sample`` files picked at random have the same bytes in both trees."""
    for x in random.Random(7).sample(range(n), min(sample, n)):
        p = rel_of(x)
        try:
            if (a / p).read_bytes() != (b / p).read_bytes():
                return f"{p} differs"
        except OSError as e:
            return f"{p}: {e.strerror}"
    return None


# ---------------------------------------------------------------- running a command


@dataclass
class Run:
    cmd: str
    seconds: float | None = None  # wall time (None: not run)
    peak_kib: int | None = None
    cpu_seconds: float | None = None  # user + system of the whole process tree
    rc: int | None = None
    timed_out: bool = False
    stdout_lines: int | None = None
    first_line_seconds: float | None = None
    error: str | None = None  # "FAILED: last stderr line" / "TIMEOUT ..."
    matched: int | None = None  # stdout lines containing run_cmd's ``match``
    stdout_head: list[str] = field(default_factory=list)  # the first 20 of them

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.timed_out


def run_cmd(
    cmd: str,
    cwd: Path,
    env: dict[str, str],
    timeout: float,
    stdout: str = "file",  # "file": counted (and kept as Run.stdout_head); "null"; "first-line"
    match: str | None = None,  # count the stdout lines containing this (Run.matched)
) -> Run:
    """Run ``cmd`` with /bin/sh in its own process group: wall time, and the peak RSS and CPU
    time of its process tree as ``wait4`` reports them to ``/usr/bin/time`` (a small C program:
    ``wait4`` of a child forked from this Python process would count this process's RSS too).
    Without /usr/bin/time, ``os.wait4`` of the shell itself (this process's RSS is then a floor
    on the peak)."""
    settle()  # after a large delete (common.SETTLE_SECONDS)
    subprocess.run(["sync"], check=False)  # not timed: earlier writes are not flushed in a step
    r = Run(cmd)
    with tempfile.TemporaryDirectory() as tmp:
        rss_file = os.path.join(tmp, "rusage")
        use_time = os.access(TIME, os.X_OK)
        sh = ["/bin/sh", "-c", cmd]
        argv = [TIME, "-q", "-f", "%M %U %S", "-o", rss_file, *sh] if use_time else sh
        out_path, err_path = Path(tmp, "out"), Path(tmp, "err")
        with open(err_path, "wb") as fe:
            out_target: Any
            if stdout == "null":
                out_target = subprocess.DEVNULL
            elif stdout == "first-line":
                out_target = subprocess.PIPE
            else:
                out_target = open(out_path, "wb")  # noqa: SIM115 (closed below)
            t0 = time.perf_counter()
            p = subprocess.Popen(
                argv, cwd=cwd, env=env, stdout=out_target, stderr=fe, start_new_session=True
            )
            killed = threading.Event()

            def kill() -> None:  # on timeout: the process group this call started, nothing else
                killed.set()
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)

            timer = threading.Timer(timeout, kill)
            timer.start()
            try:
                if stdout == "first-line":
                    assert p.stdout is not None
                    first = p.stdout.readline()
                    if first:
                        r.first_line_seconds = time.perf_counter() - t0
                    lines = 1 if first else 0
                    while chunk := p.stdout.read(1 << 16):
                        lines += chunk.count(b"\n")
                    r.stdout_lines = lines
                    p.stdout.close()
                _, status, ru = os.wait4(p.pid, 0)  # blocking: the exact end time
                r.seconds = time.perf_counter() - t0
                timer.cancel()
                r.rc = p.returncode = os.waitstatus_to_exitcode(status)
                if killed.is_set():
                    r.timed_out, r.error = True, f"TIMEOUT after {timeout:g} s"
                elif not use_time:
                    r.peak_kib = ru.ru_maxrss
                    r.cpu_seconds = ru.ru_utime + ru.ru_stime
            finally:
                if stdout == "file":
                    out_target.close()
        if use_time and not r.timed_out:
            try:
                m, u, s = Path(rss_file).read_text().split()[-3:]
                r.peak_kib, r.cpu_seconds = int(m), float(u) + float(s)
            except (OSError, ValueError):
                pass
        if stdout == "file":
            text = out_path.read_text(errors="replace").splitlines()
            r.stdout_lines = len(text)
            hits = [ln for ln in text if match is None or match in ln]
            r.matched, r.stdout_head = len(hits), hits[:20]
        if not r.timed_out and r.rc != 0:
            err_lines = [ln for ln in err_path.read_text(errors="replace").splitlines() if ln]
            last = err_lines[-1].strip() if err_lines else "(no stderr)"
            r.error = f"FAILED (exit {r.rc}): {last}"
    return r


# ---------------------------------------------------------------- the steps


@dataclass
class Row:
    step: str  # "1", "5b", ...
    what: str
    vs: str  # what dsrepo is compared with: "git", "cp -r", ...
    dsrepo: Run | None
    other: Run | None
    note: str = ""

    def ratio(self) -> float | None:
        a, b = self.dsrepo, self.other
        if a is None or b is None or not a.ok or not b.ok or not a.seconds or not b.seconds:
            return None
        return a.seconds / b.seconds


class Bench:
    def __init__(self, work: Path, n: int, steps: set[int], timeout: float, keep: bool) -> None:
        self.work, self.n, self.steps, self.timeout, self.keep = work, n, steps, timeout, keep
        self.run_dir = work / f"run-{n}"
        self.rows: list[Row] = []
        self.ds = shlex.quote(dsrepo_exe())
        genv = dict(os.environ, LC_ALL="C", GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null")
        for k in list(genv):
            if k.startswith("GIT_") and k not in ("GIT_CONFIG_NOSYSTEM", "GIT_CONFIG_GLOBAL"):
                del genv[k]
        self.git_env = genv
        self.ds_env = dict(
            os.environ,
            LC_ALL="C",
            DSREPO_AUTHOR_NAME="Bench",
            DSREPO_AUTHOR_EMAIL="bench@example.com",
            DSREPO_CONFIG_GLOBAL=str(work / "global-config"),
        )
        self.wd = self.run_dir / "dsrepo"
        self.wg = self.run_dir / "git"

    # -- helpers

    def ds_run(self, label: str, cmd: str, cwd: Path | None = None, **kw: Any) -> Run:
        r = run_cmd(cmd, cwd or self.wd, self.ds_env, self.timeout, **kw)
        self._log("dsrepo", label, r)
        return r

    def git_run(self, label: str, cmd: str, cwd: Path | None = None, **kw: Any) -> Run:
        r = run_cmd(cmd, cwd or self.wg, self.git_env, self.timeout, **kw)
        self._log("git", label, r)
        return r

    def other_run(self, label: str, cmd: str, cwd: Path, **kw: Any) -> Run:
        r = run_cmd(cmd, cwd, self.git_env, self.timeout, **kw)
        self._log(cmd.split()[0], label, r)
        return r

    def _log(self, who: str, label: str, r: Run) -> None:
        if r.ok:
            mem = f", {r.peak_kib / 1024:.0f} MB" if r.peak_kib else ""
            progress(f"{size_label(self.n)} {label} [{who}]: {r.seconds:.3f} s{mem}")
        else:
            progress(f"{size_label(self.n)} {label} [{who}]: {r.error}")

    def add(self, row: Row) -> None:
        self.rows.append(row)

    def q(self, p: Path) -> str:
        return shlex.quote(str(p))

    # -- the run

    def run(self, tree: Path) -> None:
        n = self.n
        rmtree(self.run_dir)
        self.run_dir.mkdir(parents=True)
        cp = "cp -r --reflink=auto"
        progress(f"{size_label(n)}: working copies (cp -r of tree-{n}, not timed)")
        for dest in (self.wd, self.wg):
            subprocess.run(["cp", "-r", "--reflink=auto", str(tree), str(dest)], check=True)
        base = self.other_run(
            "cp -r of the tree", f"{cp} {self.q(tree)} cp-tree", self.run_dir, stdout="null"
        )
        rmtree(self.run_dir / "cp-tree")
        self.add(Row("0", f"cp -r of the tree ({n:,} files)", "cp -r", None, base, "baseline"))
        v_ds = self.ds_run("start-up", f"{self.ds} --version")
        v_git = self.git_run("start-up", "git --version")
        self.add(Row("0", "CLI start-up (--version)", "git", v_ds, v_git))

        # 1-2 always run: every other step needs the first commit
        ds = self.ds
        a_ds = self.ds_run("init + add .", f"{ds} init -q . && {ds} add .")
        a_git = self.git_run("init + add .", "git init -q -b main . && git add .")
        subprocess.run(
            # no background `git gc --auto` after a commit: it would run during the next
            # (dsrepo) step and steal a core from it (it did: status 0.55 s alone, 0.9 s beside it)
            "git config user.name Bench && git config user.email bench@example.com"
            " && git config gc.auto 0 && git config maintenance.auto false",
            shell=True,
            cwd=self.wg,
            env=self.git_env,
            check=False,
        )
        self.add(Row("1", "init + add .", "git", a_ds, a_git))
        c_ds = self.ds_run("commit", f"{ds} commit -m m")
        c_git = self.git_run("commit", "git commit -q -m m")
        self.add(Row("2", "first commit -m m", "git", c_ds, c_git))

        if 3 in self.steps:
            self.ds_run("status (1st)", f"{ds} status", stdout="null")
            self.git_run("status (1st)", "git status", stdout="null")
            s_ds = self.ds_run("no-op status", f"{ds} status", stdout="null")
            s_git = self.git_run("no-op status", "git status", stdout="null")
            self.add(Row("3", "no-op status (2nd run)", "git", s_ds, s_git))

        touched: list[str] | None = None
        if 4 in self.steps or 5 in self.steps:
            touched = rewrite([self.wd, self.wg], n, 100, seed=1)
        if 4 in self.steps:
            s_ds = self.ds_run("status, 100 rewritten", f"{ds} status", match="modified:")
            s_git = self.git_run("status, 100 rewritten", "git status", match="modified:")
            note = f"`modified:` lines: dsrepo {s_ds.matched}, git {s_git.matched}"
            self.add(Row("4", "status, 100 files rewritten", "git", s_ds, s_git, note))
        if 5 in self.steps:
            assert touched is not None
            paths = " ".join(shlex.quote(p) for p in touched)
            ad_ds = self.ds_run("add 100 paths", f"{ds} add {paths}")
            ad_git = self.git_run("add 100 paths", f"git add {paths}")
            self.add(Row("5a", "add of the 100 paths", "git", ad_ds, ad_git))
            cm_ds = self.ds_run("commit 100", f"{ds} commit -m m")
            cm_git = self.git_run("commit 100", "git commit -q -m m")
            target = ""
            if cm_ds.ok and cm_ds.seconds is not None:
                target = f"target <= 1 s: {'OK' if cm_ds.seconds <= 1 else 'MISS'}"
            self.add(Row("5b", "then commit -m m", "git", cm_ds, cm_git, target))
        if 6 in self.steps:
            for count, seed, sid in ((100, 2, "6a"), (1000, 3, "6b")):
                count = len(rewrite([self.wd, self.wg], n, count, seed=seed))
                ca_ds = self.ds_run(f"commit -a, {count}", f"{ds} commit -a -m m")
                ca_git = self.git_run(f"commit -a, {count}", "git commit -q -a -m m")
                self.add(Row(sid, f"commit -a -m m, {count:,} files changed", "git", ca_ds, ca_git))
        if 7 in self.steps:
            l_ds = self.ds_run("ls-files", f"{ds} ls-files", stdout="null")
            l_git = self.git_run("ls-files", "git ls-files", stdout="null")
            self.add(Row("7a", "ls-files > /dev/null", "git", l_ds, l_git))
            f_ds = self.ds_run("ls-files 1st line", f"{ds} ls-files", stdout="first-line")
            f_git = self.git_run("ls-files 1st line", "git ls-files", stdout="first-line")
            note = f"lines: dsrepo {f_ds.stdout_lines}, git {f_git.stdout_lines}"
            self.add(
                Row("7b", "ls-files: time to first line", "git", _first(f_ds), _first(f_git), note)
            )
        if 8 in self.steps:
            for root in (self.wd, self.wg):
                d = root / "new_dir"
                d.mkdir()
                for i in range(1000):
                    (d / f"n{i:04d}.bin").write_bytes(i.to_bytes(4, "big") * 256)
            u_ds = self.ds_run("status, untracked dir", f"{ds} status", match="new_dir")
            u_git = self.git_run("status, untracked dir", "git status", match="new_dir")
            note = (
                f"lines naming new_dir: dsrepo {u_ds.matched}, git {u_git.matched}"
                f" (of {u_ds.stdout_lines} and {u_git.stdout_lines} lines)"
            )
            self.add(
                Row("8", "status, untracked new_dir/ of 1,000 files", "git", u_ds, u_git, note)
            )
            for root in (self.wd, self.wg):
                shutil.rmtree(root / "new_dir")
        if 9 in self.steps:
            into = self.run_dir / "checkout"
            base9 = self.other_run(  # again, just before: the machine's load changes
                "cp -r of the tree", f"{cp} {self.q(tree)} cp-tree", self.run_dir, stdout="null"
            )
            rmtree(self.run_dir / "cp-tree")
            co = self.ds_run("checkout --into", f"{ds} checkout HEAD --into {self.q(into)}")
            note = self._verify(into) if co.ok else ""
            self.add(Row("9", "checkout HEAD --into DIR", "cp -r of the tree", co, base9, note))
            rmtree(into)
            ginto = self.run_dir / "git-archive"
            ginto.mkdir()
            ga = self.git_run("archive | tar x", f"git archive HEAD | tar -x -C {self.q(ginto)}")
            self.add(Row("9", "checkout HEAD --into DIR", "git archive HEAD | tar -x", co, ga))
            rmtree(ginto)
        if 10 in self.steps:
            rd = self.run_dir
            cl = self.ds_run("clone", f"{ds} clone {self.q(self.wd)} clone", cwd=rd)
            note = self._verify(rd / "clone") if cl.ok else ""
            rmtree(rd / "clone")
            cpr = self.other_run("cp -r repo", f"{cp} {self.q(self.wd)} cp-repo", rd, stdout="null")
            rmtree(rd / "cp-repo")
            gcl = self.git_run(
                "clone --no-local", f"git clone -q --no-local {self.q(self.wg)} git-clone", cwd=rd
            )
            rmtree(rd / "git-clone")
            self.add(Row("10a", "clone PATH DEST", "cp -r of data + .dsrepo", cl, cpr, note))
            self.add(Row("10a", "clone PATH DEST", "git clone --no-local", cl, gcl))

            remote, bare = rd / "remote", rd / "git-bare.git"
            subprocess.run(
                [dsrepo_exe(), "remote", "add", "r", str(remote)],
                cwd=self.wd,
                env=self.ds_env,
                check=False,
                capture_output=True,
            )
            pu = self.ds_run("push", f"{ds} push r main")
            cpd = self.other_run(
                "cp -r .dsrepo", f"{cp} {self.q(self.wd / '.dsrepo')} cp-store", rd, stdout="null"
            )
            rmtree(rd / "cp-store")
            subprocess.run(
                ["git", "init", "-q", "--bare", str(bare)], env=self.git_env, check=False
            )
            gpu = self.git_run("push to bare", f"git push -q {self.q(bare)} main")
            self.add(Row("10b", "push r main (directory remote)", "cp -r of .dsrepo", pu, cpd))
            self.add(
                Row("10b", "push r main (directory remote)", "git push to a bare repo", pu, gpu)
            )
            rmtree(remote)
            rmtree(bare)

    def _verify(self, dest: Path) -> str:
        """Files count and a spot check of 200 files against the dsrepo working copy (which
        equals HEAD here)."""
        got = count_files(dest)
        diff = spot_check(self.wd, dest, self.n)
        if got == self.n and diff is None:
            return f"verified: {got:,} files, {min(200, self.n)} spot-checked"
        return f"MISMATCH: {got:,} files (want {self.n:,}); {diff or 'spot check ok'}"

    def cleanup(self) -> None:
        if not self.keep:
            rmtree(self.run_dir)


def _first(r: Run) -> Run:
    """The same run with its time to first line as its seconds."""
    return Run(**{**asdict(r), "seconds": r.first_line_seconds})


# ---------------------------------------------------------------- report


def fmt_secs(r: Run | None) -> str:
    if r is None:
        return "-"
    if not r.ok:
        return r.error or "FAILED"
    return "-" if r.seconds is None else f"{r.seconds:.3f}"


def fmt_cpu(r: Run | None) -> str:
    return "-" if r is None or not r.ok or r.cpu_seconds is None else f"{r.cpu_seconds:.2f}"


def fmt_mb(r: Run | None) -> str:
    return "-" if r is None or r.peak_kib is None else f"{r.peak_kib / 1024:.0f}"


def report_rows(rows: list[Row]) -> list[list[str]]:
    out = []
    for row in rows:
        ratio = row.ratio()
        out.append(
            [
                row.step,
                row.what,
                fmt_secs(row.dsrepo),
                row.vs,
                fmt_secs(row.other),
                "-" if ratio is None else f"{ratio:.2f}",
                fmt_mb(row.dsrepo),
                fmt_mb(row.other),
                fmt_cpu(row.dsrepo),
                fmt_cpu(row.other),
                row.note,
            ]
        )
    return out


HEADERS = [
    "#", "step", "dsrepo s", "vs", "vs s", "ratio", "dsrepo MB", "vs MB", "dsrepo cpu s",
    "vs cpu s", "note",
]  # fmt: skip


def markdown(headers: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table, columns padded (a ``|`` inside a cell is escaped)."""
    rows = [[c.replace("|", "\\|") for c in r] for r in rows]
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]


def pressure() -> str:
    """Linux pressure stall figures (``/proc/pressure``): "cpu 12.3 10.1, io 3.2 2.0"."""
    out = []
    for kind in ("cpu", "io"):
        try:
            some = Path(f"/proc/pressure/{kind}").read_text().splitlines()[0].split()
        except (OSError, IndexError):
            return ""
        vals = dict(x.split("=") for x in some[1:])
        out.append(f"{kind} {vals.get('avg10', '?')} {vals.get('avg60', '?')}")
    return ", ".join(out)


def tool_version(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_to_json(r: Run | None) -> dict[str, Any] | None:
    if r is None:
        return None
    d = asdict(r)
    d["ok"] = r.ok
    if len(d["cmd"]) > 300:
        d["cmd"] = d["cmd"][:300] + "..."
    return d


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workdir", type=Path, help="trees are cached here; results-N.json go here")
    ap.add_argument(
        "--sizes",
        default=DEFAULT_SIZES,
        help=f"comma-separated file counts: 2000, 2k, 300k, 1M (default {DEFAULT_SIZES})",
    )
    ap.add_argument(
        "--steps",
        default=",".join(map(str, STEPS)),
        help="comma-separated steps among 1-10 (1 and 2 always run: the others need the commit)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the working copies (run-N/)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per command (900)")
    a = ap.parse_args(argv)
    try:
        sizes = [parse_size(s) for s in a.sizes.split(",") if s.strip()]
        steps = {int(s) for s in a.steps.split(",") if s.strip()}
    except (argparse.ArgumentTypeError, ValueError) as e:
        ap.error(str(e))
    if not sizes:
        ap.error("--sizes is empty")
    if not steps or steps - set(STEPS):
        ap.error("--steps takes numbers among 1-10")
    if shutil.which("git") is None:
        ap.error("git is not on PATH: this benchmark compares with git")
    work: Path = a.workdir.absolute()
    work.mkdir(parents=True, exist_ok=True)

    failed = 0
    for n in sizes:
        label = size_label(n)
        header: dict[str, Any] = {
            "size": n,
            "dsrepo": tool_version([dsrepo_exe(), "--version"]),
            "dsrepo_exe": dsrepo_exe(),
            "dsrepo_module": tool_version(
                [sys.executable, "-c", "import dsrepo; print(dsrepo.__file__)"]
            ),
            "source_commit": git_commit(),
            "git": tool_version(["git", "--version"]),
            "git_settings": GIT_SETTINGS,
            "python": f"{platform.python_version()} ({sys.executable})",
            "cpus": os.cpu_count(),
            "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "pressure_before": pressure(),
            "steps": sorted(steps),
            "timeout": a.timeout,
            "peak_rss": "/usr/bin/time (wait4 of the process tree)"
            if os.access(TIME, os.X_OK)
            else "os.wait4 of /bin/sh (the benchmark's own RSS is a floor)",
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        tree, meta = cached_tree(work, n)
        header["tree"] = {**meta, "path": str(tree)}
        progress(f"{label}: warming the page cache (reading tree-{n} once)")
        _warm(tree)
        bench = Bench(work, n, steps, a.timeout, a.keep)
        # deleted trees go to a trash emptied after the run, while the disk keeps room for the
        # largest step (a clone: data + store) several times over; past that, delete and wait
        on_disk = max(meta["bytes"], meta["files"] * 4096)
        defer_deletes(work / "trash", keep_free=4 * on_disk)
        t0 = time.perf_counter()
        crash = None
        try:
            bench.run(tree)
        except Exception:  # a bug of this script (not a failed command): report what was measured
            crash = traceback.format_exc()
            progress(f"{label}: the benchmark crashed:\n{crash}")
        finally:
            progress(f"{label}: emptying the trash (not timed)")
            empty_trash()
        header["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        header["pressure_after"] = pressure()
        header["seconds"] = round(time.perf_counter() - t0, 1)
        rows = bench.rows
        runs = [r for row in rows for r in (row.dsrepo, row.other) if r is not None]
        errors = sorted({f"{r.cmd[:120]}: {r.error}" for r in runs if not r.ok})
        if crash is not None:
            errors.append(f"benchmark crashed: {crash.strip().splitlines()[-1]}")
        failed += len(errors)

        print()
        print(f"## dsrepo vs git, {n:,} files ({label}; {meta['bytes'] / 1e6:,.0f} MB of data)")
        print()
        keys = ("dsrepo", "dsrepo_module", "source_commit", "git", "git_settings", "python", "cpus")
        for k in keys:
            print(f"- {k}: {header[k]}")
        print(f"- load average before / after: {header['load_before']} / {header['load_after']}")
        if header["pressure_before"]:
            print(
                "- CPU / IO pressure (% of time some task waited, avg10 avg60) before / after: "
                f"{header['pressure_before']} / {header['pressure_after']}"
            )
        print(
            "- warm page cache (caches are not dropped: no root); `sync` (not timed) before each "
            "command; one run per step unless said"
        )
        print(
            "- peak MB: max RSS of the command's largest process (of its whole process tree: "
            f"not a sum), {header['peak_rss']}"
        )
        print(
            "- ratio: dsrepo seconds / the `vs` seconds (below 1: dsrepo faster); cpu s: user + "
            "system seconds of the whole process tree (less sensitive to a busy machine than wall)"
        )
        print()
        for ln in markdown(HEADERS, report_rows(rows)):
            print(ln)
        if errors:
            print()
            print(f"{len(errors)} command(s) failed:")
            for err in errors:
                print(f"- {err}")
        results = {
            "header": header,
            "rows": [
                {
                    "step": row.step,
                    "what": row.what,
                    "vs": row.vs,
                    "ratio": row.ratio(),
                    "note": row.note,
                    "dsrepo": run_to_json(row.dsrepo),
                    "other": run_to_json(row.other),
                }
                for row in rows
            ],
            "errors": errors,
            "crash": crash,
        }
        out = work / f"results-{n}.json"
        out.write_text(json.dumps(results, indent=1) + "\n")
        print(f"\nresults: {out} ({header['seconds']} s)", flush=True)
        if not a.keep:
            progress(f"{label}: removing run-{n}/ (--keep keeps it)")
        bench.cleanup()
    return 1 if failed else 0


def _warm(tree: Path) -> None:
    for dp, _, fs in os.walk(tree):
        for f in fs:
            with open(os.path.join(dp, f), "rb", buffering=0) as fh:
                fh.read()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
