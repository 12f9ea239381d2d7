"""benchmarks/scale.py runs end to end on a tiny tree (2,000 files) and prints every step.

No timing assertions: the numbers of a smoke run mean nothing; only that the script still works
against the current CLI (every dsrepo and git command succeeds, the table and results-N.json are
written, the generated tree is cached and reused, working copies are removed).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCALE = Path(__file__).resolve().parents[1] / "benchmarks" / "scale.py"
ALL_STEPS = ["0", "1", "2", "3", "4", "5a", "5b", "6a", "6b", "7a", "7b", "8", "9", "10a", "10b"]


def run(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCALE), str(work), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DSREPO_BENCH_SETTLE": "0"},  # no wait after deletes: not timed here
    )


@pytest.mark.slow
def test_scale_smoke(tmp_path: Path) -> None:
    work = tmp_path / "scale"
    r = run(work, "--sizes", "2k")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    assert "## dsrepo vs git, 2,000 files" in out
    for step in ALL_STEPS:
        assert re.search(rf"^\| {step}\s+\|", out, re.M), f"no step {step} row in:\n{out}"
    assert "FAILED" not in out and "TIMEOUT" not in out, out

    results = json.loads((work / "results-2000.json").read_text())
    assert results["errors"] == []
    assert results["header"]["tree"]["files"] == 2000
    assert results["header"]["tree"]["cached"] is False
    rows = results["rows"]
    assert sorted({row["step"] for row in rows}, key=ALL_STEPS.index) == ALL_STEPS
    for row in rows:
        for side in ("dsrepo", "other"):
            run_ = row[side]
            if run_ is not None:
                assert run_["ok"], row
                assert run_["seconds"] > 0 and run_["peak_kib"], row
    by_step = {row["step"]: row for row in rows}
    assert by_step["4"]["note"] == "`modified:` lines: dsrepo 100, git 100"
    assert by_step["7b"]["note"] == "lines: dsrepo 2000, git 2000"
    for step in ("9", "10a"):  # checkout --into and clone: file count and a spot check
        notes = [row["note"] for row in rows if row["step"] == step and row["note"]]
        assert notes and all(n.startswith("verified") for n in notes), notes
    # the tree is cached, the working copies are gone
    names = {p.name for p in work.iterdir()}
    assert {"tree-2000", "tree-2000.json", "results-2000.json"} <= names
    assert "run-2000" not in names
    assert "trash" not in names  # the deleted trees went there, and it was emptied

    # a second run reuses the cached tree; --steps picks steps (1 and 2 always run)
    r = run(work, "--sizes", "2000", "--steps", "3")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    results = json.loads((work / "results-2000.json").read_text())
    assert results["header"]["tree"]["cached"] is True
    assert [row["step"] for row in results["rows"]] == ["0", "0", "1", "2", "3"]
