"""D) remotes: ``dsrepo push`` / ``dsrepo clone`` with a directory remote beside ``cp -r``, the
bytes and requests of pushing a change, and the same on S3 (moto on loopback). Every timed step
is the CLI inside ``run.py _cli`` (``children.cli_main``), which records the transfer stats."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import (
    BLOCK,
    RUN_PY,
    MemRow,
    MiB,
    Report,
    Row,
    Sizes,
    Step,
    bench_env,
    count_files,
    du,
    fmt_mib,
    fmt_s,
    load_workload,
    moto_env,
    progress,
    record_step,
    rmtree,
    same_tree,
    start_moto,
    verdict,
    warm,
)


def file_digests(root: Path) -> dict[str, tuple[int, str]]:
    """{relative path: (size, BLAKE3)} of the working files under ``root`` (not ``.dsrepo``)."""
    from blake3 import blake3

    out: dict[str, tuple[int, str]] = {}
    for dp, dirs, fs in os.walk(root):
        if Path(dp) == root and ".dsrepo" in dirs:
            dirs.remove(".dsrepo")
        for f in fs:
            p = os.path.join(dp, f)
            h = blake3()
            with open(p, "rb") as fh:
                while block := fh.read(BLOCK):
                    h.update(block)
            out[os.path.relpath(p, root)] = (os.path.getsize(p), h.hexdigest())
    return out


def changed_bytes(
    before: dict[str, tuple[int, str]], after: dict[str, tuple[int, str]]
) -> dict[str, int]:
    """The bytes a change really consists of: new files and rewritten files count whole; a
    changed file that was larger than 1 MiB (the workload's large files, into which ``mutate``
    inserts 1 MiB) counts only by how much it grew; deleted files count nothing."""
    out = {"added_files": 0, "added_bytes": 0, "rewritten_files": 0, "rewritten_bytes": 0}
    out.update(inserted_files=0, inserted_bytes=0, deleted_files=len(before.keys() - after.keys()))
    for rel, (size, digest) in after.items():
        old = before.get(rel)
        if old is None:
            out["added_files"] += 1
            out["added_bytes"] += size
        elif old[1] != digest and old[0] > MiB:
            out["inserted_files"] += 1
            out["inserted_bytes"] += max(size - old[0], 0)
        elif old[1] != digest:
            out["rewritten_files"] += 1
            out["rewritten_bytes"] += size
    out["total"] = out["added_bytes"] + out["rewritten_bytes"] + out["inserted_bytes"]
    return out


def _stats(rec: dict[str, Any], kind: str) -> dict[str, Any]:
    """The API's TransferStats of the (single) push or fetch a wrapped CLI step ran."""
    found: list[dict[str, Any]] = rec.get(kind) or []
    return found[-1] if found else {}


def section_remotes(work: Path, sizes: Sizes, rep: Report, keep: bool) -> None:
    d = work / "remotes"
    rmtree(d)
    d.mkdir(parents=True)
    raw: dict[str, Any] = {}
    rep.raw["remotes"] = raw
    rows: dict[str, Row] = {}
    mem: dict[str, MemRow] = {}
    moto: tuple[threading.Thread, dict[str, Any]] | None = None
    if importlib.util.find_spec("moto") is None:
        for n in range(5, 11):
            rows[f"D{n}"] = Row(f"D{n}", "S3 step: moto is not installed", ok="n/a", baseline="n/a")
    else:
        moto = start_moto()
    try:
        _remotes_steps(d, work, sizes, rep, moto, raw, rows, mem)
    finally:
        if moto is not None:
            moto[0].join()
            server = moto[1].get("server")
            if server is not None:
                server.stop()
        rep.rows.extend(rows[f"D{i}"] for i in range(1, 13) if f"D{i}" in rows)
        rep.memory.extend(mem[f"M{i}"] for i in range(12, 19) if f"M{i}" in mem)
        if not keep:
            rmtree(d)


