"""Plumbing commands: hash-object, cat-file, ls-tree, rev-parse, update-ref, count-objects,
fsck."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from blake3 import blake3

from dsrepo import Repository
from dsrepo.objects.ids import from_hex
from tests.cli.conftest import Cli, assert_one_error_line, write

ZERO = "0" * 64


@pytest.fixture
def two_commits(wc: Path, cli: Cli) -> dict[str, str]:
    write(wc, "top.txt", "top\n")
    write(wc, "dir/inner.bin", random.Random(1).randbytes(1500))
    write(wc, "dir/sub/deep.txt", "deep\n")
    cli("add", ".")
    cli("commit", "-q", "-m", "first", "--meta", "k=v")
    c1 = cli("rev-parse", "HEAD").out.strip()
    write(wc, "top.txt", "top 2\n")
    cli("commit", "-q", "-a", "-m", "second")
    c2 = cli("rev-parse", "HEAD").out.strip()
    return {"c1": c1, "c2": c2}


def test_hash_object(wc: Path, cli: Cli) -> None:
    data = b"some content\n"
    write(wc, "f.txt", data)
    big = random.Random(2).randbytes(2 * 1024 * 1024 + 5)
    write(wc, "big.bin", big)
    out = cli("hash-object", "f.txt", "big.bin").out.split()
    assert out == [blake3(data).hexdigest(), blake3(big).hexdigest()]
    assert cli("hash-object", "-", stdin=data).out.strip() == blake3(data).hexdigest()
    # without -w nothing is stored
    assert_one_error_line(cli.fail(4, "cat-file", "-p", blake3(data).hexdigest()))
    assert cli("hash-object", "-w", "f.txt").out.strip() == blake3(data).hexdigest()
    assert cli("cat-file", "-p", blake3(data).hexdigest()).out_bytes == data
    assert cli("cat-file", "-t", blake3(data).hexdigest()).out.strip() == "chunk"
    stdin_data = b"from stdin"
    oid = cli("hash-object", "-w", "-", stdin=stdin_data).out.strip()
    assert cli("cat-file", "-p", oid).out_bytes == stdin_data
    # a large file is stored chunked: its content id is what ls-files shows, not an object
    assert cli("hash-object", "-w", "big.bin").out.strip() == blake3(big).hexdigest()
    with Repository.open(wc) as repo:
        assert repo.store.has(from_hex(blake3(big[:1000]).hexdigest())) is False
        assert repo.store.index.count() > 10


def test_cat_file_every_type(two_commits: dict[str, str], cli: Cli) -> None:
    c1, c2 = two_commits["c1"], two_commits["c2"]
    assert cli("cat-file", "-t", c2).out.strip() == "commit"
    pretty = cli("cat-file", "-p", c2).out
    lines = pretty.splitlines()
    tree = cli("rev-parse", "HEAD^{tree}").out.strip()
    assert lines[0] == f"tree {tree}"
    assert lines[1] == f"parent {c1}"
    assert lines[2].startswith("author Test User <test@example.com> ")
    assert lines[3].startswith("committer Test User <test@example.com> ")
    assert pretty.endswith("\n\nsecond\n")
    meta_line = next(
        line for line in cli("cat-file", "-p", c1).out.splitlines() if line.startswith("metadata ")
    )
    assert json.loads(meta_line[len("metadata ") :]) == {"k": "v"}
    assert not any(
        line.startswith("parent ") for line in cli("cat-file", "-p", c1).out.splitlines()
    )

    assert cli("cat-file", "-t", tree).out.strip() == "tree"
    rows = cli("cat-file", "-p", tree).out.splitlines()
    assert [r.split("\t")[1] for r in rows] == ["dir", "top.txt"]
    assert rows[0].startswith("tree ") and rows[1].startswith("file ")
    assert int(cli("cat-file", "-s", tree).out) > 0

    cli("tag", "-a", "v1", "-m", "tag message", c1)
    tag = cli("rev-parse", "v1").out.strip()
    assert cli("cat-file", "-t", tag).out.strip() == "tag"
    tag_lines = cli("cat-file", "-p", "v1").out.splitlines()
    assert tag_lines[:3] == [f"object {c1}", "type commit", "tag v1"]
    assert tag_lines[-1] == "tag message"

    assert cli("cat-file", "-p", "HEAD:dir/sub/deep.txt").out_bytes == b"deep\n"
    assert cli("cat-file", "-s", "HEAD:dir/inner.bin").out.strip() == "1500"
    assert "exactly one of" in cli.fail(2, "cat-file", "-t", "-p", "HEAD").err  # click usage error


def test_cat_file_of_a_manifest(wc: Path, cli: Cli) -> None:
    big = random.Random(3).randbytes(3 * 1024 * 1024)
    write(wc, "big.bin", big)
    cli("add", ".")
    cli("commit", "-q", "-m", "big")
    with Repository.open(wc) as repo:
        [entry] = [e for _, e in repo.walk_tree(repo.commit_tree(repo.head_commit()))]
        assert entry.manifest is not None
        manifest = entry.manifest.hex()
    assert cli("cat-file", "-t", manifest).out.strip() == "manifest"
    lines = cli("cat-file", "-p", manifest).out.splitlines()
    assert lines[0] == f"content {blake3(big).hexdigest()}"
    assert lines[1] == f"size {len(big)}"
    chunks = [line.split() for line in lines[2:]]
    assert len(chunks) > 1 and sum(int(n) for _, _, n in chunks) == len(big)
    assert b"".join(cli("cat-file", "-p", c).out_bytes for _, c, _ in chunks) == big
    assert cli("cat-file", "-p", "HEAD:big.bin").out_bytes == big


def test_ls_tree(two_commits: dict[str, str], cli: Cli) -> None:
    top = cli("ls-tree", "HEAD").out.splitlines()
    assert [r.split("\t")[1] for r in top] == ["dir", "top.txt"]
    rec = cli("ls-tree", "-r", "-l", "HEAD").out.splitlines()
    assert [r.split("\t")[1] for r in rec] == ["dir/inner.bin", "dir/sub/deep.txt", "top.txt"]
    kind, cid, size = rec[2].split("\t")[0].split()
    assert (kind, cid, int(size)) == ("file", blake3(b"top 2\n").hexdigest(), 6)
    sub = cli("ls-tree", "HEAD", "dir").out.splitlines()
    assert [r.split("\t")[1] for r in sub] == ["dir/inner.bin", "dir/sub"]
    assert (
        cli("ls-tree", "-r", "HEAD~1", "dir/sub").out.split("\t")[1].strip() == "dir/sub/deep.txt"
    )
    assert_one_error_line(cli.fail(4, "ls-tree", "HEAD", "top.txt"))
    assert_one_error_line(cli.fail(4, "ls-tree", "HEAD", "missing"))


def test_rev_parse_many(two_commits: dict[str, str], cli: Cli) -> None:
    out = cli("rev-parse", "HEAD", "HEAD~1", two_commits["c1"][:6]).out.split()
    assert out == [two_commits["c2"], two_commits["c1"], two_commits["c1"]]


def test_update_ref_compare_and_swap(two_commits: dict[str, str], cli: Cli) -> None:
    c1, c2 = two_commits["c1"], two_commits["c2"]
    cli("update-ref", "refs/heads/x", c1, ZERO)  # create: must not exist yet
    assert cli("rev-parse", "x").out.strip() == c1
    r = cli.fail(5, "update-ref", "refs/heads/x", c2, ZERO)  # exists now
    assert_one_error_line(r)
    r = cli.fail(5, "update-ref", "refs/heads/x", c2, c2)  # stale expectation
    assert_one_error_line(r)
    assert "refs/heads/x" in r.err
    assert cli("rev-parse", "x").out.strip() == c1
    cli("update-ref", "refs/heads/x", c2, c1)
    assert cli("rev-parse", "x").out.strip() == c2
    cli("update-ref", "-m", "forced", "refs/heads/x", "HEAD~1")  # no OLD: unconditional
    assert cli("rev-parse", "x").out.strip() == c1
    cli("update-ref", "refs/tags/light", "HEAD")
    assert cli("tag").out.split() == ["light"]
    assert_one_error_line(cli.fail(5, "update-ref", "-d", "refs/heads/x", c2))  # stale
    cli("update-ref", "-d", "refs/heads/x", c1)
    assert_one_error_line(cli.fail(4, "rev-parse", "x"))
    assert_one_error_line(cli.fail(4, "update-ref", "-d", "refs/heads/x"))
    with Repository.open(".") as repo:
        messages = [e.message for e in repo.refs.reflog("refs/heads/x")]
    assert messages[-2:] == ["forced", "update-ref"]


def test_count_objects_and_fsck(two_commits: dict[str, str], cli: Cli) -> None:
    verbose = dict(line.split(": ") for line in cli("count-objects", "-v").out.splitlines())
    assert int(verbose["count"]) == int(verbose["data-objects"]) + int(verbose["meta-objects"])
    # 3 + 1 file contents; 2 commits, trees: 3 + 1 changed root
    assert int(verbose["data-objects"]) == 4
    assert int(verbose["meta-objects"]) == 6
    assert verbose["orphan-packs"] == "0"
    short = cli("count-objects").out
    assert short.startswith(f"{verbose['count']} objects in {verbose['packs']} packs")
    ok = cli("fsck").out
    assert ok.startswith(f"ok: {verbose['count']} objects in {verbose['packs']} packs verified")
    assert ok.rstrip().endswith("10 reachable")
    assert cli("fsck", "-q").out == ""
