"""B) everyday porcelain: the real ``dsrepo`` CLI on the shared peer workload beside ``cp -r``
(first commit, no-op status, commit of a change, store growth, checkout of the first version), and
C) the reference: ``git add -A && git commit`` of the same data."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path
from typing import Any

from common import (
    MemRow,
    Report,
    Row,
    Sizes,
    Step,
    bench_env,
    count_files,
    dsrepo_exe,
    du,
    fmt_s,
    load_workload,
    progress,
    record_step,
    rmtree,
    same_tree,
    sync,
    verdict,
    warm,
)


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
        return record_step(rep, raw.setdefault("steps", {}), where, cmd, cwd, env)

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
                "<= 1.2x",
                verdict(r5 <= 1.2) if co.ok and diff is None else "ERROR",
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
