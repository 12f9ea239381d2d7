"""The in-memory backend against the conformance kit."""

from __future__ import annotations

from pathlib import Path

from dsrepo.remotes.base import Backend
from dsrepo.remotes.memory import MemoryBackend
from dsrepo.remotes.testing import BackendConformance


class TestMemoryBackend(BackendConformance):
    def make_backend(self, tmp_path: Path) -> Backend:
        return MemoryBackend()
