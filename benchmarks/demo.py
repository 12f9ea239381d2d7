"""End-to-end demo on a generated dataset: what ``make demo`` runs.

Creates a small image-like dataset, versions it, changes it the way real datasets change (files
rewritten, added, removed, bytes inserted into a large table), branches, merges two sources with
metadata, tags, and materializes every version — printing each command and what it shows.
"""

from __future__ import annotations

import os
import random
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else "demo-work").absolute()
DSREPO = str(Path(sys.executable).parent / "dsrepo")
ENV = dict(
    os.environ,
    DSREPO_AUTHOR_NAME="Demo User",
    DSREPO_AUTHOR_EMAIL="demo@example.com",
    DSREPO_CONFIG_GLOBAL=str(ROOT / "global-config"),
    DSREPO_CACHE_DIR=str(ROOT / "cache"),
)


def run(*args: str, cwd: Path, check: bool = True) -> str:
    shown = shlex.join(args)  # quoted like a shell: every line can be pasted
    print(f"\n$ dsrepo {shown}", flush=True)
    r = subprocess.run([DSREPO, *args], cwd=cwd, env=ENV, capture_output=True, text=True)
    out = (r.stdout + r.stderr).rstrip()
    if out:
        lines = out.splitlines()
        print(
            "\n".join(
                lines[:25] + ([f"... ({len(lines) - 25} more lines)"] if len(lines) > 25 else [])
            )
        )
    if check and r.returncode != 0:
        sys.exit(f"demo failed: dsrepo {shown} exited {r.returncode}")
    if not check:
        print(f"(exit code {r.returncode})")
    return r.stdout


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def main() -> None:
    rnd = random.Random(42)
    shutil.rmtree(ROOT, ignore_errors=True)
    data = ROOT / "dataset"
    print(f"# generating a demo dataset in {data}")
    for i in range(200):
        write(
            data / "images" / f"c{i % 4}" / f"img{i:04d}.bin",
            rnd.randbytes(rnd.randint(2000, 20000)),
        )
    write(data / "tables" / "big.parquet", rnd.randbytes(8 << 20))
    write(data / "README.txt", b"demo dataset\n")
    write(data / ".dsrepoignore", b"*.tmp\n")
    write(data / "scratch.tmp", b"ignored\n")

    run("init", ".", cwd=data)
    run("add", ".", cwd=data)
    run("commit", "-m", "v1: raw images and table", "--meta", "source=camera-1", cwd=data)
    run("status", cwd=data)

    print("\n# change the data: rewrite 2 images, delete 2, add 2, insert 1 MiB into the big table")
    for i in (1, 2):
        write(data / "images" / "c1" / f"img{i * 4 + 1:04d}.bin", rnd.randbytes(5000))
    (data / "images" / "c0" / "img0000.bin").unlink()
    (data / "images" / "c0" / "img0004.bin").unlink()
    write(data / "images" / "c0" / "new0.bin", rnd.randbytes(7000))
    write(data / "images" / "c0" / "new1.bin", rnd.randbytes(7000))
    table = (data / "tables" / "big.parquet").read_bytes()
    write(
        data / "tables" / "big.parquet",
        table[: len(table) // 2] + rnd.randbytes(1 << 20) + table[len(table) // 2 :],
    )
    run("status", "-s", cwd=data)
    before = run("count-objects", "-v", cwd=data)
    run("add", ".", cwd=data)
    run("commit", "-m", "v2: cleaned", cwd=data)
    after = run("count-objects", "-v", cwd=data)
    grow = int(after.split("size-pack: ")[1].split()[0]) - int(
        before.split("size-pack: ")[1].split()[0]
    )
    print(
        f"# the store grew by {grow / 2**20:.2f} MiB for ~1.1 MiB of new bytes (a whole-file tool would store 9 MiB again)"
    )
    run("diff", "HEAD~1", "HEAD", "--stat", cwd=data)

    print("\n# a second source on its own branch, then a merge of both with metadata")
    run("switch", "-c", "source-b", "HEAD~1", cwd=data)
    write(data / "labels" / "labels.csv", b"id,label\n1,cat\n2,dog\n")
    run("add", "labels", cwd=data)
    run("commit", "-m", "labels from annotators", cwd=data)
    run("switch", "main", cwd=data)
    run(
        "merge",
        "source-b",
        "-m",
        "merge cleaned images with labels",
        "--meta",
        "reviewed=true",
        cwd=data,
    )
    run("tag", "-a", "-m", "first training set", "train-v1", cwd=data)
    run("log", "--oneline", "--graph", cwd=data)
    run("show", "train-v1", cwd=data)

    print("\n# a conflicting change is never decided silently")
    run("switch", "-c", "fix-a", cwd=data)
    write(data / "README.txt", b"demo dataset, fixed by A\n")
    run("commit", "-a", "-m", "A edits README", cwd=data)
    run("switch", "main", cwd=data)
    write(data / "README.txt", b"demo dataset, fixed by B\n")
    run("commit", "-a", "-m", "B edits README", cwd=data)
    run("merge", "fix-a", cwd=data, check=False)
    run("merge", "fix-a", "--strategy", "theirs", cwd=data)

    print("\n# materialize versions for a training job without touching the working copy")
    run("checkout", "train-v1", "--into", str(ROOT / "job-train-v1"), cwd=data)
    run(
        "checkout",
        "HEAD~4",
        "--into",
        str(ROOT / "job-v1-images"),
        "--only",
        "images/c1/*",
        cwd=data,
    )
    run("ls-files", "-l", "train-v1", "tables/*", cwd=data)
    run("fsck", cwd=data)

    print("\n# share through a remote (a directory here; s3://bucket/prefix works the same)")
    remote = ROOT / "shared-remote"
    run("remote", "add", "origin", str(remote), cwd=data)
    run("push", "origin", "main", "--tags", cwd=data)
    run("push", "origin", "main", cwd=data)
    teammate = ROOT / "teammate"
    run("clone", str(remote), str(teammate), cwd=ROOT)
    write(teammate / "labels" / "extra.csv", b"id,label\n3,bird\n")
    run("add", "labels", cwd=teammate)
    run("commit", "-m", "teammate adds labels", cwd=teammate)
    run("push", cwd=teammate)
    print("\n# meanwhile a second change here: the push is refused until we pull")
    write(data / "notes.txt", b"cleaning notes\n")
    run("add", "notes.txt", cwd=data)
    run("commit", "-m", "notes", cwd=data)
    run("push", cwd=data, check=False)
    run("pull", cwd=data)
    run("push", cwd=data)
    run("log", "--oneline", "--graph", "-n", "4", cwd=data)
    print("\n# a training job reads one version through the shared cache, only what it needs")
    run("get", f"{remote}@train-v1", str(ROOT / "job-images"), "--only", "images/c2/*", cwd=ROOT)
    print("\n# is the job's copy still exactly train-v1? (exit 1 and a list when not)")
    run("verify", str(ROOT / "job-train-v1"), "train-v1", cwd=data)
    write(ROOT / "job-train-v1" / "README.txt", b"edited by the job\n")
    run("verify", str(ROOT / "job-train-v1"), "train-v1", cwd=data, check=False)
    print("\n# statistics computed later, attached to train-v1 without changing its id")
    write(
        ROOT / "stats.json",
        b'{"columns": {"label": {"classes": 3, "missing": 0}, '
        b'"size": {"mean": 11234.5, "max": 19987}}}',
    )
    run(
        "notes",
        "add",
        "-m",
        "reviewed",
        "--meta-file",
        str(ROOT / "stats.json"),
        "train-v1",
        cwd=data,
    )
    run("notes", "show", "train-v1", cwd=data)
    run("push", "origin", "refs/notes/commits", cwd=data)
    print("\n# find versions by message, author, date and metadata, across all refs")
    run("log", "--oneline", "--all", "--grep", "labels", cwd=data)
    run("log", "--oneline", "--all", "--meta", "source=camera-1", cwd=data)
    run("log", "--oneline", "--all", "--meta", "columns.size.mean>10000", cwd=data)
    print("\n# version a folder that lives elsewhere, without copying it into a working copy")
    share = ROOT / "annotations-share"
    for i in range(5):
        write(share / "boxes" / f"b{i:02d}.json", rnd.randbytes(300))
    annotations = ROOT / "annotations"
    run("init", str(annotations), cwd=ROOT)
    run("sync", str(share), "-m", "annotations from the share", cwd=annotations)
    (share / "boxes" / "b00.json").rename(share / "boxes" / "first.json")
    write(share / "boxes" / "b01.json", b"{}")
    run("sync", str(share), "-m", "relabelled", "--meta", "annotator=demo", cwd=annotations)
    run("verify", str(share), cwd=annotations)
    print(f"\n# done: everything is under {ROOT}")


if __name__ == "__main__":
    main()
