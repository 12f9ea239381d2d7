"""File previews: text and JSON highlighted (pygments), images inline, CSV and parquet as a schema
plus the first rows, anything else as a hex dump. Each reads a bounded prefix of the file (parquet:
its footer and first row group), never the whole of a large one.

Everything returned is data for the templates to escape, except ``Preview.code``: HTML made by
pygments' formatter, which escapes the text it is given.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import find_lexer_class_for_filename
from pygments.lexers.special import TextLexer

from dsrepo.errors import DsrepoError
from dsrepo.objects.filereader import FileReader
from dsrepo.objects.kinds import EntryKind

TEXT_BYTES = 64 << 10
"""Text shown (and highlighted) at most; the raw URL has the rest."""
PRETTY_JSON_BYTES = 1 << 20
"""A one-line JSON document up to this size is re-indented before it is shown."""
TABLE_BYTES = 1 << 20
"""CSV bytes read for the first rows."""
TABLE_ROWS = 50
CELL_CHARS = 200
HEX_BYTES = 512
PARQUET_ROW_GROUP_BYTES = 256 << 20
"""A first row group larger than this is not read (the schema is still shown)."""

IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
    ".ico": "image/x-icon",
    ".avif": "image/avif",
    ".svg": "image/svg+xml",
}

FORMATTER = HtmlFormatter(cssclass="hl", linenos="table", wrapcode=True)
"""One formatter for every page; its CSS is served with the stylesheet (:func:`pygments_css`)."""


def pygments_css() -> str:
    return str(FORMATTER.get_style_defs(".hl"))


def suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


@dataclass
class Preview:
    kind: str
    """``empty``, ``text``, ``image``, ``table``, ``hex``, ``symlink`` or ``note``."""
    code: Markup | None = None
    language: str = ""
    shown: int = 0
    truncated: bool = False
    columns: list[tuple[str, str]] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    total_rows: int | None = None
    hexdump: list[tuple[str, str, str]] = field(default_factory=list)
    mime: str = ""
    text: str = ""
    note: str = ""


def preview(reader: FileReader, name: str, kind: EntryKind) -> Preview:
    """The preview of file ``name`` read through ``reader``."""
    ext = suffix(name)
    if kind == EntryKind.SYMLINK:
        target = reader.pread(0, 4096).decode("utf-8", "replace")
        return Preview("symlink", text=target)
    if reader.size == 0:
        return Preview("empty")
    if ext in IMAGE_TYPES:
        return Preview("image", mime=IMAGE_TYPES[ext])
    if ext == ".parquet":
        return _parquet(reader)
    if ext in (".csv", ".tsv"):
        table = _csv(reader, "\t" if ext == ".tsv" else None)
        if table is not None:
            return table
    head = reader.pread(0, TEXT_BYTES)
    text = _as_text(head, reader.size > len(head))
    if text is None:
        return _hex(reader.pread(0, HEX_BYTES) if len(head) > HEX_BYTES else head)
    return _text(reader, name, ext, text, len(head))


def _as_text(data: bytes, truncated: bool) -> str | None:
    """``data`` decoded as UTF-8 text (a character cut by truncation dropped), or None when it
    looks binary."""
    if b"\0" in data[:8192]:
        return None
    for cut in range(4 if truncated else 1):
        try:
            return data[: len(data) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None


def _text(reader: FileReader, name: str, ext: str, text: str, shown: int) -> Preview:
    truncated = reader.size > shown
    if ext == ".json" and reader.size <= PRETTY_JSON_BYTES and text.strip().count("\n") == 0:
        try:
            whole = reader.pread(0, reader.size).decode("utf-8")
            text = json.dumps(json.loads(whole), indent=2, ensure_ascii=False)
            truncated = False
            if len(text) > TEXT_BYTES:
                text, truncated = text[:TEXT_BYTES], True
        except (ValueError, UnicodeDecodeError):
            pass
    if truncated and "\n" in text:
        text = text[: text.rfind("\n") + 1]  # whole lines only
    try:
        lexer_cls = find_lexer_class_for_filename(name) or TextLexer
    except Exception:  # a lexer's own guess failing must not fail the page
        lexer_cls = TextLexer
    lexer = lexer_cls(stripnl=False, ensurenl=False)
    code = highlight(text, lexer, FORMATTER)
    # pygments escapes every piece of text it writes; this is its HTML, not the file's.
    return Preview(
        "text",
        code=Markup(code),
        language=str(lexer.name),
        shown=len(text.encode("utf-8")),
        truncated=truncated,
    )


def _hex(data: bytes) -> Preview:
    lines = []
    for off in range(0, len(data), 16):
        row = data[off : off + 16]
        hexes = " ".join(f"{b:02x}" for b in row)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        lines.append((f"{off:08x}", hexes, text))
    return Preview("hex", hexdump=lines, shown=len(data))


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else "null" if value is None else str(value)
    return text if len(text) <= CELL_CHARS else text[:CELL_CHARS] + "…"


def _infer(values: list[str]) -> str:
    seen = [v for v in values if v != ""]
    if not seen:
        return "empty"
    for kind, parse in (("int", int), ("float", float)):
        try:
            for v in seen:
                parse(v)
            return kind
        except ValueError:
            continue
    if all(v.lower() in ("true", "false") for v in seen):
        return "bool"
    return "string"


def _csv(reader: FileReader, delimiter: str | None) -> Preview | None:
    data = reader.pread(0, TABLE_BYTES)
    truncated = reader.size > len(data)
    if truncated:
        data = data[: data.rfind(b"\n") + 1] or data
    text = _as_text(data, truncated)
    if text is None:
        return None
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as exc:
        return Preview("note", note=f"not readable as CSV: {exc}")
    rows = [r for r in rows if r]
    if not rows:
        return Preview("empty")
    header, body = rows[0], rows[1:]
    width = max(len(header), *(len(r) for r in body[:TABLE_ROWS])) if body else len(header)
    header = header + [""] * (width - len(header))
    sample = body[:1000]
    columns = [
        (_cell(h) or f"column {i + 1}", _infer([r[i] if i < len(r) else "" for r in sample]))
        for i, h in enumerate(header)
    ]
    shown = [[_cell(r[i]) if i < len(r) else "" for i in range(width)] for r in body[:TABLE_ROWS]]
    return Preview(
        "table",
        columns=columns,
        rows=shown,
        total_rows=None if truncated else len(body),
        truncated=truncated or len(body) > TABLE_ROWS,
        note=f"delimiter {delimiter!r}",
    )


def _parquet(reader: FileReader) -> Preview:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return Preview("note", note="parquet preview needs pyarrow (pip install pyarrow)")
    try:
        pf = pq.ParquetFile(reader)
        meta = pf.metadata
        columns = [(f.name, str(f.type)) for f in pf.schema_arrow]
        rows: list[list[str]] = []
        note = f"{meta.num_rows:,} rows in {meta.num_row_groups} row group(s)"
        if meta.num_row_groups:
            if meta.row_group(0).total_byte_size > PARQUET_ROW_GROUP_BYTES:
                note += "; the first row group is too large to preview"
            else:
                batch = next(pf.iter_batches(batch_size=TABLE_ROWS), None)
                if batch is not None:
                    names = batch.schema.names
                    rows = [[_cell(rec.get(n)) for n in names] for rec in batch.to_pylist()]
    except DsrepoError:  # damaged storage is the page's error, not a preview's
        raise
    except Exception as exc:  # an unusual or damaged parquet file: say so, keep the page
        return Preview("note", note=f"not readable as parquet: {type(exc).__name__}: {exc}")
    return Preview(
        "table",
        columns=columns,
        rows=rows[:TABLE_ROWS],
        total_rows=int(meta.num_rows),
        truncated=meta.num_rows > len(rows),
        note=note,
    )
