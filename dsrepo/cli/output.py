"""Terminal output helpers: progress on stderr (only when it is a terminal), sizes, dates."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from dsrepo import environment

if TYPE_CHECKING:
    from dsrepo import ObjectId, Signature


class Progress:
    """A one-line progress meter on stderr: done/total, rate and ETA. Silent unless stderr is a
    terminal (or DSREPO_PROGRESS=1), and always silent with ``-q``."""

    def __init__(self, label: str, quiet: bool, unit: str = "B") -> None:
        self.label = label
        self.unit = unit
        self.enabled = not quiet and (sys.stderr.isatty() or environment.force_progress())
        self.start = time.monotonic()
        self.last = 0.0
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.1 and (not total or done < total):
            return
        self.last = now
        elapsed = max(now - self.start, 1e-6)
        rate = human(int(done / elapsed), self.unit)
        if total:  # known total: percentage, amounts, rate and ETA
            eta = f", ETA {int((total - done) * elapsed / done)}s" if 0 < done < total else ""
            amounts = f"{human(done, self.unit)}/{human(total, self.unit)}"
            text = f"\r{self.label}: {100 * done // total:3d}% ({amounts}, {rate}/s{eta})"
        else:  # a walk whose size is not known in advance
            text = f"\r{self.label}: {human(done, self.unit)} ({rate}/s)"
        sys.stderr.write(text.ljust(78))
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def human(n: int, unit: str = "B") -> str:
    if unit != "B":
        return str(n)
    value = float(n)
    for suffix in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or suffix == "TiB":
            return f"{value:.0f} {suffix}" if suffix == "B" else f"{value:.1f} {suffix}"
        value /= 1024
    return f"{n} B"


def format_date(sig: Signature) -> str:
    tz = timezone(timedelta(minutes=sig.tz_minutes))
    return datetime.fromtimestamp(sig.time, tz).strftime("%a %b %d %H:%M:%S %Y ") + sig.format_tz()


def short(oid: ObjectId | None) -> str:
    """An id as commands print it: its first 12 hex characters."""
    return "(none)" if oid is None else oid.hex()[:12]


def write_stdout(chunks: Iterable[bytes]) -> None:
    """Write a file's content, chunk by chunk as :meth:`dsrepo.Repository.read_file` yields it,
    to stdout."""
    for chunk in chunks:
        sys.stdout.buffer.write(chunk)
