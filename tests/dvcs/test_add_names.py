"""A file whose name no tree may hold is refused at ``add``, naming the file, with nothing staged."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsrepo import Repository
from dsrepo.dvcs.errors import PathError


def test_add_refuses_a_backslash_name_and_stages_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSREPO_CONFIG_GLOBAL", str(tmp_path / "g"))
    repo = Repository.init(tmp_path / "w")
    (repo.root / "ok.txt").write_text("fine")
    (repo.root / "bad\\name.txt").write_text("windows would split this")
    with pytest.raises(PathError, match=r"bad\\\\name.txt"):
        repo.add(".")
    assert repo.status().staged_added == ()