def _remotes_steps(
    d: Path,
    work: Path,
    sizes: Sizes,
    rep: Report,
    moto: tuple[threading.Thread, dict[str, Any]] | None,
    raw: dict[str, Any],
    rows: dict[str, Row],
    mem: dict[str, MemRow],
) -> None:
    rep.notes.append(
        "D runs the dsrepo CLI's main() inside `run.py _cli`, which records the push/fetch "
        "TransferStats the Python API returns (requests and bytes as dsrepo's CountingBackend "
        "counts them); S3 rows also give the HTTP requests botocore sent (retries and the "
        "conditional-write probe included). S3 is moto, a Python server on loopback sharing "
        "the CPUs: its seconds are our client plus moto, not S3; its counts are what matters."
    )
    env = bench_env(work)
    q = shlex.quote
    me = f"{q(sys.executable)} {q(str(RUN_PY))}"
    gen, mutate, source = load_workload()
    raw["workload_source"] = source
    steps: dict[str, Any] = {}
    raw["steps"] = steps

    def step(where: str, cmd: str, cwd: Path, step_env: dict[str, str] | None = None) -> Step:
        return record_step(rep, steps, where, cmd, cwd, step_env or env, f"D {where}")

    def cli(
        where: str, args: str, cwd: Path, step_env: dict[str, str] | None = None
    ) -> tuple[Step, dict[str, Any]]:
        """A timed ``dsrepo ARGS && sync`` through the recording wrapper (``_cli``)."""
        stats_file = d / f"stats-{where}.json"
        flag = " --count-http" if step_env is not None else ""
        s = step(where, f"{me} _cli {q(str(stats_file))}{flag} -- {args} && sync", cwd, step_env)
        rec: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            rec = json.loads(stats_file.read_text())
        steps[where]["stats"] = rec
        return s, rec

    def setup(where: str, spec: dict[str, Any]) -> bool:
        return step(where, f"{me} _setup {q(json.dumps(spec))}", d).ok

    base = d / "base"
    progress(f"D: generating {sizes.n_small} small files + two {sizes.big_mib} MiB files")
    gen(str(base), sizes.n_small, sizes.big_mib)
    data_bytes = du(base)
    raw["data_bytes"], raw["files"] = data_bytes, count_files(base)
    wk = d / "work"
    shutil.copytree(base, wk)
    remote = d / "remote-dir"
    remotes: list[list[str | None]] = [["origin", str(remote), None]]

    # the S3 server (started in the background) and the environment of every S3 step
    server: Any = None
    s3env: dict[str, str] = {}
    url = ""
    if moto is not None:
        moto[0].join()
        if "error" in moto[1]:
            rep.error("D moto server", moto[1]["error"])
        else:
            server = moto[1]["server"]
            url = f"s3://{moto[1]['bucket']}/ds"
            remotes.append(["s3", url, server.endpoint_url])
            raw["s3"] = {"url": url, "endpoint_url": server.endpoint_url}
            s3env = moto_env(env, d)

    progress("D: init, add ., commit v1, remote add (Python API, not timed)")
    if not setup("setup-v1", {"repo": str(wk), "init": True, "message": "v1", "remotes": remotes}):
        return
    raw["store_after_v1"] = du(wk / ".dsrepo" / "packs")
    startup = step("version", f"{me} _cli {q(str(d / 'stats-version.json'))} -- --version", wk)
    mem["M18"] = MemRow("M18", "D CLI start-up (wrapped --version)", startup.peak_kib)

    def memrow(mid: str, text: str, peak_kib: int) -> None:
        mem[mid] = MemRow(mid, text, peak_kib, peak_kib - startup.peak_kib, data_bytes)

    # D1: push v1 to a directory remote, beside cp -r of the store
    warm(wk / ".dsrepo" / "packs")
    progress("D1: cp -r .dsrepo/packs (baseline)")
    cp = step("cp-packs", f"cp -r .dsrepo/packs {q(str(d / 'cp-packs'))} && sync", wk)
    rmtree(d / "cp-packs")
    progress("D1: dsrepo push origin (directory remote)")
    p1, r1 = cli("push1-dir", "push origin", wk)
    st = _stats(r1, "push")
    raw["remote_dir_bytes_v1"] = du(remote) if p1.ok else None
    ratio = p1.seconds / cp.seconds
    rows["D1"] = Row(
        "D1",
        "push v1 to a directory remote (s) vs cp -r .dsrepo/packs",
        fmt_s(p1.seconds),
        fmt_s(cp.seconds),
        f"{ratio:.2f}",
        "<= 1.5x",
        verdict(ratio <= 1.5) if p1.ok and cp.ok and st else "ERROR",
        {"seconds": p1.seconds, "cp_seconds": cp.seconds, "ratio": ratio, "stats": st},
    )
    memrow("M12", "D1 dsrepo push v1 -> directory", p1.peak_kib)
    if st:
        rep.notes.append(
            f"D1 push v1 to a directory: {st['objects']} objects in {st['packs']} packs, "
            f"{st['requests']} requests, {st['bytes_sent']} bytes sent "
            f"({st['bytes_sent'] / data_bytes:.3f} x the data)"
        )
    if not p1.ok:
        return

    # D2: clone from the directory remote, beside cp -r of what a clone makes: the store (the
    # remote's packs) and the files (issue 9's baseline)
    warm(remote, base)
    progress("D2: cp -r of the remote directory and of the data (baseline)")
    copies = f"cp -r {q(str(remote))} cp-remote && cp -r {q(str(base))} cp-data && sync"
    cp2 = step("cp-remote", copies, d)
    rmtree(d / "cp-remote")
    rmtree(d / "cp-data")
    progress("D2: dsrepo clone DIR CLONE")
    clone_dir = d / "clone-dir"
    c1, rc1 = cli("clone-dir", f"clone {q(str(remote))} {q(str(clone_dir))}", d)
    diff = same_tree(base, clone_dir) if c1.ok else "clone failed"
    if c1.ok and diff is not None:
        rep.error("D2", f"the clone does not match the v1 data: {diff}")
    fst = _stats(rc1, "fetch")
    ratio = c1.seconds / cp2.seconds
    rows["D2"] = Row(
        "D2",
        "clone from the directory remote (s) vs cp -r of the remote and the data"
        + (" (verified)" if diff is None else ""),
        fmt_s(c1.seconds),
        fmt_s(cp2.seconds),
        f"{ratio:.2f}",
        "<= 1.2x",
        verdict(ratio <= 1.2) if c1.ok and cp2.ok and diff is None else "ERROR",
        {
            "seconds": c1.seconds,
            "cp_seconds": cp2.seconds,
            "ratio": ratio,
            "verified": diff is None,
        },
    )
    rows["D2"].raw["stats"] = fst
    memrow("M13", "D2 dsrepo clone <- directory", c1.peak_kib)
    if diff is None:
        rep.notes.append(
            f"D2/D7: a clone is verified when its {raw['files']} files equal the v1 data byte for "
            f"byte ({data_bytes} bytes; compared after the timed step)"
            + (
                f"; D2 fetched {fst['objects']} objects, {fst['requests']} requests, "
                f"{fst['bytes_received']} bytes received"
                if fst
                else ""
            )
        )
    rmtree(clone_dir)
    _get_rows(d, base, remote, env, step, rows)

    # D5-D8: push v1 to S3 and clone it back (moto on loopback)
    if server is not None:
        progress("D5: dsrepo push s3 (v1, moto)")
        p3, r3 = cli("push1-s3", "push s3", wk, s3env)
        s3_rows(rows, "D5", "push v1 to S3", p3, p1, _stats(r3, "push"), r3, data_bytes)
        memrow("M15", "D5 dsrepo push v1 -> S3 (moto)", p3.peak_kib)
        if p3.ok:
            progress("D7: dsrepo clone s3://... (v1, moto)")
            clone_s3 = d / "clone-s3"
            ep = q(server.endpoint_url)
            c3, rc3 = cli(
                "clone-s3", f"clone {q(url)} {q(str(clone_s3))} --endpoint-url {ep}", d, s3env
            )
            diff3 = same_tree(base, clone_s3) if c3.ok else "clone failed"
            if c3.ok and diff3 is not None:
                rep.error("D7", f"the clone from S3 does not match the v1 data: {diff3}")
            s3_rows(rows, "D7", "clone from S3", c3, c1, _stats(rc3, "fetch"), rc3, data_bytes)
            rows["D7"].raw["verified"] = diff3 is None
            if diff3 is None:
                rows["D7"].step += " (verified)"
            elif rows["D7"].ok != "ERROR":
                rows["D7"].ok = "ERROR"
            memrow("M16", "D7 dsrepo clone <- S3 (moto)", c3.peak_kib)
            rmtree(clone_s3)

    # D3/D4 and D9/D10: push the change
    progress("D3: mutate(), then add . and commit v2 (Python API, not timed)")
    before = file_digests(wk)
    mutate(str(wk))
    change = changed_bytes(before, file_digests(wk))
    raw["change"] = change
    if not setup("setup-v2", {"repo": str(wk), "message": "v2"}):
        return
    raw["store_growth_v2"] = du(wk / ".dsrepo" / "packs") - raw["store_after_v1"]
    rep.notes.append(
        f"D3/D9 changed bytes = {change['total']}: {change['rewritten_files']} rewritten files "
        f"({change['rewritten_bytes']} B) + {change['added_files']} new files "
        f"({change['added_bytes']} B) + {change['inserted_bytes']} B inserted into "
        f"{change['inserted_files']} large file(s); {change['deleted_files']} files deleted "
        f"(0 B); the local store grew by {raw['store_growth_v2']} B"
    )
    progress("D3: dsrepo push origin (v2, directory remote)")
    p2, r2 = cli("push2-dir", "push origin", wk)
    change_rows(rows, "D3", "directory remote", p2, _stats(r2, "push"), r2, change["total"])
    memrow("M14", "D3 dsrepo push v2 -> directory", p2.peak_kib)
    if server is not None and steps.get("push1-s3", {}).get("rc") == 0:
        progress("D9: dsrepo push s3 (v2, moto)")
        p4, r4 = cli("push2-s3", "push s3", wk, s3env)
        change_rows(rows, "D9", "S3 (moto)", p4, _stats(r4, "push"), r4, change["total"])
        memrow("M17", "D9 dsrepo push v2 -> S3 (moto)", p4.peak_kib)


