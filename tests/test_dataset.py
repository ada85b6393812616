import numpy as np
import pytest

from seeing_sound.dataset import DatasetWriter, PairsDataset
from seeing_sound.dataset.audio_files import pcm_sha256, quantize_pcm16
from seeing_sound.dataset.paths import UnsafePathError, safe_join


def test_write_read_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    audios = [np.clip(0.3 * rng.standard_normal(16000 * (i + 1)), -0.99, 0.99).astype(np.float32) for i in range(5)]
    for fmt in ("flac", "wav"):
        with DatasetWriter(tmp_path / fmt, tmp_path, shard_size=2, audio_format=fmt) as w:
            for i, a in enumerate(audios):
                w.add(
                    pair_id=f"p{i}",
                    image_id=f"i{i}",
                    image_path=f"im/{i}.png",
                    audio=a,
                    seed=7,
                    components=[{"concept": f"c{i}", "chunk_id": i}],
                )
        ds = PairsDataset.open(tmp_path / fmt)
        assert len(ds) == 5 and ds.num_shards == 3 and ds.shard_rows(2) == [4]
        for i, a in enumerate(audios):
            row = ds.row(i)
            assert row["mixture_sha256"] == pcm_sha256(quantize_pcm16(a))
            assert row["components"][0]["concept"] == f"c{i}" and row["components"][0]["target_lufs"] is None
            np.testing.assert_allclose(ds.audio(i), a, atol=1 / 32767)
        assert ds.image_path(3) == (tmp_path / "im/3.png").resolve()


def test_quantizer_is_deterministic_and_clips():
    x = np.array([0.0, 0.5, -0.5, 1.2, -1.2, 1 / 65534], np.float32)
    q = quantize_pcm16(x)
    assert q.dtype == np.dtype("<i2") and q.tolist() == [0, 16384, -16384, 32767, -32768, 0]


@pytest.mark.parametrize(
    "rel", ["../secret", "a/../../b", "/etc/passwd", "C:\\x", "\\\\server\\share", "", "a\x00b", "..\\x"]
)
def test_unsafe_metadata_paths_are_refused(tmp_path, rel):
    with pytest.raises(UnsafePathError):
        safe_join(tmp_path, rel)


def test_symlink_escape_is_refused(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root/link").symlink_to(tmp_path)
    with pytest.raises(UnsafePathError, match="outside"):
        safe_join(tmp_path / "root", "link/x")
    assert safe_join(tmp_path / "root", "a/b.png") == (tmp_path / "root/a/b.png").resolve()
