"""Content-defined chunking: its parameters, the repository format marker, and block cutting.

Chunk boundaries decide object ids, so the parameters are part of the repository format: they are
recorded in the ``format`` key when a repository is created and read back, never assumed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from dsrepo.objects.errors import FormatError

if TYPE_CHECKING:
    import io
    from collections.abc import Iterator

    from pyfastcdc import FastCDC

FORMAT_NAME = "dsrepo"
FORMAT_VERSION = 1
BLOCK_BYTES = 8 * 1024 * 1024
"""How much of a file :func:`cut_blocks` reads and cuts at a time."""


@dataclass(frozen=True)
class ChunkerParams:
    """FastCDC (2020, normalized chunking) parameters, as implemented by pyfastcdc."""

    algorithm: str = "fastcdc2020"
    min_size: int = 16 * 1024
    avg_size: int = 64 * 1024
    max_size: int = 256 * 1024
    normalization: int = 1
    seed: int = 0
    small_file_threshold: int = 1024 * 1024
    """Files up to this size are stored as a single chunk."""

    def cutter(self) -> FastCDC:
        from pyfastcdc import FastCDC  # imported on first use: ~35 ms a command does not need

        return FastCDC(
            avg_size=self.avg_size,
            min_size=self.min_size,
            max_size=self.max_size,
            normalized_chunking=self.normalization,  # type: ignore[arg-type]  # validated 0..3
            seed=self.seed,
        )

    def validate(self) -> ChunkerParams:
        if self.algorithm != "fastcdc2020":
            raise FormatError(f"unsupported chunking algorithm {self.algorithm!r}")
        if not (64 <= self.min_size <= self.avg_size <= self.max_size <= 16 * 1024 * 1024):
            raise FormatError("chunker sizes must satisfy 64 <= min <= avg <= max <= 16 MiB")
        if not 0 <= self.normalization <= 3 or self.seed < 0:
            raise FormatError("chunker normalization must be 0..3 and seed >= 0")
        if self.small_file_threshold < self.max_size:
            raise FormatError("small_file_threshold must be at least max_size")
        # pyfastcdc's own bounds, checked here so that opening a repository need not import it
        for what, value, lo, hi in (
            ("min_size", self.min_size, 64, 1 << 20),
            ("avg_size", self.avg_size, 256, 4 << 20),
            ("max_size", self.max_size, 1024, 16 << 20),
            ("seed", self.seed, 0, 2**63 - 1),
        ):
            if not lo <= value <= hi:
                raise FormatError(
                    f"chunker parameters rejected: {what} {value} not in [{lo}, {hi}]"
                )
        return self


@dataclass(frozen=True)
class RepoFormat:
    """The content of the ``format`` key: what a reader must know to interpret the store."""

    chunker: ChunkerParams
    version: int = FORMAT_VERSION
    hash: str = "blake3-256"

    def to_bytes(self) -> bytes:
        doc = {
            "format": FORMAT_NAME,
            "version": self.version,
            "hash": self.hash,
            "chunker": asdict(self.chunker),
        }
        return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "format") -> RepoFormat:
        try:
            doc: Any = json.loads(data)
        except ValueError:
            raise FormatError(f"{where}: not a dsrepo format marker (invalid JSON)") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
            raise FormatError(f"{where}: not a dsrepo format marker")
        if doc.get("version") != FORMAT_VERSION:
            raise FormatError(
                f"{where}: format version {doc.get('version')!r} is not supported "
                f"(this dsrepo reads version {FORMAT_VERSION})"
            )
        if doc.get("hash") != "blake3-256":
            raise FormatError(f"{where}: unsupported hash {doc.get('hash')!r}")
        try:
            chunker = ChunkerParams(**doc["chunker"]).validate()
        except (KeyError, TypeError):
            raise FormatError(f"{where}: malformed chunker parameters") from None
        return cls(chunker=chunker)


def cut_blocks(
    f: io.RawIOBase | io.BufferedIOBase, cutter: FastCDC, block_bytes: int = BLOCK_BYTES
) -> Iterator[list[memoryview]]:
    """Read ``f`` once, in blocks, and cut each block into content-defined chunks.

    The chunks are views into the block just read (no copy per chunk), and every later step —
    hashing, storing — sees exactly those bytes, so a file changing meanwhile cannot give a chunk
    an id that does not match what is stored. A block's last chunk may end only because the block
    does, so it is carried into the next block and cut again: FastCDC boundaries depend only on
    the bytes since the previous boundary, so the result equals cutting the whole file at once.
    """
    carry = b""
    eof = False
    while not eof:
        block = bytearray(len(carry) + block_bytes)
        block[: len(carry)] = carry
        filled = len(carry)
        with memoryview(block) as view:
            while filled < len(block):
                n = f.readinto(view[filled:])
                if not n:
                    eof = True
                    break
                filled += n
        del block[filled:]
        if not block:
            return
        chunks = [c.data for c in cutter.cut_buf(block)]
        carry = b""
        if not eof:
            carry = bytes(chunks.pop())
        if chunks:
            yield chunks