def _get_rows(
    d: Path,
    base: Path,
    remote: Path,
    env: dict[str, str],
    step: Callable[[str, str, Path, dict[str, str] | None], Step],
    rows: dict[str, Row],
) -> None:
    """D11/D12: ``dsrepo get`` of v1 into a new folder a second time, through the user cache the
    first get filled: the data bytes it downloads (target 0), and its time beside ``cp -r`` of
    the first copy (it links, so well under it)."""
    q = shlex.quote
    me = f"{q(sys.executable)} {q(str(RUN_PY))}"
    genv = {**env, "DSREPO_CACHE_DIR": str(d / "getcache")}

    def get(where: str, into: Path) -> Step:
        stats = q(str(d / f"stats-{where}.json"))
        return step(
            where, f"{me} _cli {stats} -- get {q(str(remote))} {q(str(into))} && sync", d, genv
        )

    progress("D11: dsrepo get DIR GET1 (fills the user cache; not a row)")
    first = get("get1", d / "get1")
    if not first.ok:
        return
    warm(d / "get1")
    progress("D12: cp -r of the first copy (baseline)")
    cp = step("cp-get", f"cp -r {q(str(d / 'get1'))} {q(str(d / 'cp-get'))} && sync", d, genv)
    rmtree(d / "cp-get")
    progress("D11/D12: dsrepo get DIR GET2 (the same version again)")
    second = get("get2", d / "get2")
    m = re.search(r"downloaded ([\d.]+ \w+)", second.stderr)
    downloaded = m.group(1) if m else "?"
    linked = re.search(r"; (\d+) by (\w+)\)", second.stderr)
    same = second.ok and file_digests(d / "get2") == file_digests(base)
    how = f", {linked.group(1)} files by {linked.group(2)}" if linked else ""
    rows["D11"] = Row(
        "D11",
        "second get of v1 into a new folder: data downloaded" + (" (verified)" if same else ""),
        downloaded,
        "-",
        "-",
        "0 B",
        verdict(downloaded == "0 B") if same else "ERROR",
        {"downloaded": downloaded, "verified": same, "stderr": second.stderr[-500:]},
    )
    ratio = second.seconds / cp.seconds if cp.seconds else float("inf")
    rows["D12"] = Row(
        "D12",
        f"second get of v1 (s) vs cp -r of the first copy{how}",
        fmt_s(second.seconds),
        fmt_s(cp.seconds),
        f"{ratio:.2f}",
        "<= 0.5x",
        verdict(ratio <= 0.5) if second.ok and cp.ok and same else "ERROR",
        {"seconds": second.seconds, "cp_seconds": cp.seconds, "ratio": ratio},
    )
    for name in ("get1", "get2"):
        rmtree(d / name)
    rmtree(d / "getcache")


