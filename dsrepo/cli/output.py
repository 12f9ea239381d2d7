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
    terminal (or DSREPO_PROGRESS=1), and always silent with ``-q``.

    An operation of several phases (clone: objects, then files) reports each from 0 again: a
    call whose total changes or whose count goes back starts the next phase on a line of its
    own, labelled ``LABEL: PHASE`` from ``phases`` (rate and ETA measured anew); so does any
    call after a phase reached 100 %."""

    def __init__(
        self, label: str, quiet: bool, unit: str = "B", phases: tuple[str, ...] = ()
    ) -> None:
        self.base = label
        self.phases = phases
        self.phase = 0
        self.label = f"{label}: {phases[0]}" if phases else label
        self.unit = unit
        self.enabled = not quiet and (sys.stderr.isatty() or environment.force_progress())
        self.start = time.monotonic()
        self.last = 0.0
        self.shown = False
        self.seen = (0, 0)

    def _next_phase(self) -> None:
        self.close()
        self.shown = False
        self.phase += 1
        name = self.phases[min(self.phase, len(self.phases) - 1)] if self.phases else ""
        self.label = f"{self.base}: {name}" if name else self.base
        self.start = time.monotonic()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        last_done, last_total = self.seen
        if last_total and (total != last_total or done < last_done or last_done == last_total):
            self._next_phase()  # after a phase's 100 %, or counting from 0 again
        self.seen = (done, total)
        now = time.monotonic()
        if now - self.last < 0.1 and (not total or done < total):
            return
        self.last = now
        elapsed = max(now - self.start, 1e-6)
        # no rate or ETA from the first samples: they are not known yet
        rate = f", {human(int(done / elapsed), self.unit)}/s" if elapsed >= 0.25 else ""
        if total:  # known total: percentage, amounts, rate and ETA
            eta = ""
            if 0 < done < total and elapsed >= 1.0:
                eta = f", ETA {clock((total - done) * elapsed / done)}"
            amounts = f"{human(done, self.unit)}/{human(total, self.unit)}"
            text = f"\r{self.label}: {100 * done // total:3d}% ({amounts}{rate}{eta})"
        else:  # a walk whose size is not known in advance
            text = f"\r{self.label}: {human(done, self.unit)}{rate.replace(', ', ' (', 1)}"
            text += ")" if rate else ""
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


def clock(seconds: float) -> str:
    """A duration as ``h:mm:ss`` (``m:ss`` under an hour), like other progress meters."""
    total = max(int(seconds + 0.5), 0)
    h, rest = divmod(total, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


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


def write_lines(lines: Iterable[str], batch: int = 4096) -> None:
    """Print ``lines`` to stdout in batches (one write per ``batch`` lines, the first at once):
    a million paths in a fraction of a second. Names that are not valid UTF-8 come out as the
    bytes the filesystem holds."""
    out = sys.stdout.buffer
    pending: list[str] = []
    for line in lines:
        pending.append(line)
        if len(pending) >= batch:
            out.write(("\n".join(pending) + "\n").encode("utf-8", "surrogateescape"))
            out.flush()
            pending.clear()
    if pending:
        out.write(("\n".join(pending) + "\n").encode("utf-8", "surrogateescape"))
    out.flush()
