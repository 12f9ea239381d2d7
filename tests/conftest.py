"""Fixtures shared by every test package: one moto S3 server per test process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dsrepo.remotes.s3_testserver import MotoServer


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """A moto S3 server subprocess. Each pytest-xdist worker starts its own on a free port."""
    with MotoServer() as server:
        yield server