def s3_rows(
    rows: dict[str, Row],
    rid: str,
    what: str,
    s: Step,
    dir_step: Step,
    st: dict[str, Any],
    rec: dict[str, Any],
    data_bytes: int,
) -> None:
    """Two rows for an S3 transfer of v1: seconds (beside the same step on a directory remote),
    then requests and bytes on the wire (sent by a push, received by a clone) beside the data."""
    n = int(rid[1:])
    key = "bytes_received" if "clone" in what else "bytes_sent"
    ratio = s.seconds / dir_step.seconds
    rows[rid] = Row(
        rid,
        f"{what} (moto): seconds vs the directory remote",
        fmt_s(s.seconds),
        fmt_s(dir_step.seconds),
        f"{ratio:.2f}",
        "- (moto)",
        "info" if s.ok else "ERROR",
        {"seconds": s.seconds, "dir_seconds": dir_step.seconds, "ratio": ratio},
    )
    moved = st.get(key, 0)
    http = rec.get("http_requests")
    rows[f"D{n + 1}"] = Row(
        f"D{n + 1}",
        f"{what}: requests, {key.replace('_', ' ')} vs data size"
        + (f" ({http} HTTP requests)" if http is not None else ""),
        f"{st.get('requests', '?')} req, {fmt_mib(moved)}",
        fmt_mib(data_bytes),
        f"{moved / data_bytes:.3f}",
        "- (info)",
        "info" if s.ok and st else "ERROR",
        {
            "stats": st,
            "http_requests": http,
            "counter": rec.get("counter"),
            "data_bytes": data_bytes,
        },
    )


