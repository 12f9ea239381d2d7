"""The ```console examples of docs/serve.md, run like those of docs/cli.md (tests/test_docs.py:
the same block format, environment and comparison), plus servers: a step ``dsrepo serve ... &``
starts the real ``dsrepo serve`` in the background (``--port 8465`` becomes ``--port 0``), its
first stdout line gives the port it took, and ``127.0.0.1:8465`` is replaced by that address
in every later command and expected line. The servers stop (SIGINT) when the block ends. Each
block has its own ``HOME`` (for ``~/.config/dsrepo/credentials``)."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
from pathlib import Path

import pytest

from tests.test_docs import (
    COMMAND_TIMEOUT,
    ROOT,
    Block,
    BlockResult,
    StepResult,
    block_env,
    describe_failure,
    output_matches,
    parse_blocks,
)

DOC = ROOT / "docs" / "serve.md"
BLOCKS = parse_blocks(DOC)
_SERVE = re.compile(r"^dsrepo serve\b(.*)&\s*$")
_PORT = re.compile(r"--port\s+(\d+)")


def _start_server(
    command: str, cwd: Path, env: dict[str, str]
) -> tuple[subprocess.Popen[str], str, str]:
    """(process, port the docs name, address it took)."""
    m = _PORT.search(command)
    doc_port = m.group(1) if m else "8465"
    command = _PORT.sub("--port 0", command) if m else f"{command} --port 0"
    proc = subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    found = re.search(r"http://(127\.0\.0\.1:\d+)/", line)
    if found is None:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"{command} did not start: {line!r} {err!r}")
    return proc, doc_port, found.group(1)


def run_serve_block(block: Block, tmp: Path) -> BlockResult:
    result = BlockResult(block)
    work = tmp / "work"
    work.mkdir(parents=True)
    (tmp / "home").mkdir()
    env = block_env(tmp)
    env["HOME"] = str(tmp / "home")
    env.pop("XDG_CONFIG_HOME", None)
    cwd = work
    addresses: dict[str, str] = {}
    servers: list[subprocess.Popen[str]] = []

    def local(text: str) -> str:
        for doc_port, address in addresses.items():
            text = text.replace(f"127.0.0.1:{doc_port}", address)
        return text

    try:
        for step in block.steps:
            words = shlex.split(step.command) if step.command.startswith("cd ") else []
            if len(words) == 2 and words[0] == "cd":
                target = (cwd / words[1]).resolve()
                ok = target.is_dir() and not step.expected
                result.steps.append(StepResult(step, 0 if ok else 1, "", "", ok))
                if not ok:
                    break
                cwd = target
                continue
            m = _SERVE.match(step.command)
            if m:
                proc, doc_port, address = _start_server(step.command.rstrip("& "), cwd, env)
                servers.append(proc)
                addresses[doc_port] = address
                result.steps.append(StepResult(step, 0, "", "", not step.expected))
                continue
            proc_ = subprocess.run(
                ["bash", "-c", local(step.command)],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=COMMAND_TIMEOUT,
            )
            out = proc_.stdout.decode("utf-8", "replace")
            err = proc_.stderr.decode("utf-8", "replace")
            expected = tuple(local(line) for line in step.expected)
            ok = proc_.returncode == 0 and output_matches(expected, out)
            result.steps.append(StepResult(step, proc_.returncode, out, err, ok))
            if not ok:
                break
    finally:
        for proc in servers:
            proc.send_signal(signal.SIGINT)
        for proc in servers:
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
    return result


def test_the_doc_has_examples() -> None:
    assert len(BLOCKS) >= 3
    assert all(any(_SERVE.match(s.command) for s in b.steps) for b in BLOCKS)


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_serve_doc_example(block: Block, tmp_path: Path) -> None:
    result = run_serve_block(block, tmp_path)
    if result.failed is not None or result.error is not None:
        pytest.fail(describe_failure(result), pytrace=False)
    assert os.path.isdir(tmp_path / "work")
