"""cut_blocks: reading a file in blocks cuts it exactly as cutting it whole would."""

from __future__ import annotations

import io
import random

import pytest

from dsrepo.objects.chunking import ChunkerParams, cut_blocks

PARAMS = ChunkerParams(min_size=1024, avg_size=4096, max_size=16384, small_file_threshold=16384)


@pytest.mark.parametrize("block_bytes", [1000, 4096, 20_000, 1 << 20])
def test_cut_blocks_equals_cutting_the_whole_file(block_bytes: int) -> None:
    data = random.Random(7).randbytes(300_000)
    whole = [bytes(c.data) for c in PARAMS.cutter().cut_buf(data)]
    blocks = list(cut_blocks(io.BytesIO(data), PARAMS.cutter(), block_bytes))
    assert [bytes(c) for batch in blocks for c in batch] == whole
    assert all(batch for batch in blocks)


def test_cut_blocks_of_an_empty_file_yields_nothing() -> None:
    assert list(cut_blocks(io.BytesIO(b""), PARAMS.cutter())) == []
