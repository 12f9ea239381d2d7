"""The ```console examples of docs/cli.md (and README.md) are run and their output compared.

Block format::

    $ dsrepo init -q data        a command: the text after "$ ", run with ``bash -c``
    $ cd data                    "cd DIR" is handled here: the directory persists in the block
    expected stdout line         every line up to the next "$ " or the end of the block
    ...                          alone on a line: any number of lines (also none)
    [main <id>] first            <id>: any run of lowercase hex characters

Each block runs in a fresh temporary directory with a fixed identity and date
(DSREPO_AUTHOR_NAME=Ada, DSREPO_AUTHOR_EMAIL=ada@example.com, DSREPO_AUTHOR_DATE=1700000000),
TZ=UTC, DSREPO_CONFIG_GLOBAL and DSREPO_CACHE_DIR (the cache of ``dsrepo get``) in that
directory, and the venv's ``bin`` first on PATH. Only stdout is compared; runs of spaces and tabs
compare equal and trailing blanks are ignored. Every command must exit 0: an example of a failing
command shows its exit code itself (``...; echo "exit $?"``).

Each dsrepo process costs a few hundred milliseconds of start-up (mostly imports), so the blocks,
which are independent, all start at once in a thread pool and each test waits for its own block
(under pytest-xdist each test runs its block itself); and the children get a bytecode cache
(PYTHONPYCACHEPREFIX, in pytest's temporary directory) even when PYTHONDONTWRITEBYTECODE is set.
A block that fails stops at its first wrong step and reports the command, both outputs and stderr.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = [ROOT / "docs" / "cli.md", ROOT / "README.md"]
BIN = Path(sys.executable).parent
COMMAND_TIMEOUT = 60
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w-]*)")


@dataclass(frozen=True)
class Step:
    command: str
    expected: tuple[str, ...]
    line: int


@dataclass(frozen=True)
class Block:
    id: str
    path: Path
    line: int
    steps: tuple[Step, ...]

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _slug(heading: str) -> str:
    text = re.sub(r"[`*_]", "", heading).strip().lower()
    return re.sub(r"[^a-z0-9.-]+", "-", text).strip("-") or "block"


def _steps(lines: list[tuple[int, str]], where: str) -> tuple[Step, ...]:
    steps: list[Step] = []
    command: tuple[int, str] | None = None
    expected: list[str] = []
    for lineno, text in lines:
        if text.startswith("$ "):
            if command is not None:
                steps.append(Step(command[1], tuple(expected), command[0]))
            command, expected = (lineno, text[2:].strip()), []
        elif command is None:
            if text.strip():
                raise ValueError(f"{where}:{lineno}: output before the first '$ ' command")
        else:
            expected.append(text)
    if command is not None:
        steps.append(Step(command[1], tuple(expected), command[0]))
    return tuple(steps)


def parse_blocks(path: Path) -> list[Block]:
    """Every ```console block of ``path``, named after the heading above it."""
    blocks: list[Block] = []
    heading = path.stem
    fence: str | None = None
    console = False
    start = 0
    body: list[tuple[int, str]] = []
    for lineno, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = _FENCE.match(text)
        if fence is None:
            if m:
                fence, console, start, body = m.group(1), m.group(2) == "console", lineno, []
                continue
            h = _HEADING.match(text)
            if h:
                heading = h.group(2)
            continue
        if m and m.group(1).startswith(fence) and not m.group(2):
            if console:
                where = f"{path.relative_to(ROOT)}:{start}"
                blocks.append(Block(_slug(heading), path, start, _steps(body, where)))
            fence = None
            continue
        body.append((lineno, text))
    if fence is not None:
        raise ValueError(f"{path}:{start}: unterminated code block")
    seen: dict[str, int] = {}
    named = []
    for b in blocks:
        seen[b.id] = seen.get(b.id, 0) + 1
        name = b.id if seen[b.id] == 1 else f"{b.id}-{seen[b.id]}"
        named.append(Block(name, b.path, b.line, b.steps))
    return named


def all_blocks() -> list[Block]:
    blocks: list[Block] = []
    for path in DOC_FILES:
        if path.exists():
            for b in parse_blocks(path):
                prefix = "" if path.name == "cli.md" else f"{path.stem}-"
                blocks.append(Block(prefix + b.id, b.path, b.line, b.steps))
    return blocks


# ---------------------------------------------------------------- comparing


def _normalize(line: str) -> str:
    return re.sub(r"[ \t]+", " ", line).rstrip()


def expected_pattern(expected: tuple[str, ...]) -> re.Pattern[str]:
    """A regex matching stdout (normalized, "\\n" after every line) as the expected lines allow."""
    parts = []
    for line in expected:
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            pieces = [re.escape(p) for p in _normalize(line).split("<id>")]
            parts.append("[0-9a-f]+".join(pieces) + r"\n")
    return re.compile("".join(parts))


def output_matches(expected: tuple[str, ...], stdout: str) -> bool:
    lines = stdout.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    exp = list(expected)
    while exp and not exp[-1].strip():
        exp.pop()
    text = "".join(_normalize(line) + "\n" for line in lines)
    return expected_pattern(tuple(exp)).fullmatch(text) is not None


# ---------------------------------------------------------------- running


@dataclass
class StepResult:
    step: Step
    code: int
    stdout: str
    stderr: str
    ok: bool


@dataclass
class BlockResult:
    block: Block
    steps: list[StepResult] = field(default_factory=list)
    error: str | None = None

    @property
    def failed(self) -> StepResult | None:
        return next((s for s in self.steps if not s.ok), None)


def block_env(tmp: Path, pycache: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSREPO_")}
    if pycache is not None:
        # Compiling dsrepo's sources dominates a dsrepo start-up when bytecode is not cached
        # (PYTHONDONTWRITEBYTECODE=1): cache it outside the source tree, shared by all blocks.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env.update(
        DSREPO_AUTHOR_NAME="Ada",
        DSREPO_AUTHOR_EMAIL="ada@example.com",
        DSREPO_AUTHOR_DATE="1700000000",
        DSREPO_CONFIG_GLOBAL=str(tmp / "gconfig"),
        DSREPO_CACHE_DIR=str(tmp / "cache"),
        TZ="UTC",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def run_block(block: Block, tmp: Path, pycache: Path | None = None) -> BlockResult:
    """Run the steps in order; stop at the first one whose output or exit code is wrong."""
    result = BlockResult(block)
    work = tmp / "work"
    work.mkdir(parents=True)
    env = block_env(tmp, pycache)
    cwd = work
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
        proc = subprocess.run(
            ["bash", "-c", step.command],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
        )
        out = proc.stdout.decode("utf-8", "replace")
        err = proc.stderr.decode("utf-8", "replace")
        ok = proc.returncode == 0 and output_matches(step.expected, out)
        result.steps.append(StepResult(step, proc.returncode, out, err, ok))
        if not ok:
            break
    return result


def _ended(text: str) -> str:
    return text if text.endswith("\n") else f"{text or '(nothing)'}\n"


def describe_failure(result: BlockResult) -> str:
    failed = result.failed
    if result.error is not None or failed is None:
        return f"{result.block.where}: {result.error}"
    step = failed.step
    expected = "\n".join(step.expected) or "(nothing)"
    return (
        f"{result.block.where}: line {step.line}: $ {step.command}\n"
        f"exit code: {failed.code}\n"
        f"--- expected stdout\n{expected}\n"
        f"--- actual stdout\n{_ended(failed.stdout)}"
        f"--- stderr\n{_ended(failed.stderr)}"
    )


BLOCKS = all_blocks()


Runner = Callable[[Block], BlockResult]


@pytest.fixture(scope="module")
def run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runner]:
    """``run(block)`` -> its result. The selected blocks are all started at once in a thread
    pool, so each test only waits for its own block; under pytest-xdist, which spreads the tests
    over processes itself, each block runs in its test."""
    pycache = tmp_path_factory.mktemp("pycache")

    def job(block: Block, tmp: Path) -> BlockResult:
        try:
            return run_block(block, tmp, pycache)
        except Exception as exc:  # a timeout, say: report it on that block
            return BlockResult(block, error=f"{type(exc).__name__}: {exc}")

    def inline(block: Block) -> BlockResult:
        return job(block, tmp_path_factory.mktemp(f"doc-{block.id}"[:40]))

    if hasattr(request.config, "workerinput"):
        yield inline
        return
    wanted = {
        item.callspec.params["block"].id: item.callspec.params["block"]
        for item in request.session.items
        if getattr(item, "module", None) is sys.modules[__name__] and hasattr(item, "callspec")
    }
    workers = max(2, min(8, 2 * (os.cpu_count() or 1)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {
            bid: pool.submit(job, b, tmp_path_factory.mktemp(f"doc-{bid}"[:40]))
            for bid, b in wanted.items()
        }
        yield lambda block: futures[block.id].result() if block.id in futures else inline(block)


def test_docs_have_console_blocks() -> None:
    assert (ROOT / "docs" / "cli.md").exists()
    assert BLOCKS, "docs/cli.md has no ```console blocks"
    for b in BLOCKS:
        assert b.steps, f"{b.where}: empty console block"


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_console_block(block: Block, run: Runner) -> None:
    result = run(block)
    if result.error is not None or result.failed is not None:
        pytest.fail(describe_failure(result), pytrace=False)
