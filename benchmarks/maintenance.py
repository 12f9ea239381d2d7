"""E) maintenance: ``dsrepo gc --prune=now`` on a repository where about 20% of the pack bytes
are garbage (a commit of new files, undone with ``update-ref`` and its reflog expired), built in
ten commits (so also twenty small packs to merge): the bytes reclaimed beside the garbage
written, and the gc time beside ``cp -r`` of the packs (gc reads, verifies and rewrites them)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from common import (
    Report,
    Row,
    Sizes,
    bench_env,
    dsrepo_exe,
    du,
    fmt_mib,
    fmt_s,
    progress,
    record_step,
    rmtree,
    verdict,
)

COMMITS = 10
FILE_BYTES = 16 << 10
GARBAGE_SHARE = 0.2


def section_maintenance(work: Path, sizes: Sizes, rep: Report, keep: bool) -> None:
    d = work / "maintenance"
    rmtree(d)
    wk = d / "repo"
    wk.mkdir(parents=True)
    env = bench_env(work)
    ds = shlex.quote(dsrepo_exe())
    raw: dict[str, Any] = {}
    rep.raw["maintenance"] = raw
    steps: dict[str, Any] = raw.setdefault("steps", {})

    def step(where: str, cmd: str, cwd: Path = wk) -> Any:
        return record_step(rep, steps, where, cmd, cwd, env)

    n_files = max(sizes.n_small, COMMITS)
    progress(f"E: {COMMITS} commits of {n_files} files of {FILE_BYTES >> 10} KiB in all")
    step("init", f"{ds} init -q .")
    per_commit = n_files // COMMITS
    for c in range(COMMITS):
        sub = wk / f"part{c:02d}"
        sub.mkdir()
        for i in range(per_commit):
            (sub / f"f{i:05d}.bin").write_bytes(os.urandom(FILE_BYTES))
        step(f"commit{c}", f"{ds} add . && {ds} commit -q -m v{c}")
    live = du(wk / ".dsrepo" / "packs")

    progress("E: ~20% garbage: a commit of new files, undone, its reflog expired")
    junk = wk / "junk"
    junk.mkdir()
    n_junk = max(1, int(per_commit * COMMITS * GARBAGE_SHARE / (1 - GARBAGE_SHARE)))
    for i in range(n_junk):
        (junk / f"j{i:05d}.bin").write_bytes(os.urandom(FILE_BYTES))
    step("junk", f"{ds} add . && {ds} commit -q -m junk")
    before = du(wk / ".dsrepo" / "packs")
    garbage = before - live
    step(
        "undo",
        f"{ds} update-ref refs/heads/main HEAD~1 && {ds} checkout -q --force main && "
        f"{ds} reflog expire -q --expire=now --all",
    )
    raw.update(live_bytes=live, garbage_bytes=garbage, before_bytes=before)

    progress("E: cp -r of the packs (baseline)")
    cp = step("cp", "cp -r .dsrepo/packs packs-copy && sync")
    rmtree(wk / "packs-copy")
    progress("E1/E2: dsrepo gc --prune=now")
    gc = step("gc", f"{ds} gc --prune=now && sync")
    after = du(wk / ".dsrepo" / "packs")
    reclaimed = before - after
    fsck = step("fsck", f"{ds} fsck -q")
    raw.update(after_bytes=after, reclaimed_bytes=reclaimed, gc_output=gc.stdout, fsck=fsck.ok)
    share = reclaimed / garbage if garbage else 0.0
    rep.rows.append(
        Row(
            "E1",
            f"gc --prune=now with {100 * garbage / before:.0f}% garbage: bytes reclaimed vs garbage",
            fmt_mib(reclaimed),
            fmt_mib(garbage),
            f"{share:.2f}",
            ">= 0.95",
            verdict(share >= 0.95) if gc.ok and fsck.ok else "ERROR",
            {"reclaimed": reclaimed, "garbage": garbage, "before": before, "after": after},
        )
    )
    ratio = gc.seconds / cp.seconds if cp.seconds else 0.0
    rep.rows.append(
        Row(
            "E2",
            f"gc --prune=now time, {fmt_mib(before)} of packs (s) vs cp -r of the packs",
            fmt_s(gc.seconds),
            fmt_s(cp.seconds),
            f"{ratio:.2f}",
            "<= 3x",
            verdict(ratio <= 3) if gc.ok else "ERROR",
            {"seconds": gc.seconds, "cp_seconds": cp.seconds, "ratio": ratio},
        )
    )
    if not keep:
        rmtree(d)
