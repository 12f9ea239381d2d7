"""The examples of docs/python.md run, in order, as one session in one folder.

The page is a tutorial: its blocks build on each other. A ```console block runs as in
``tests/test_docs.py`` (each ``$ `` line with ``bash -c``; ``cd DIR`` persists, here for the rest
of the page). A ```python block runs as a script of its own (``python -c``) in the current
folder; the ```text block right after it, if any, is its expected stdout (``...`` alone on a line:
any lines; ``<id>`` and ``<size>``: a run of hex digits). A block fenced ```python requires=MOD
is skipped when MOD cannot be imported.

The environment is test_docs.py's (identity, date, config and cache in the folder), plus the
session's moto S3 server as ``AWS_ENDPOINT_URL`` with dummy credentials and a bucket
``dsrepo-docs``, and Hugging Face caches in the folder.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from dsrepo.remotes.s3_testserver import TEST_CREDENTIALS, MotoServer
from tests.test_docs import COMMAND_TIMEOUT, ROOT, _steps, block_env, output_matches

PAGE = ROOT / "docs" / "python.md"
_FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w-]*)\s*(.*)$")


@dataclass(frozen=True)
class PageBlock:
    kind: str  # "console" or "python"
    line: int
    text: str
    expected: tuple[str, ...] = ()
    requires: str | None = None


def parse_page(path: Path) -> list[PageBlock]:
    """The console and python blocks in page order; a ```text block that follows a python block
    with only blank lines between them is that block's expected output."""
    blocks: list[PageBlock] = []
    fence: str | None = None
    lang, info, start = "", "", 0
    body: list[str] = []
    adjacent = False  # only blank lines since the last python block closed
    for lineno, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = _FENCE.match(text)
        if fence is None:
            if m:
                fence, lang, info, start, body = m.group(1), m.group(2), m.group(3), lineno, []
            elif text.strip():
                adjacent = False
            continue
        if m and m.group(1).startswith(fence) and not m.group(2):
            if lang in ("console", "python"):
                requires = info.removeprefix("requires=").strip() if "requires=" in info else None
                blocks.append(PageBlock(lang, start, "\n".join(body), requires=requires))
            elif lang == "text" and adjacent:
                last = blocks[-1]
                blocks[-1] = PageBlock(last.kind, last.line, last.text, tuple(body), last.requires)
            adjacent = lang == "python"
            fence = None
            continue
        body.append(text)
    assert fence is None, f"{path}:{start}: unterminated code block"
    return blocks


def _expected(lines: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(line.replace("<size>", "<id>") for line in lines)


def _fail(block: PageBlock, what: str, proc: subprocess.CompletedProcess[bytes]) -> None:
    out = proc.stdout.decode("utf-8", "replace")
    err = proc.stderr.decode("utf-8", "replace")
    expected = "\n".join(block.expected) or "(nothing)"
    pytest.fail(
        f"docs/python.md:{block.line}: {what}\nexit code: {proc.returncode}\n"
        f"--- expected stdout\n{expected}\n--- actual stdout\n{out or '(nothing)'}\n"
        f"--- stderr\n{err[-4000:] or '(nothing)'}",
        pytrace=False,
    )


@pytest.mark.slow
def test_python_page_examples_run(tmp_path: Path, moto_server: MotoServer) -> None:
    blocks = parse_page(PAGE)
    assert [b for b in blocks if b.kind == "python"], "docs/python.md has no python examples"
    try:
        moto_server.client().create_bucket(Bucket="dsrepo-docs")
    except Exception as exc:  # another run in this session made it: start from an empty one
        if "BucketAlready" not in type(exc).__name__ + str(exc):
            raise
        bucket = moto_server.client()
        for obj in bucket.list_objects_v2(Bucket="dsrepo-docs").get("Contents", []):
            bucket.delete_object(Bucket="dsrepo-docs", Key=obj["Key"])
    env = block_env(tmp_path, tmp_path / "pycache")
    env.update(TEST_CREDENTIALS)
    env.update(
        AWS_ENDPOINT_URL=moto_server.endpoint_url,
        AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        HF_HOME=str(tmp_path / "hf"),
        HF_DATASETS_CACHE=str(tmp_path / "hf" / "datasets"),
    )
    env.pop("AWS_PROFILE", None)
    cwd = tmp_path / "work"
    cwd.mkdir()
    for block in blocks:
        if block.requires and importlib.util.find_spec(block.requires) is None:
            continue
        if block.kind == "python":
            proc = subprocess.run(
                [sys.executable, "-c", block.text],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=4 * COMMAND_TIMEOUT,
            )
            stdout = proc.stdout.decode("utf-8", "replace")
            if proc.returncode != 0 or not output_matches(_expected(block.expected), stdout):
                _fail(block, "python example", proc)
            continue
        for step in _steps(
            [(block.line + i + 1, t) for i, t in enumerate(block.text.splitlines())],
            f"docs/python.md:{block.line}",
        ):
            words = shlex.split(step.command) if step.command.startswith("cd ") else []
            if len(words) == 2 and words[0] == "cd":
                cwd = (cwd / words[1]).resolve()
                assert cwd.is_dir(), f"docs/python.md:{step.line}: no folder {cwd}"
                continue
            proc = subprocess.run(
                ["bash", "-c", step.command],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=COMMAND_TIMEOUT,
            )
            if proc.returncode != 0 or not output_matches(
                step.expected, proc.stdout.decode("utf-8", "replace")
            ):
                _fail(
                    PageBlock("console", step.line, step.command, step.expected),
                    f"$ {step.command}",
                    proc,
                )


def test_page_parses_into_console_python_and_outputs() -> None:
    blocks = parse_page(PAGE)
    kinds = [b.kind for b in blocks]
    assert "console" in kinds and kinds.count("python") >= 6
    assert any(b.requires == "torch" for b in blocks)
    # every python example that prints something states what
    assert all(b.expected for b in blocks if b.kind == "python" and "print(" in b.text)
