"""benchmarks/run.py runs end to end at tiny sizes and prints every metric line.

No timing assertions: the numbers of a smoke run mean nothing; only that the benchmark still works
against the current code (CLI, store API, workload generator, report, results.json).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
ROW_IDS = ["A1", "A2", "A3", "B1", "B2", "B3", "B4", "B5", "C1"]
MEMORY_IDS = [f"M{i}" for i in range(1, 12)]
VERDICTS = {"OK", "MISS", "info", "n/a"}


@pytest.mark.slow
def test_bench_smoke(tmp_path: Path) -> None:
    work = tmp_path / "bench"
    r = subprocess.run(
        [sys.executable, str(RUN), str(work), "--smoke"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    for row in ROW_IDS + MEMORY_IDS:
        assert re.search(rf"^{row}\s+\|", out, re.M), f"no {row} line in:\n{out}"
    for row in ROW_IDS:
        line = re.search(rf"^{row}\s+\|.*$", out, re.M)
        assert line is not None
        assert line.group(0).rsplit("|", 1)[1].strip() in VERDICTS, line.group(0)
    assert "step(s) crashed" not in out

    results = json.loads((work / "results.json").read_text())
    assert [row["id"] for row in results["rows"]] == ROW_IDS
    assert [m["id"] for m in results["memory"]] == MEMORY_IDS
    assert results["errors"] == []
    assert results["header"]["smoke"] is True
    # generated data and repositories are removed unless --keep
    assert sorted(p.name for p in work.iterdir()) == ["results.json"]
