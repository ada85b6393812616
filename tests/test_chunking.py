import numpy as np
import pytest

from seeing_sound.audio.chunking import Chunker, chunk_array, num_chunks

SR = 16000
CHUNK = 5 * SR


def test_paper_example_34_seconds_gives_7_chunks_last_padded_1s():
    x = np.ones(34 * SR, np.float32)
    chunks, real = chunk_array(x, CHUNK)
    assert chunks.shape == (7, CHUNK)
    assert real.tolist() == [CHUNK] * 6 + [4 * SR]
    assert np.all(chunks[-1, 4 * SR :] == 0) and np.all(chunks[-1, : 4 * SR] == 1)
    assert num_chunks(34 * SR, CHUNK) == 7


def test_short_file_is_one_padded_chunk():
    chunks, real = chunk_array(np.ones(SR // 2, np.float32), CHUNK)
    assert chunks.shape == (1, CHUNK) and real.tolist() == [SR // 2]


def test_min_tail_drops_short_tails():
    assert num_chunks(34 * SR, CHUNK, min_tail_samples=5 * SR) == 6
    assert num_chunks(34 * SR, CHUNK, min_tail_samples=4 * SR) == 7
    assert num_chunks(2 * SR, CHUNK, min_tail_samples=3 * SR) == 0


@pytest.mark.parametrize("seed", range(5))
def test_streaming_equals_reference_for_any_block_sizes(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(int(rng.integers(1, 23 * SR))).astype(np.float32)
    min_tail = int(rng.integers(0, SR))
    ref, ref_real = chunk_array(x, CHUNK, min_tail)
    chunker = Chunker(CHUNK, min_tail)
    got, pos = [], 0
    while pos < x.size:
        n = int(rng.integers(1, 3 * CHUNK))
        got.extend(chunker.feed(x[pos : pos + n]))
        pos += n
    got.extend(chunker.finish())
    assert [c.index for c in got] == list(range(len(ref)))
    assert np.array_equal(np.stack([c.samples for c in got]) if got else np.zeros((0, CHUNK)), ref)
    assert [c.real_samples for c in got] == ref_real.tolist()
