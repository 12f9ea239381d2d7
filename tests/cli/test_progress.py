"""Progress goes to stderr only when asked for (a terminal, or DSREPO_PROGRESS=1); -q silences it."""

from __future__ import annotations

import os
from pathlib import Path

from tests.cli.conftest import Dsrepo


def test_add_reports_progress_on_stderr_and_q_silences_it(tmp_path: Path, dsrepo: Dsrepo) -> None:
    wc = tmp_path / "wc"
    wc.mkdir()
    assert dsrepo.run(wc, "init", "-q").code == 0
    (wc / "data.bin").write_bytes(os.urandom(3 << 20))
    shown = dsrepo.run(wc, "add", ".", env={"DSREPO_PROGRESS": "1"})
    assert shown.code == 0 and "hashing:" in shown.err and shown.out == ""
    (wc / "more.bin").write_bytes(os.urandom(1 << 20))
    quiet = dsrepo.run(wc, "add", "-q", ".", env={"DSREPO_PROGRESS": "1"})
    assert quiet.code == 0 and quiet.err == ""
    plain = dsrepo.run(wc, "status")  # not a terminal, not asked: nothing on stderr
    assert plain.err == ""
