"""benchmarks/run.py runs end to end at tiny sizes and prints every metric line.

No timing assertions: the numbers of a smoke run mean nothing; only that the benchmark still works
against the current code (CLI, store API, workload generator, remotes, report, results.json). The
sections run as several tests, so ``pytest -n 2`` runs them side by side.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
VERDICTS = {"OK", "MISS", "info", "n/a"}
GROUPS = {
    # --only: (row ids, memory row ids), in the order they are printed
    "store,porcelain,git": (
        ["A1", "A2", "A3", "B1", "B2", "B3", "B4", "B5", "C1"],
        [f"M{i}" for i in range(1, 12)],
    ),
    "remotes": ([f"D{i}" for i in range(1, 13)], [f"M{i}" for i in range(12, 19)]),
    "gc": (["E1", "E2"], []),
    "reading": (["F1", "F2", "F3"], []),
    "serve": (["G1", "G2", "G3"], []),
}


@pytest.mark.slow
@pytest.mark.parametrize("only", list(GROUPS))
def test_bench_smoke(tmp_path: Path, only: str) -> None:
    row_ids, memory_ids = GROUPS[only]
    work = tmp_path / "bench"
    r = subprocess.run(
        [sys.executable, str(RUN), str(work), "--smoke", "--only", only],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "DSREPO_BENCH_SETTLE": "0"},  # no wait after deletes: not timed here
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    for row in row_ids + memory_ids:
        assert re.search(rf"^{row}\s+\|", out, re.M), f"no {row} line in:\n{out}"
    for row in row_ids:
        line = re.search(rf"^{row}\s+\|.*$", out, re.M)
        assert line is not None
        assert line.group(0).rsplit("|", 1)[1].strip() in VERDICTS, line.group(0)
    assert "step(s) crashed" not in out

    results = json.loads((work / "results.json").read_text())
    assert [row["id"] for row in results["rows"]] == row_ids
    assert [m["id"] for m in results["memory"]] == memory_ids
    assert results["errors"] == []
    assert results["header"]["smoke"] is True
    if only == "remotes":
        rows = {row["id"]: row for row in results["rows"]}
        # both clones were compared with the data, and the transfer counts were recorded
        assert rows["D2"]["raw"]["verified"] is True
        assert rows["D3"]["raw"]["changed_bytes"] > 0
        assert rows["D4"]["raw"]["requests"] > 0
        assert rows["D11"]["raw"]["verified"] is True
        assert rows["D11"]["raw"]["downloaded"] == "0 B"  # the second get downloads nothing
        if rows["D5"]["ok"] != "n/a":  # moto installed
            assert rows["D7"]["raw"]["verified"] is True
            assert rows["D6"]["raw"]["stats"]["bytes_sent"] > 0
            assert rows["D8"]["raw"]["stats"]["bytes_received"] > 0
    if only == "reading":
        rows = {row["id"]: row for row in results["rows"]}
        if rows["F1"]["ok"] != "n/a":  # moto and pyarrow installed
            # one column was read, and fewer bytes came over than the whole file
            assert 0 < rows["F2"]["raw"]["bytes_received"] < rows["F2"]["raw"]["file_bytes"]
            assert rows["F3"]["raw"]["requests"] > 0
    if only == "serve":
        rows = {row["id"]: row for row in results["rows"]}
        assert rows["G1"]["raw"]["requests"] > 0
        assert rows["G3"]["ok"] == "OK", rows["G3"]  # every pushed commit is there, fsck clean
    # generated data and repositories are removed unless --keep
    assert sorted(p.name for p in work.iterdir()) == ["results.json"]
