"""A) storage core: ``write_file`` + ``flush`` throughput beside read + BLAKE3, pack growth for
1 MiB inserted mid-file, and peak memory of each store. Each store step and its baseline run in a
fresh interpreter (``run.py _child``, see ``children.child_main``)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import (
    BLOCK,
    RUN_PY,
    MemRow,
    MiB,
    Report,
    Row,
    Sizes,
    fmt_kib,
    fmt_mib,
    progress,
    rmtree,
    sync,
    verdict,
    warm,
)


def run_child(op: str, *args: str) -> dict[str, Any]:
    """One store step in a fresh interpreter (its peak RSS is its own); see children.child_main."""
    r = subprocess.run(
        [sys.executable, str(RUN_PY), "_child", op, *args],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise RuntimeError(f"child {op} {' '.join(args)} failed (exit {r.returncode}):\n{r.stderr}")
    result: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    return result


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