def change_rows(
    rows: dict[str, Row],
    rid: str,
    where: str,
    s: Step,
    st: dict[str, Any],
    rec: dict[str, Any],
    changed: int,
) -> None:
    """Two rows for pushing the change: bytes sent / changed bytes, then requests."""
    n = int(rid[1:])
    sent = st.get("bytes_sent", 0)
    ratio = sent / changed if changed else float("inf")
    ok = s.ok and bool(st)
    rows[rid] = Row(
        rid,
        f"push v2 to {where}: bytes sent / changed bytes ({s.seconds:.2f} s)",
        fmt_mib(sent),
        fmt_mib(changed),
        f"{ratio:.2f}",
        "<= 1.5",
        verdict(ratio <= 1.5) if ok else "ERROR",
        {
            "seconds": s.seconds,
            "bytes_sent": sent,
            "changed_bytes": changed,
            "ratio": ratio,
            "stats": st,
        },
    )
    reqs = st.get("requests", 0)
    http = rec.get("http_requests")
    rows[f"D{n + 1}"] = Row(
        f"D{n + 1}",
        f"push v2 to {where}: requests"
        + (f" ({http} HTTP requests)" if http is not None else "")
        + f", {st.get('objects', '?')} objects in {st.get('packs', '?')} packs",
        str(reqs),
        "-",
        "-",
        "< 100 (tens)",
        verdict(reqs < 100) if ok else "ERROR",
        {"requests": reqs, "http_requests": http, "counter": rec.get("counter")},
    )
