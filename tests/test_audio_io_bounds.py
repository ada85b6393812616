"""stream_mono: headers are claims, the work is bounded by the bytes present."""

import numpy as np
import pytest
import soundfile as sf

from seeing_sound.audio import io as audio_io
from seeing_sound.audio.io import BadAudio, stream_mono
from seeing_sound.testing.signals import noise, write_audio


def _decode(path, rate=16000):
    status: dict = {}
    n = sum(b.size for b in stream_mono(path, rate, status=status))
    return n, status


def test_decoding_stops_at_the_bound_when_the_length_is_unknown(tmp_path):
    sf.write(tmp_path / "full.flac", np.zeros(5 * 60 * 1000, np.float32), 1000, format="FLAC")  # 5 min, < 1 KiB
    data = bytearray((tmp_path / "full.flac").read_bytes())
    data[21] &= 0xF0  # STREAMINFO total samples = 0: "unknown", so only the decode can find out
    data[22:26] = b"\0\0\0\0"
    (tmp_path / "x.flac").write_bytes(bytes(data))
    assert sf.info(str(tmp_path / "x.flac")).frames == (1 << 63) - 1  # libsndfile: SF_COUNT_MAX
    with pytest.raises(BadAudio, match=r"implausible_header: decodes past \d+ frames") as exc:
        _decode(tmp_path / "x.flac")
    assert exc.value.reason == "implausible_header"  # was: all 5 minutes decoded from 976 bytes


def test_a_block_is_bounded_in_samples_whatever_the_channel_count(tmp_path, monkeypatch):
    write_audio(tmp_path / "x.wav", noise(0.5, 8000, channels=16), 8000)
    asked = []
    real_read = sf.SoundFile.read

    def read(self, frames=-1, *args, **kwargs):
        asked.append(frames)
        return real_read(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", read)
    monkeypatch.setattr(audio_io, "BLOCK_SAMPLES", 1024, raising=False)
    n, status = _decode(tmp_path / "x.wav", 8000)
    assert n == 4000 and not status
    assert max(asked) * 16 <= 1024  # was: 65,536 frames x 16 channels per read


@pytest.mark.parametrize(
    "fmt,subtype,rate",
    [
        ("FLAC", None, 8000),  # digital silence at 8 kHz mono: the cheapest real encoding (~185 bit/s)
        ("OGG", "VORBIS", 8000),
        ("OGG", "OPUS", 8000),
        ("MP3", "MPEG_LAYER_III", 8000),
        ("WAV", "PCM_U8", 1000),  # the lowest accepted rate
        ("WAV", "IMA_ADPCM", 8000),
    ],
)
def test_real_encodings_are_within_the_bound(tmp_path, fmt, subtype, rate):
    if fmt not in sf.available_formats():
        pytest.skip(f"this libsndfile has no {fmt}")
    for name, x in (("silence", np.zeros(60 * rate, np.float32)), ("noise", noise(10, rate))):
        path = tmp_path / f"{name}.{'mp3' if fmt == 'MP3' else fmt.lower()}"
        write_audio(path, x, rate, subtype=subtype, format=fmt)
        n, status = _decode(path, rate)
        assert abs(n - x.size) <= 0.01 * x.size and not status, (name, n, status)
