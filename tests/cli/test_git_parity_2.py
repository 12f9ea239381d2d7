"""More behaviours a git user relies on (second review): graph layout, paths relative to the
current directory, chunked content ids, help and messages. Each was found wrong once."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from dsrepo.cli.output import clock
from tests.cli.conftest import Cli


def _commit(cli: Cli, wc: Path, name: str, text: str, msg: str) -> None:
    (wc / name).parent.mkdir(parents=True, exist_ok=True)
    (wc / name).write_text(text)
    cli("add", name)
    cli("commit", "-m", msg)


def _graph(cli: Cli, *args: str) -> list[str]:
    """The graph column of ``log --graph --oneline``: each line without its commit text."""
    lines = cli("log", "--graph", "--oneline", *args).out.splitlines()
    return [re.sub(r" [0-9a-f]{12}.*", "", line) for line in lines]


def _merge_history(cli: Cli, wc: Path) -> None:
    """a - b - M (merge of side s, which forks from a)."""
    _commit(cli, wc, "a.txt", "a", "a")
    cli("branch", "side")
    _commit(cli, wc, "b.txt", "b", "b")
    cli("switch", "side")
    _commit(cli, wc, "s.txt", "s", "s")
    cli("switch", "main")
    cli("merge", "--no-ff", "side")


# ---------------------------------------------------------------- 1, 2: log --graph


def test_graph_limited_through_a_merge_keeps_git_layout(cli: Cli, wc: Path) -> None:
    _merge_history(cli, wc)
    full = _graph(cli)
    assert full[:2] == ["*", "|\\"] and sorted(full[2:4]) == ["* |", "| *"]
    # -n cuts below the merge: the lines drawn are the full graph's first ones (git's layout)
    assert _graph(cli, "-n", "3") == full[:4]
    assert _graph(cli, "-n", "2") == full[:3]
    assert _graph(cli, "-n", "1") == ["*"]


def test_graph_full_format_draws_the_octopus_on_its_header_only(cli: Cli, wc: Path) -> None:
    _commit(cli, wc, "a.txt", "a", "a")
    for name in ("x", "y"):
        cli("switch", "-c", name, "main")
        _commit(cli, wc, f"{name}.txt", name, name)
    cli("switch", "main")
    cli("merge", "x", "y")
    lines = cli("log", "--graph").out.splitlines()
    assert lines[0].startswith("*-. ")
    assert not any("-." in line for line in lines[1:]), lines


# ---------------------------------------------------------------- 3: no --force on merge/pull


def test_merge_fast_forward_over_local_changes_suggests_what_exists(cli: Cli, wc: Path) -> None:
    _commit(cli, wc, "a.txt", "a", "a")
    cli("switch", "-c", "side")
    _commit(cli, wc, "a.txt", "a2", "a2")
    cli("switch", "main")
    (wc / "a.txt").write_text("local")
    r = cli.fail(6, "merge", "side")
    assert "--force to" not in r.err and "checkout --force HEAD" in r.err


# ---------------------------------------------------------------- 4: paths from the current dir


def test_paths_are_relative_to_the_current_directory_in_every_command(
    cli: Cli, wc: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _commit(cli, wc, "sub/a.csv", "1", "one")
    _commit(cli, wc, "a.csv", "1", "a")
    _commit(cli, wc, "sub/deep/b.csv", "1", "two")
    (wc / "sub/a.csv").write_text("2")
    cli("commit", "-a", "-m", "three")
    monkeypatch.chdir(wc / "sub")

    def subjects(*paths: str) -> list[str]:
        lines = cli("log", "--oneline", "--", *paths).out.splitlines()
        return [line.rsplit(" ", 1)[-1] for line in lines]

    assert subjects("a.csv") == ["three", "one"]
    assert subjects("../a.csv") == ["a"]
    # globs: the same rules as add (relative to here; * also crosses /)
    assert subjects("*.csv") == ["three", "two", "one"]
    assert cli("diff", "--name-status", "HEAD~3", "HEAD", "--", "a.csv").out == "M\tsub/a.csv\n"
    assert cli("diff", "--name-status", "HEAD~1", "HEAD", "--", "deep").out == ""
    assert cli("ls-files", "HEAD", "a.csv").out == "sub/a.csv\n"
    assert cli("ls-files", "HEAD", "*.csv").out == "sub/a.csv\nsub/deep/b.csv\n"
    assert cli("ls-files", "HEAD", ".").out == "sub/a.csv\nsub/deep/b.csv\n"
    cli.fail(9, "ls-files", "HEAD", "../../outside")  # PathError, as add gives


# ---------------------------------------------------------------- 5: content id of a chunked file


def test_cat_file_resolves_the_content_id_of_a_chunked_file(cli: Cli, wc: Path) -> None:
    import os

    data = os.urandom(3 * 1024 * 1024 + 17)
    (wc / "big.bin").write_bytes(data)
    cli("add", "big.bin")
    cli("commit", "-m", "big")
    cid = cli("ls-files", "-l", "HEAD").out.split()[2]
    assert cli("hash-object", "big.bin").out.split()[0] == cid
    assert cli("cat-file", "-t", cid).out == "file\n"
    assert cli("cat-file", "-s", cid).out == f"{len(data)}\n"
    assert cli("cat-file", "-p", cid).out_bytes == data
    assert cli("cat-file", "-s", cid[:10]).out == f"{len(data)}\n"  # a prefix too
    cli.fail(4, "cat-file", "-t", "ffff" + cid[4:])


# ---------------------------------------------------------------- 6: help


def _commands() -> list[tuple[str, click.Command]]:
    from dsrepo.cli.main import cli as group

    out: list[tuple[str, click.Command]] = []
    stack: list[tuple[str, click.Command]] = [("dsrepo", group)]
    while stack:
        name, cmd = stack.pop()
        out.append((name, cmd))
        if isinstance(cmd, click.Group):
            stack.extend((f"{name} {n}", c) for n, c in cmd.commands.items())
    return out


CHECKED = {f"dsrepo {c}" for c in ("push", "fetch", "pull", "clone", "get", "mv", "init", "reflog")}


def test_options_have_help_and_no_markup_shows() -> None:
    for name, cmd in _commands():
        if name not in CHECKED and name != "dsrepo serve":
            continue
        assert "``" not in (cmd.help or ""), name
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden:
                assert p.help, (name, p.opts)


@pytest.mark.parametrize(
    ("command", "usage"),
    [
        ("push", "[REMOTE] [REF]..."),
        ("fetch", "[REMOTE]"),
        ("pull", "[REMOTE] [BRANCH]"),
    ],
)
def test_optional_arguments_show_as_optional(cli: Cli, command: str, usage: str) -> None:
    assert cli(command, "--help").out.splitlines()[0].endswith(f"{command} [OPTIONS] {usage}")


def test_pull_over_local_changes_suggests_what_exists(
    cli: Cli, wc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _commit(cli, wc, "a.txt", "a", "a")
    cli("clone", str(wc), str(tmp_path / "b"))
    _commit(cli, wc, "a.txt", "a2", "a2")
    monkeypatch.chdir(tmp_path / "b")
    (tmp_path / "b" / "a.txt").write_text("local")
    r = cli.fail(6, "pull")
    assert "--force to" not in r.err and "checkout --force HEAD" in r.err
    assert "No such option" in cli.fail(2, "pull", "--force").err


# ---------------------------------------------------------------- 7: config outside a repository


def test_config_reads_the_user_config_outside_a_repository(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli("config", "--global", "user.name", "Ada")
    outside = tmp_path / "nowhere"
    outside.mkdir()
    monkeypatch.chdir(outside)
    assert cli("config", "user.name").out == "Ada\n"
    assert "user.name=Ada" in cli("config", "--list").out
    cli.fail(3, "config", "user.name", "Bob")  # writing needs a repository (or --global)


# ---------------------------------------------------------------- 8: switch/checkout messages


def test_switch_to_a_tag_says_it_is_a_tag(cli: Cli, wc: Path) -> None:
    _commit(cli, wc, "a.txt", "a", "a")
    cli("tag", "v1")
    r = cli.fail(4, "switch", "v1")
    assert "is a tag" in r.err and "checkout v1" in r.err


def test_checkout_branch_says_switched(cli: Cli, wc: Path) -> None:
    _commit(cli, wc, "a.txt", "a", "a")
    cli("branch", "side")
    assert "Switched to branch 'side'" in cli("checkout", "side").err


def test_leaving_detached_commits_warns_and_reflog_finds_them(cli: Cli, wc: Path) -> None:
    _commit(cli, wc, "a.txt", "a", "a")
    cli("checkout", "--detach", "main")
    _commit(cli, wc, "b.txt", "b", "on detached head")
    lost = cli("rev-parse", "HEAD").out.strip()
    r = cli("switch", "main")
    assert "leaving 1 commit(s) behind" in r.err and lost[:12] in r.err
    assert lost[:12] in cli("reflog").out
    # back on a branch: nothing is left behind by the next switch
    assert "behind" not in cli("checkout", "main").err


# ---------------------------------------------------------------- 9: output


def test_eta_is_a_clock() -> None:
    assert clock(43670) == "12:07:50"
    assert clock(65) == "1:05"
    assert clock(0) == "0:00"


def test_progress_phases_get_their_own_labelled_lines_and_a_clock_eta(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dsrepo.cli import output

    monkeypatch.setenv("DSREPO_PROGRESS", "1")
    now = [1000.0]
    monkeypatch.setattr("dsrepo.cli.output.time.monotonic", lambda: now[0])
    with output.Progress("clone", False, phases=("receiving objects", "checking out files")) as p:
        now[0] += 0.001
        p(1, 10**6)  # first sample: neither rate nor ETA
        now[0] += 10
        p(1000, 10**6)
        now[0] += 1
        p(10**6, 10**6)
        now[0] += 1
        p(10, 10**6)  # the next phase starts from 0: a new line, not a fall back to 0 %
        now[0] += 1
        p(10**6, 10**6)
    lines = [line.strip() for line in capsys.readouterr().err.replace("\r", "\n").splitlines()]
    lines = [line for line in lines if line]
    assert lines[0] == "clone: receiving objects:   0% (1 B/976.6 KiB)"
    assert lines[1].endswith("ETA 2:46:31)")  # 999000 B at 100 B/s, not "ETA 9991s"
    assert lines[2].startswith("clone: receiving objects: 100%")
    assert lines[3].startswith("clone: checking out files:   0%")
    assert lines[4].startswith("clone: checking out files: 100%")


def test_update_ref_with_a_wrong_old_says_what_it_found(cli: Cli, wc: Path) -> None:
    _commit(cli, wc, "a.txt", "1", "one")
    first = cli("rev-parse", "HEAD").out.strip()
    _commit(cli, wc, "a.txt", "2", "two")
    second = cli("rev-parse", "HEAD").out.strip()
    r = cli.fail(5, "update-ref", "refs/heads/main", first, first)
    assert f"is at {second[:12]}, not {first} ({first[:12]})" in r.err
    assert "concurrently" not in r.err
    r = cli.fail(5, "update-ref", "refs/heads/new", first, second)
    assert "refs/heads/new does not exist" in r.err
    assert "is at" in cli.fail(5, "update-ref", "-d", "refs/heads/main", first).err
    assert cli("rev-parse", "main").out.strip() == second


def test_diff_totals_are_human_and_say_before_and_after(cli: Cli, wc: Path) -> None:
    (wc / "big.bin").write_bytes(b"x" * 3 * 1024 * 1024)
    cli("add", "big.bin")
    cli("commit", "-m", "one")
    (wc / "big.bin").write_bytes(b"y" * 2 * 1024 * 1024)
    (wc / "new.bin").write_bytes(b"n" * 2048)
    cli("add", ".")
    cli("commit", "-m", "two")
    stat = cli("diff", "--stat", "HEAD~1", "HEAD").out.splitlines()
    assert stat[0].endswith("| M 3.0 MiB -> 2.0 MiB")
    assert (
        stat[-1]
        == " 1 added (+2.0 KiB), 0 removed (-0 B), 1 modified (3.0 MiB -> 2.0 MiB), 0 renamed"
    )


def test_demo_prints_commands_a_shell_can_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util
    import subprocess

    path = Path(__file__).parents[2] / "benchmarks" / "demo.py"
    spec = importlib.util.spec_from_file_location("dsrepo_demo", path)
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    done = subprocess.CompletedProcess([], 0, "", "")
    monkeypatch.setattr(demo.subprocess, "run", lambda *a, **k: done)
    demo.run("checkout", "v1", "--only", "images/c01/*", "--into", "/tmp/a b", cwd=Path("."))
    shown = capsys.readouterr().out.strip()
    assert shown == "$ dsrepo checkout v1 --only 'images/c01/*' --into '/tmp/a b'"


# ---------------------------------------------------------------- 10: packaging


def test_license_is_an_spdx_string() -> None:
    text = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert 'license = "Apache-2.0"' in text


def test_bad_age_and_size_options_are_usage_errors(tmp_path: Path) -> None:
    """gc --prune, reflog expire --expire, cache prune --older-than/--max-size share one
    checker: a value their parser refuses is exit 2 while arguments are parsed."""
    from click.testing import CliRunner

    from dsrepo.cli.main import cli

    runner = CliRunner()
    for args in (
        ["gc", "--prune", "bogus"],
        ["cache", "prune", "--older-than", "soon"],
        ["cache", "prune", "--max-size", "lots"],
    ):
        result = runner.invoke(cli, args, env={"DSREPO_CACHE_DIR": str(tmp_path / "c")})
        assert result.exit_code == 2, (args, result.output)
        assert "Invalid value" in result.output, (args, result.output)
