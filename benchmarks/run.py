#!/usr/bin/env python3
"""dsrepo benchmark: every timing beside its baseline, measured in the same run.

    .venv/bin/python benchmarks/run.py WORKDIR [--smoke] [--only store,...,reading,serve] [--keep]

A) storage core: ``ObjectStore.write_file`` + ``flush`` throughput beside plain read + BLAKE3,
   store growth for 1 MiB inserted in the middle of a large file, peak memory of each store.
B) porcelain: the real ``dsrepo`` CLI on the shared peer workload (10,000 small files + two
   128 MiB files) beside ``cp -r``: first commit, no-op status, commit of a change, store growth,
   checkout of the first version.
C) reference (only when on PATH): ``git add -A && git commit`` of the same data.
D) remotes: on the same workload, ``dsrepo push`` / ``dsrepo clone`` with a directory remote beside
   ``cp -r``, the bytes and requests of pushing the change, and the same on S3 (moto on loopback).
E) gc: ``dsrepo gc --prune=now`` on a repository with ~20% garbage: bytes reclaimed beside the
   garbage, gc time beside ``cp -r`` of the packs.
F) reading: one column of a ~200 MB parquet file read with pyarrow through ``dsrepo+s3://``
   (moto) beside boto3's ``get_object`` of the whole file: time, bytes over the column's bytes.
G) serve: ``dsrepo serve`` under 16 concurrent clones and 4 pushers for a few rounds:
   requests/s, p95 latency, nothing lost.

Prints one table (step | dsrepo | baseline | ratio | target | ok?) and a peak-memory table, and
writes WORKDIR/results.json. A MISS is information: the exit status is 0 unless a step crashed.
See benchmarks/README.md for what each number means.

This file parses the arguments, runs the chosen sections and prints the report; the sections are
store.py (A), porcelain.py (B, C), remotes.py (D), maintenance.py (E), reading.py (F) and
serving.py (G); common.py holds their shared helpers and
children.py the ``_child`` / ``_cli`` / ``_setup`` steps they run in subprocesses.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the modules beside this script (python puts it first, unless -P)
    sys.path.insert(0, str(HERE))

from common import (  # noqa: E402
    FULL,
    SMOKE,
    Report,
    defer_deletes,
    empty_trash,
    git_commit,
    print_report,
)
from maintenance import section_maintenance  # noqa: E402
from porcelain import section_porcelain  # noqa: E402
from reading import section_reading  # noqa: E402
from remotes import section_remotes  # noqa: E402
from serving import section_serving  # noqa: E402
from store import section_store  # noqa: E402

SECTIONS = ("store", "porcelain", "git", "remotes", "gc", "reading", "serve")


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("_child", "_cli", "_setup", "_read", "_serve"):
        import children
        import reading
        import serving

        entry = {
            "_child": children.child_main,
            "_cli": children.cli_main,
            "_setup": children.setup_main,
            "_read": reading.read_main,
            "_serve": serving.serve_main,
        }
        entry[argv[0]](argv[1:])
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
    steps: list[tuple[bool, str, str, Callable[[], None]]] = [
        ("store" in sections, "A) storage core", "store",
         lambda: section_store(work, sizes, rep, a.keep)),
        (bool(sections & {"porcelain", "git"}),
         "B) porcelain" + (" / C) git reference" if "git" in sections else ""), "porcelain",
         lambda: section_porcelain(work, sizes, rep, a.keep, sections)),
        ("remotes" in sections, "D) remotes", "remotes",
         lambda: section_remotes(work, sizes, rep, a.keep)),
        ("gc" in sections, "E) gc", "gc", lambda: section_maintenance(work, sizes, rep, a.keep)),
        ("reading" in sections, "F) reading", "reading",
         lambda: section_reading(work, sizes, rep, a.keep)),
        ("serve" in sections, "G) serve", "serve",
         lambda: section_serving(work, sizes, rep, a.keep)),
    ]  # fmt: skip
    defer_deletes(work / "trash")  # no step waits for a delete (common.SETTLE_SECONDS)
    try:
        for wanted, title, name, run in steps:
            if not wanted:
                continue
            print(title, flush=True)
            try:
                run()
            except Exception:  # a crashed section is reported; the others still run
                rep.error(f"{name} section", traceback.format_exc())
    finally:
        empty_trash()
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
