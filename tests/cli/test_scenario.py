"""A ClearML-style dataset workflow, end to end through the CLI: two source datasets on two
branches, a cleaned child of one, a merge of both with metadata, an annotated tag. Every version
must come back byte for byte, and every pair of versions must diff with the right counts."""

from __future__ import annotations

import itertools
import random
import shutil
from collections import Counter
from pathlib import Path

from blake3 import blake3

from dsrepo.cli.output import human
from tests.cli.conftest import Cli, snapshot, write


def rand(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def expected_summary(old: dict[str, bytes], new: dict[str, bytes]) -> tuple[str, Counter[str]]:
    """The diff summary line dsrepo must print: renames are a deletion and an addition of the same
    content (counted per content: min(#deleted, #added))."""
    added = {p: d for p, d in new.items() if p not in old}
    deleted = {p: d for p, d in old.items() if p not in new}
    modified = {p: d for p, d in new.items() if p in old and old[p] != d}
    pool = Counter(blake3(d).digest() for d in deleted.values())
    renamed_added, renamed_deleted = [], Counter()
    for p in sorted(added):
        h = blake3(added[p]).digest()
        if pool[h] > 0:
            pool[h] -= 1
            renamed_added.append(p)
            renamed_deleted[h] += 1
    for p in renamed_added:
        del added[p]
    really_deleted = []
    for p in sorted(deleted):
        h = blake3(deleted[p]).digest()
        if renamed_deleted[h] > 0:
            renamed_deleted[h] -= 1
        else:
            really_deleted.append(p)
    counts = Counter(A=len(added), D=len(really_deleted), M=len(modified), R=len(renamed_added))
    b_added = sum(len(d) for d in added.values())
    b_removed = sum(len(deleted[p]) for p in really_deleted)
    b_modified = sum(len(d) for d in modified.values())
    b_before = sum(len(old[p]) for p in modified)
    line = (
        f"{counts['A']} added (+{human(b_added)}), {counts['D']} removed (-{human(b_removed)}), "
        f"{counts['M']} modified ({human(b_before)} -> {human(b_modified)}), "
        f"{counts['R']} renamed"
    )
    return line, counts


def commit_version(cli: Cli, wc: Path, saved: Path, name: str, *args: str) -> tuple[str, Path]:
    cli("add", ".")
    cli("commit", "-q", *args)
    cid = cli("rev-parse", "HEAD").out.strip()
    copy = saved / name
    shutil.copytree(wc, copy, ignore=shutil.ignore_patterns(".dsrepo"))
    return cid, copy


def test_clearml_style_dataset_lifecycle(wc: Path, cli: Cli, tmp_path: Path) -> None:
    saved = tmp_path / "saved"
    versions: dict[str, tuple[str, Path]] = {}

    write(wc, "README.md", "# datasets\n")
    versions["root"] = commit_version(cli, wc, saved, "root", "-m", "start")

    # source A: images + labels, one file large enough to be chunked
    cli("switch", "-q", "-c", "src-a")
    for i in range(10):
        write(wc, f"images/a_{i:03d}.png", rand(20_000 + i, seed=i))
    write(wc, "images/a_big.tif", rand(1_500_000, seed=99))
    write(wc, "labels/a.csv", "".join(f"a_{i:03d},{i % 3}\n" for i in range(10)))
    write(wc, "shared/license.txt", "CC-BY-4.0\n")
    versions["src-a"] = commit_version(
        cli,
        wc,
        saved,
        "src-a",
        "-m",
        "source A",
        "--meta",
        "source=s3://raw/a",
        "--meta",
        "rows=10",
    )

    # source B, from the root: different files, one identical to A's
    cli("switch", "-q", "-c", "src-b", versions["root"][0])
    assert not (wc / "images").exists()
    for i in range(6):
        write(wc, f"images/b_{i:03d}.jpg", rand(15_000 + i, seed=100 + i))
    write(wc, "labels/b.csv", "".join(f"b_{i:03d},{i % 2}\n" for i in range(6)))
    write(wc, "shared/license.txt", "CC-BY-4.0\n")
    versions["src-b"] = commit_version(
        cli, wc, saved, "src-b", "-m", "source B", "--meta", "source=s3://raw/b"
    )

    # a cleaned child of A: files removed, labels rewritten, one image moved, one re-encoded
    cli("switch", "-q", "-c", "cleaned", "src-a")
    for i in (1, 4, 7):
        (wc / f"images/a_{i:03d}.png").unlink()
    write(
        wc, "labels/a.csv", "".join(f"a_{i:03d},{i % 3}\n" for i in range(10) if i not in (1, 4, 7))
    )
    (wc / "images/keep").mkdir()
    (wc / "images/a_009.png").rename(wc / "images/keep/a_009.png")
    write(
        wc,
        "images/a_big.tif",
        rand(1_500_000, seed=99)[:700_000] + b"fix" + rand(1_500_000, seed=99)[700_003:],
    )
    versions["cleaned"] = commit_version(
        cli, wc, saved, "cleaned", "-m", "clean A: drop blurry images", "--meta", "removed=3"
    )
    assert cli("log", "--oneline", "-n", "1").out.split()[0] == versions["cleaned"][0][:12]

    # merge the cleaned A with B, with metadata
    cli("switch", "-q", "-c", "combined", "cleaned")
    out = cli(
        "merge",
        "src-b",
        "-m",
        "combine cleaned A and B",
        "--meta",
        "pipeline=merge-v1",
        "--meta",
        'inputs=["cleaned", "src-b"]',
    ).out
    assert out.startswith("Merged src-b")
    merge_id = cli("rev-parse", "HEAD").out.strip()
    versions["merged"] = (merge_id, saved / "merged")
    shutil.copytree(wc, saved / "merged", ignore=shutil.ignore_patterns(".dsrepo"))
    merged = snapshot(saved / "merged")
    # the union, without the files the cleaning removed (no resurrection)
    assert merged == {**snapshot(saved / "cleaned"), **snapshot(saved / "src-b")}
    assert not any(f"a_{i:03d}" in p for p in merged for i in (1, 4, 7))
    parents = [
        line.split()[1]
        for line in cli("cat-file", "-p", "HEAD").out.splitlines()
        if line.startswith("parent ")
    ]
    assert parents == [versions["cleaned"][0], versions["src-b"][0]]
    shown = cli("show", "HEAD").out
    assert 'Meta:   pipeline = "merge-v1"' in shown
    assert 'Meta:   inputs = ["cleaned", "src-b"]' in shown

    cli("tag", "-a", "dataset-v1", "-m", "first combined dataset")
    assert cli("rev-parse", "dataset-v1^{commit}").out.strip() == merge_id
    assert "first combined dataset" in cli("tag", "-l", "dataset-*").out

    # log --graph shows the merge with both parents
    graph = cli("log", "--graph").out
    lines = graph.splitlines()
    top = next(i for i, line in enumerate(lines) if f"commit {merge_id}" in line)
    assert lines[top].lstrip("*| ").startswith(f"commit {merge_id}")
    assert f"Merge: {versions['cleaned'][0][:12]} {versions['src-b'][0][:12]}" in graph
    assert "|\\" in graph  # the second parent's lane opens below the merge
    oneline = cli("log", "--graph", "--oneline").out
    for name in ("root", "src-a", "src-b", "cleaned"):
        assert versions[name][0][:12] in oneline
    assert "tag: dataset-v1" in oneline

    # diff --stat between every pair of versions, both directions
    for x, y in itertools.permutations(versions, 2):
        old, new = snapshot(versions[x][1]), snapshot(versions[y][1])
        line, counts = expected_summary(old, new)
        stat = cli("diff", "--stat", versions[x][0], versions[y][0]).out.splitlines()
        assert stat[-1].strip() == line, (x, y, stat)
        assert len(stat) - 1 == sum(counts.values()), (x, y, stat)
        ns = cli("diff", "--name-status", versions[x][0], versions[y][0]).out.splitlines()
        assert Counter(row[0] for row in ns) == +counts, (x, y, ns)
    ns = cli("diff", "--name-status", "src-a", "cleaned").out.splitlines()
    assert "R100\timages/a_009.png\timages/keep/a_009.png" in ns
    assert "M\timages/a_big.tif" in ns

    # every version materializes byte for byte, by id and by name
    for name, (cid, copy) in versions.items():
        out_dir = tmp_path / "out" / name
        cli("checkout", "-q", "--into", str(out_dir), cid)
        assert snapshot(out_dir) == snapshot(copy), name
    cli("checkout", "-q", "--into", str(tmp_path / "out-tag"), "dataset-v1")
    assert snapshot(tmp_path / "out-tag") == merged
    cli(
        "checkout", "-q", "--into", str(tmp_path / "out-labels"), "--only", "labels/*", "dataset-v1"
    )
    assert snapshot(tmp_path / "out-labels") == {
        p: d for p, d in merged.items() if p.startswith("labels/")
    }

    # and the working copy can travel between them
    for name in ("src-a", "src-b", "cleaned", "combined"):
        cli("switch", "-q", name)
        key = "merged" if name == "combined" else name
        assert snapshot(wc) == snapshot(versions[key][1]), name
    assert cli("fsck", "-q").code == 0
