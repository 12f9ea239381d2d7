"""Content-defined chunking parameters and the repository format marker.

Chunk boundaries decide object ids, so the parameters are part of the repository format: they are
recorded in the ``format`` key when a repository is created and read back, never assumed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from dsrepo.objects.errors import FormatError

if TYPE_CHECKING:
    from pyfastcdc import FastCDC

FORMAT_NAME = "dsrepo"
FORMAT_VERSION = 1


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
