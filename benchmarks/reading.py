"""F) reading: one column of a parquet file read with pyarrow through dsrepo's fsspec filesystem
(``dsrepo+s3://``, moto on loopback), beside boto3's ``get_object`` of the whole file: time,
bytes received over the column's own bytes, requests. Every step runs in a fresh interpreter
(``run.py _read OP ...``, :func:`read_main`)."""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import json
import os
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any

from common import (
    RUN_PY,
    Report,
    Row,
    Sizes,
    bench_env,
    fmt_mib,
    fmt_s,
    moto_env,
    progress,
    record_step,
    rmtree,
    start_moto,
    verdict,
)

COLUMNS = ("c0", "c1", "c2", "c3")  # float64, float64, int64, 64 random bytes
READ_COLUMN = "c1"
ROW_BYTES = 8 + 8 + 8 + 64


def _gen(path: str, nbytes: int) -> dict[str, Any]:
    """A parquet file of about ``nbytes`` of random (incompressible) values in four columns; the
    compressed bytes of each column (the sum of its column chunks, from the file's metadata)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(8)
    n = max(nbytes // ROW_BYTES, 1000)
    raw = pa.py_buffer(rng.bytes(n * 64))
    table = pa.table(
        {
            "c0": rng.random(n),
            "c1": rng.random(n),
            "c2": rng.integers(0, 2**62, n),
            "c3": pa.FixedSizeBinaryArray.from_buffers(pa.binary(64), n, [None, raw]),
        }
    )
    pq.write_table(table, path, compression="none", row_group_size=max(n // 4, 1))
    meta = pq.ParquetFile(path).metadata
    sizes = {c: 0 for c in COLUMNS}
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for j in range(group.num_columns):
            col = group.column(j)
            sizes[col.path_in_schema] += col.total_compressed_size
    return {"rows": n, "row_groups": meta.num_row_groups, "column_bytes": sizes}


def _count_http(rec: dict[str, Any]) -> None:
    """Count the HTTP requests botocore sends and the body bytes of their responses."""
    from botocore.endpoint import Endpoint

    lock = threading.Lock()
    orig_send = Endpoint._send
    rec.update(http_requests=0, http_bytes=0)

    def send(self: Any, request: Any) -> Any:
        resp = orig_send(self, request)
        with lock:
            rec["http_requests"] += 1
            with contextlib.suppress(ValueError, TypeError):
                rec["http_bytes"] += int(resp.headers.get("content-length") or 0)
        return resp

    Endpoint._send = send


def read_main(argv: list[str]) -> None:
    """``_read gen FILE BYTES`` | ``_read put ENDPOINT BUCKET KEY FILE`` |
    ``_read get ENDPOINT BUCKET KEY`` (boto3, whole object) |
    ``_read column ENDPOINT URL COLUMN`` (pyarrow through ``dsrepo+s3``). Prints one JSON line;
    ``get`` and ``column`` time only the read (not imports or opening the client)."""
    op = argv[0]
    if op == "gen":
        print(json.dumps(_gen(argv[1], int(argv[2]))))
        return
    rec: dict[str, Any] = {"op": op}
    if op in ("put", "get"):
        from dsrepo.remotes.s3_testserver import make_client

        endpoint, bucket, key = argv[1:4]
        client = make_client(endpoint)
        if op == "put":
            client.upload_file(argv[4], bucket, key)
        else:
            _count_http(rec)
            t0 = time.perf_counter()
            body = client.get_object(Bucket=bucket, Key=key)["Body"]
            n = 0
            while block := body.read(1 << 20):
                n += len(block)
            rec.update(seconds=time.perf_counter() - t0, bytes=n)
    elif op == "column":
        import fsspec
        import pyarrow.parquet as pq

        from dsrepo.remotes.counting import CountingBackend

        endpoint, url, column = argv[1:4]
        counters: list[CountingBackend] = []
        orig_init = CountingBackend.__init__

        def init(self: CountingBackend, inner: Any) -> None:
            orig_init(self, inner)
            counters.append(self)

        CountingBackend.__init__ = init  # type: ignore[method-assign]
        _count_http(rec)
        fs = fsspec.filesystem("dsrepo+s3", endpoint_url=endpoint)
        t0 = time.perf_counter()
        fs.info(url)  # opens the remote (refs, tree): part of the timed read, also given alone
        t1 = time.perf_counter()
        table = pq.read_table(url, columns=[column], filesystem=fs)
        now = time.perf_counter()
        rec.update(seconds=now - t0, open_seconds=t1 - t0, rows=table.num_rows)
        # close the process's shared reader handles before interpreter shutdown: left open, the
        # exit aborts about one run in three ("terminate called without an active exception",
        # exit 134; seen with dsrepo:// too, never with fsspec's "file")
        from dsrepo.reading import close_shared

        close_shared()
        del table, fs  # join arrow's threads while it is alive (the upstream workaround)
        gc.collect()
        rec["counter"] = {
            "requests": sum(c.total_requests for c in counters),
            "bytes_received": sum(c.bytes_received for c in counters),
        }
    else:
        raise SystemExit(f"unknown _read op {op!r}")
    print(json.dumps(rec), flush=True)
    if op == "column":
        # pyarrow's parquet threads can still abort at interpreter teardown even so (upstream,
        # open: apache/arrow#34314, #39162: "terminate called without an active exception"
        # after the work is done). The result is out: end without the teardown.
        sys.stderr.flush()
        os._exit(0)


def section_reading(work: Path, sizes: Sizes, rep: Report, keep: bool) -> None:
    rows = {
        rid: Row(rid, "read one parquet column over S3: moto is not installed", ok="n/a")
        for rid in ("F1", "F2", "F3")
    }
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("pyarrow") is None:
        rep.rows.extend(rows.values())
        return
    d = work / "reading"
    rmtree(d)
    d.mkdir(parents=True)
    raw: dict[str, Any] = {}
    rep.raw["reading"] = raw
    moto = start_moto()
    try:
        _reading_steps(d, work, sizes, rep, moto, raw, rows)
    finally:
        moto[0].join()
        server = moto[1].get("server")
        if server is not None:
            server.stop()
        rep.rows.extend(rows.values())
        if not keep:
            rmtree(d)


def _reading_steps(
    d: Path,
    work: Path,
    sizes: Sizes,
    rep: Report,
    moto: tuple[threading.Thread, dict[str, Any]],
    raw: dict[str, Any],
    rows: dict[str, Row],
) -> None:
    q = shlex.quote
    me = f"{q(sys.executable)} {q(str(RUN_PY))}"
    steps: dict[str, Any] = {}
    raw["steps"] = steps

    def step(where: str, cmd: str, step_env: dict[str, str]) -> dict[str, Any] | None:
        s = record_step(rep, steps, where, cmd, d, step_env, f"F {where}")
        if not s.ok:
            return None
        with contextlib.suppress(ValueError, IndexError):
            return json.loads(s.stdout.strip().splitlines()[-1])
        rep.error(f"F {where}", f"no JSON line in: {s.stdout[-500:]}")
        return None

    wk = d / "work"
    wk.mkdir()
    data = wk / "data.parquet"
    progress(f"F: generating a {fmt_mib(sizes.parquet)} parquet file (4 random columns)")
    gen = step("gen", f"{me} _read gen {q(str(data))} {sizes.parquet}", bench_env(work))
    moto[0].join()
    if gen is None or "error" in moto[1]:
        if "error" in moto[1]:
            rep.error("F moto server", moto[1]["error"])
        return
    server, bucket = moto[1]["server"], moto[1]["bucket"]
    ep = server.endpoint_url
    env = moto_env(bench_env(work), d)
    file_bytes = data.stat().st_size
    column_bytes = gen["column_bytes"][READ_COLUMN]
    raw.update(file_bytes=file_bytes, gen=gen, endpoint_url=ep)

    progress("F: init, add, commit, push to S3 (not timed); the plain file uploaded beside it")
    spec = {
        "repo": str(wk),
        "init": True,
        "message": "v1",
        "remotes": [["s3", f"s3://{bucket}/ds", ep]],
    }
    if step("setup", f"{me} _setup {q(json.dumps(spec))}", env) is None:
        return
    push = record_step(
        rep, steps, "push", f"{me} _cli {q(str(d / 'push.json'))} -- push s3", wk, env
    )
    put = step("put", f"{me} _read put {q(ep)} {bucket} plain/data.parquet {q(str(data))}", env)
    if not push.ok or put is None:
        return

    progress("F1: boto3 get_object of the whole file (baseline)")
    base = step("get", f"{me} _read get {q(ep)} {bucket} plain/data.parquet", env)
    progress(f"F1: pyarrow reads column {READ_COLUMN} through dsrepo+s3://")
    url = f"dsrepo+s3://{bucket}/ds@main/data.parquet"
    got = step("column", f"{me} _read column {q(ep)} {q(url)} {READ_COLUMN}", env)
    if base is None or got is None:
        return
    if got["rows"] != gen["rows"]:
        rep.error("F1", f"read {got['rows']} rows, the file has {gen['rows']}")
        return
    ratio = got["seconds"] / base["seconds"]
    rows["F1"] = Row(
        "F1",
        f"read 1 of 4 columns of {fmt_mib(file_bytes)} parquet via dsrepo+s3 (moto) "
        f"vs boto3 get_object of the whole file (s; opening the remote {got['open_seconds']:.2f} s)",
        fmt_s(got["seconds"]),
        fmt_s(base["seconds"]),
        f"{ratio:.2f}",
        "- (info)",
        "info",
        {
            "seconds": got["seconds"],
            "open_seconds": got["open_seconds"],
            "boto3_seconds": base["seconds"],
            "ratio": ratio,
        },
    )
    received = got["counter"]["bytes_received"] or got["http_bytes"]
    ratio = received / column_bytes
    rows["F2"] = Row(
        "F2",
        f"bytes received reading the column / the column's bytes (file {fmt_mib(file_bytes)}, "
        f"boto3 received {fmt_mib(base['bytes'])})",
        fmt_mib(received),
        fmt_mib(column_bytes),
        f"{ratio:.2f}",
        "<= 1.5",
        verdict(ratio <= 1.5),
        {
            "bytes_received": received,
            "http_bytes": got["http_bytes"],
            "column_bytes": column_bytes,
            "file_bytes": file_bytes,
            "boto3_bytes": base["bytes"],
            "ratio": ratio,
        },
    )
    reqs = got["counter"]["requests"]
    rows["F3"] = Row(
        "F3",
        f"requests reading the column ({got['http_requests']} HTTP requests; "
        f"boto3 whole file: {base['http_requests']})",
        str(reqs),
        "-",
        "-",
        "- (info)",
        "info",
        {"requests": reqs, "http_requests": got["http_requests"], "boto3": base},
    )
    rep.notes.append(
        f"F: {gen['rows']} rows in {gen['row_groups']} row groups, uncompressed random columns "
        f"c0..c3 (float64, float64, int64, 64 bytes); column {READ_COLUMN} is "
        f"{column_bytes} B of the file's {file_bytes} B; each read runs in a fresh interpreter "
        "and only the read is timed; S3 is moto on loopback (its seconds include moto)."
    )
