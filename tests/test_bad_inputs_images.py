"""Bad-input corpus for image decoding: every mode and bit depth Pillow reads, one case per row.

Each case is a file and the naive reference of what it shows as 8-bit RGB, written here without the
decoder: 16-bit gray -> ``(x + 128) // 257`` (round(x / 257), as the concepts stage always scaled it);
16-bit RGB(A) PNGs -> ``x >> 8`` (Pillow reads the high byte itself, within 1 of x / 257);
transparency composited on white by the blend formula; EXIF rotation by numpy on the raw pixels.
The shared decoder (``seeing_sound.imaging``) must match it, and so must every stage's own decode
path: ``features`` (VAE input), ``evaluate`` (Inception for FID/KID, CLIP for IIS/AIS), ``concepts``,
the memorization study, ``leakage`` and ``pairs import``. The decoder is imported inside the tests,
so the stage rows also run (and fail) against code that predates it.
"""

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

S = 16  # square cases: the features stage's centre crop at resolution S is then the identity
MAX_PIXELS = 178_956_970  # the concepts stage's default, which every stage shares


# --- naive references ------------------------------------------------------------------------------
def to8(x) -> np.ndarray:
    """16-bit -> 8-bit, round(x / 257) in integers (x / 257 is never exactly k + 0.5)."""
    return ((np.asarray(x, np.int64) + 128) // 257).astype(np.uint8)


def on_white(rgb, alpha) -> np.ndarray:
    """``rgb`` (H, W, C) over white through ``alpha`` (H, W), both 8-bit: c * a / 255 + 255 * (1 - a / 255)."""
    c = np.asarray(rgb, np.float64)
    a = np.asarray(alpha, np.float64)[..., None] / 255.0
    out = c * a + 255.0 * (1.0 - a)
    return np.broadcast_to(np.floor(out + 0.5), (*out.shape[:2], 3)).astype(np.uint8)


def gray3(g) -> np.ndarray:
    return np.repeat(np.asarray(g, np.uint8)[..., None], 3, axis=2)


# --- file builders ---------------------------------------------------------------------------------
def png_raw(w: int, h: int, depth: int, color_type: int, pixels: np.ndarray) -> bytes:
    """A PNG built by hand (Pillow cannot write 16-bit colour): big-endian samples, filter 0 per row."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = np.asarray(pixels, ">u2" if depth == 16 else np.uint8).reshape(h, -1)
    raw = b"".join(b"\0" + rows[y].tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def saved(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    suffix: str
    reference: np.ndarray  # (S, S, 3) uint8
    atol: int = 0  # 1 where Pillow's integer blend or CMYK conversion rounds differently


def _cases() -> list[Case]:
    rng = np.random.default_rng(7)
    out: list[Case] = []

    g16 = rng.integers(0, 65536, (S, S), dtype=np.uint16)
    g16[0, :4] = [0, 65535, 128, 129]  # both ends and the rounding edge of x / 257
    out.append(Case("gray16-png", saved(Image.fromarray(g16), "PNG"), ".png", gray3(to8(g16))))
    big_endian = Image.frombytes("I;16B", (S, S), g16.astype(">u2").tobytes())
    out.append(Case("gray16-big-endian-tiff", saved(big_endian, "TIFF"), ".tif", gray3(to8(g16))))
    keyed = g16.copy()
    keyed[1, :3] = 4242
    out.append(
        Case(
            "gray16-transparent-value-png",
            saved(Image.fromarray(keyed), "PNG", transparency=4242),
            ".png",
            np.where((keyed == 4242)[..., None], 255, gray3(to8(keyed))).astype(np.uint8),
        )
    )

    rgb16 = rng.integers(0, 65536, (S, S, 3), dtype=np.uint16)
    out.append(Case("rgb16-png", png_raw(S, S, 16, 2, rgb16), ".png", (rgb16 >> 8).astype(np.uint8)))
    rgba16 = rng.integers(0, 65536, (S, S, 4), dtype=np.uint16)
    rgba16[0, 0, 3], rgba16[0, 1, 3] = 0, 65535
    ref = on_white(rgba16[..., :3] >> 8, rgba16[..., 3] >> 8)
    out.append(Case("rgba16-png", png_raw(S, S, 16, 6, rgba16), ".png", ref, atol=1))
    la16 = rng.integers(0, 65536, (S, S, 2), dtype=np.uint16)
    out.append(
        Case("la16-png", png_raw(S, S, 16, 4, la16), ".png", on_white(gray3(la16[..., 0] >> 8), la16[..., 1] >> 8), 1)
    )

    rgba = rng.integers(0, 256, (S, S, 4), dtype=np.uint8)
    rgba[0, 0, 3], rgba[0, 1, 3] = 0, 255
    out.append(
        Case("rgba-png", saved(Image.fromarray(rgba, "RGBA"), "PNG"), ".png", on_white(rgba[..., :3], rgba[..., 3]), 1)
    )
    la = rng.integers(0, 256, (S, S, 2), dtype=np.uint8)
    out.append(
        Case("la-png", saved(Image.fromarray(la, "LA"), "PNG"), ".png", on_white(gray3(la[..., 0]), la[..., 1]), 1)
    )

    palette = rng.integers(0, 256, (16, 3), dtype=np.uint8)
    index = rng.integers(0, 16, (S, S), dtype=np.uint8)
    index[0, 0] = 3
    pal = Image.fromarray(index, "P")
    pal.putpalette(palette.reshape(-1).tolist())
    ref = np.where((index == 3)[..., None], 255, palette[index]).astype(np.uint8)
    out.append(Case("palette-transparent-png", saved(pal, "PNG", transparency=3), ".png", ref))
    out.append(Case("palette-gif", saved(pal, "GIF"), ".gif", palette[index]))

    gray = rng.integers(0, 256, (S, S), dtype=np.uint8)
    gray[0, 0] = 77
    ref = np.where((gray == 77)[..., None], 255, gray3(gray)).astype(np.uint8)
    out.append(
        Case("gray-transparent-value-png", saved(Image.fromarray(gray, "L"), "PNG", transparency=77), ".png", ref)
    )
    rgb = rng.integers(0, 256, (S, S, 3), dtype=np.uint8)
    rgb[0, 0] = (1, 2, 3)
    ref = np.where(np.all(rgb == (1, 2, 3), axis=2)[..., None], 255, rgb).astype(np.uint8)
    out.append(
        Case("rgb-colour-key-png", saved(Image.fromarray(rgb, "RGB"), "PNG", transparency=(1, 2, 3)), ".png", ref)
    )
    bits = rng.integers(0, 2, (S, S)).astype(bool)
    out.append(Case("one-bit-png", saved(Image.fromarray(bits), "PNG"), ".png", gray3(np.where(bits, 255, 0))))

    cmyk = rng.integers(0, 256, (S, S, 4), dtype=np.uint8)
    c, k = cmyk[..., :3].astype(np.float64), cmyk[..., 3:].astype(np.float64)
    ref = np.floor((255 - c) * (255 - k) / 255 + 0.5).astype(np.uint8)
    out.append(Case("cmyk-tiff", saved(Image.fromarray(cmyk, "CMYK"), "TIFF"), ".tif", ref, atol=1))

    i32 = rng.integers(-1000, 70_000, (S, S)).astype(np.int32)
    ref = np.clip(np.floor(i32 / 257 + 0.5), 0, 255).astype(np.uint8)
    out.append(Case("int32-tiff", saved(Image.fromarray(i32, "I"), "TIFF"), ".tif", gray3(ref)))
    unit = rng.random((S, S), dtype=np.float32)
    ref = np.floor(unit.astype(np.float64) * 255 + 0.5).astype(np.uint8)
    out.append(Case("float-unit-tiff", saved(Image.fromarray(unit, "F"), "TIFF"), ".tif", gray3(ref)))
    f255 = (rng.random((S, S)) * 255).astype(np.float32)
    f255[0, 0], f255[0, 1] = np.nan, 255.0
    ref = np.floor(np.nan_to_num(f255.astype(np.float64)) + 0.5).astype(np.uint8)
    out.append(Case("float-nan-tiff", saved(Image.fromarray(f255, "F"), "TIFF"), ".tif", gray3(ref)))

    photo = Image.fromarray(rng.integers(0, 256, (S, S, 3), dtype=np.uint8))
    for orientation, turn in ((3, lambda a: np.rot90(a, 2)), (6, lambda a: np.rot90(a, -1)), (8, np.rot90)):
        exif = Image.Exif()
        exif[0x0112] = orientation
        data = saved(photo, "JPEG", exif=exif, quality=90)
        with Image.open(io.BytesIO(data)) as raw:  # the stored pixels, not turned
            ref = np.ascontiguousarray(turn(np.asarray(raw.convert("RGB"))))
        out.append(Case(f"exif-{orientation}-jpeg", data, ".jpg", ref))
    return out


CASES = _cases()


def bomb(w: int, h: int) -> bytes:
    """A PNG whose header claims ``w`` x ``h`` gray pixels but holds 64 bytes of them."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def truncated_jpeg() -> bytes:
    """A JPEG cut in its scan data: the header reads, the pixels break off."""
    noise = np.random.default_rng(3).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    data = saved(Image.fromarray(noise), "JPEG", quality=90)
    return data[: len(data) * 3 // 4]


BAD = {
    "header-bomb": (bomb(100_000, 100_000), "decompression-bomb"),
    "not-an-image": (b"a text file, not a JPEG\n", "not-an-image"),
    "empty": (b"", "not-an-image"),
    "truncated-jpeg": (truncated_jpeg(), "truncated"),
}


def _write(tmp_path: Path, case: Case) -> Path:
    path = tmp_path / f"{case.name}{case.suffix}"
    path.write_bytes(case.data)
    return path


def _close(got: np.ndarray, case: Case) -> None:
    assert got.dtype == np.uint8 and got.shape == case.reference.shape, (got.dtype, got.shape)
    diff = np.abs(got.astype(np.int64) - case.reference.astype(np.int64))
    assert diff.max() <= case.atol, f"{case.name}: off by up to {diff.max()} at {np.argwhere(diff > case.atol)[:3]}"


# --- the decoder ---------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_decoder_matches_the_naive_reference(case, tmp_path):
    from seeing_sound.imaging import decode, decode_array

    _close(decode_array(case.data), case)
    got = decode(_write(tmp_path, case))
    assert got.image.mode == "RGB" and (got.width, got.height) == (S, S)
    _close(np.asarray(got.image), case)


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_files_raise_with_their_reason(name, tmp_path):
    from seeing_sound.imaging import DecodeError, decode

    data, reason = BAD[name]
    (tmp_path / "f.png").write_bytes(data)
    for source in (data, tmp_path / "f.png"):
        with pytest.raises(DecodeError) as err:
            decode(source)
        assert err.value.reason == reason and str(err.value), (source, str(err.value))


def test_max_pixels_is_checked_from_the_header_before_decoding(tmp_path):
    from seeing_sound.imaging import DecodeError, decode

    def reason(data, max_pixels):
        try:
            decode(data, max_pixels=max_pixels)
        except DecodeError as exc:
            return exc.reason
        return None

    small = saved(Image.new("RGB", (S, S)), "PNG")
    assert reason(small, S * S - 1) == "decompression-bomb" and reason(small, S * S) is None
    # 169 Mpx with 64 bytes of pixels: refused by the header, or (over the limit) found truncated on decoding
    assert reason(bomb(13_000, 13_000), 100_000_000) == "decompression-bomb"
    assert reason(bomb(13_000, 13_000), 500_000_000) == "truncated"  # Pillow's own 89 Mpx limit is replaced


def test_missing_files_are_the_callers_to_name(tmp_path):
    from seeing_sound.imaging import decode

    with pytest.raises(FileNotFoundError):
        decode(tmp_path / "missing.png")


@pytest.mark.parametrize("mode", ["La", "RGBa", "PA", "LAB", "HSV", "YCbCr", "RGBX"])
def test_in_memory_modes_become_rgb(mode):
    from seeing_sound.imaging import to_rgb

    img = Image.new(mode, (2, 2))
    out = to_rgb(img)
    assert out.mode == "RGB" and out.size == (2, 2)
    if mode in ("La", "RGBa", "PA"):  # fully transparent (alpha 0): white
        assert out.getpixel((0, 0)) == (255, 255, 255)


def test_concepts_keeps_its_names_and_shares_the_decoder():
    from seeing_sound import imaging
    from seeing_sound.concepts import images

    assert images.DecodeError is imaging.DecodeError and images.to_rgb is imaging.to_rgb
    assert images.DEFAULT_MAX_PIXELS == imaging.DEFAULT_MAX_PIXELS == MAX_PIXELS


# --- every stage's own decode path ---------------------------------------------------------------
class _OneImage:
    """What VaeFeatureStage._load_image asks of a dataset."""

    def __init__(self, path: Path):
        self.path = path

    def image_source(self, row: int) -> Path:
        return self.path


def features_pixels(path: Path) -> np.ndarray:
    """The VAE's input for ``path`` (the features stage's decode path), back in 0..255."""
    from seeing_sound.features.config import FeaturesConfig
    from seeing_sound.features.stage import VaeFeatureStage

    stage = VaeFeatureStage(dataset="unused", model="unused", key="vae", config=FeaturesConfig(resolution=S))
    errors: dict[str, int] = {}
    x = stage._load_image(_OneImage(path), 0, errors)
    assert x is not None, errors
    return np.rint((x.astype(np.float64) + 1.0) * 127.5).astype(np.uint8)


def inception_pixels(path: Path) -> np.ndarray:
    from seeing_sound.evaluation.inception import load_rgb

    return load_rgb(path)


def concepts_pixels(path: Path) -> np.ndarray:
    from seeing_sound.concepts.images import decode_rgb

    return np.asarray(decode_rgb(path.read_bytes(), max_side=4 * S, max_pixels=MAX_PIXELS)[0])


def memorization_pixels(path: Path) -> np.ndarray:
    from seeing_sound.studies.memorization import _rgb

    return np.asarray(_rgb(path))


STAGES = {
    "features": features_pixels,
    "evaluate-inception": inception_pixels,
    "concepts": concepts_pixels,
    "memorization": memorization_pixels,
}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_stage_decodes_like_the_reference(stage, case, tmp_path):
    _close(STAGES[stage](_write(tmp_path, case)), case)


def test_features_counts_a_bomb_under_its_reason(tmp_path):
    from seeing_sound.features.config import FeaturesConfig
    from seeing_sound.features.stage import VaeFeatureStage

    (tmp_path / "bomb.png").write_bytes(bomb(20_000, 20_000))  # 400 Mpx
    stage = VaeFeatureStage(dataset="unused", model="unused", key="vae", config=FeaturesConfig(resolution=S))
    errors: dict[str, int] = {}
    assert stage._load_image(_OneImage(tmp_path / "bomb.png"), 0, errors) is None
    assert errors == {"image_unreadable: decompression-bomb": 1}


def test_inception_input_honours_max_pixels(tmp_path):
    from seeing_sound.evaluation.inception import load_rgb
    from seeing_sound.imaging import DecodeError

    Image.new("RGB", (S, S)).save(tmp_path / "a.png")
    assert load_rgb(tmp_path / "a.png", max_pixels=S * S).shape == (S, S, 3)
    with pytest.raises(DecodeError, match=f"exceeds max_pixels={S * S - 1}"):
        load_rgb(tmp_path / "a.png", max_pixels=S * S - 1)


def test_pairs_import_refuses_what_features_could_not_decode(tmp_path):
    from seeing_sound.pairs.stage import _check_image

    for name, (data, _reason) in BAD.items():
        (tmp_path / f"{name}.jpg").write_bytes(data)
        with pytest.raises(Exception):  # noqa: B017 - the stage records any exception as image_unreadable
            _check_image(tmp_path / f"{name}.jpg")
    for case in CASES:
        _check_image(_write(tmp_path, case))  # every mode of the corpus is imported


# --- end to end: a 16-bit PNG scores as its 8-bit copy -------------------------------------------
@pytest.fixture()
def deep_and_copy(tmp_path):
    """16-bit gray and 16-bit RGB PNGs, and their 8-bit copies (round(x / 257)), as (deep, copy) pairs."""
    rng = np.random.default_rng(11)
    ramp = np.linspace(0, 65535, S * S).reshape(S, S)
    g16 = np.clip(ramp + rng.normal(0, 2000, (S, S)), 0, 65535).astype(np.uint16)
    rgb16 = np.stack([g16, g16[::-1], g16.T], axis=2)
    Image.fromarray(g16).save(tmp_path / "gray16.png")
    Image.fromarray(to8(g16), "L").save(tmp_path / "gray8.png")
    (tmp_path / "rgb16.png").write_bytes(png_raw(S, S, 16, 2, rgb16))
    Image.fromarray(to8(rgb16), "RGB").save(tmp_path / "rgb8.png")
    return [(tmp_path / "gray16.png", tmp_path / "gray8.png"), (tmp_path / "rgb16.png", tmp_path / "rgb8.png")]


@pytest.mark.parametrize("stage", ["features", "evaluate-inception"])
def test_a_16_bit_png_decodes_as_its_8_bit_copy(stage, deep_and_copy):
    for deep, copy in deep_and_copy:
        a, b = STAGES[stage](deep).astype(np.int64), STAGES[stage](copy).astype(np.int64)
        assert np.abs(a - b).max() <= 1, f"{deep.name} vs {copy.name}: up to {np.abs(a - b).max()}/255 apart"


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    from seeing_sound.testing.eval_models import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("clip") / "clip")


def test_clip_input_of_a_16_bit_png_is_that_of_its_8_bit_copy(tiny_clip, deep_and_copy):
    from seeing_sound.evaluation.clip import ClipImageEncoder

    enc = ClipImageEncoder(str(tiny_clip), device="cpu", batch_size=2)
    for deep, copy in deep_and_copy:
        # pixels 1/255 apart; the processor's bicubic resize re-quantises to uint8 (one more step), then divides
        # by CLIP's std (~0.26): within 3 steps of 1/255 / 0.26 (a white decode would be ~100 steps off)
        np.testing.assert_allclose(enc.prepare(deep), enc.prepare(copy), atol=3 / 255 / 0.26)


def test_evaluate_skips_an_image_over_max_pixels_with_its_reason(tiny_clip, tmp_path):
    from seeing_sound.evaluation.clip import ClipImageEncoder
    from seeing_sound.evaluation.features import FeatureCache, extract
    from seeing_sound.imaging import DECODER

    Image.new("RGB", (S, S), (10, 20, 30)).save(tmp_path / "small.png")
    Image.new("RGB", (2 * S, 2 * S), (10, 20, 30)).save(tmp_path / "big.png")
    enc = ClipImageEncoder(str(tiny_clip), device="cpu", batch_size=2, max_pixels=S * S)
    assert enc.key.endswith(f"-{DECODER}")  # features cached by an older decoder are not reused
    files = [tmp_path / "small.png", tmp_path / "big.png"]
    feats, errors, computed = extract(
        files, cache=FeatureCache(tmp_path / "cache", enc.key), prepare=enc.prepare, embed=enc.embed, batch_size=2
    )
    assert list(feats) == [tmp_path / "small.png"] and computed == 1
    assert list(errors) == [tmp_path / "big.png"]
    assert f"{2 * S}x{2 * S} exceeds max_pixels={S * S}" in errors[tmp_path / "big.png"]


def test_leakage_hashes_a_16_bit_png_as_its_8_bit_copy(deep_and_copy):
    pytest.importorskip("imagehash")
    from seeing_sound.leakage.stage import _phash

    for deep, copy in deep_and_copy:
        differ = int(np.unpackbits(_phash(deep) ^ _phash(copy)).sum())
        assert differ <= 4, f"{deep.name}: {differ} of 64 hash bits differ from its 8-bit copy's"


# --- evaluate --max-pixels -----------------------------------------------------------------------
def test_evaluate_has_max_pixels_with_the_concepts_default():
    from seeing_sound.cli import build_parser
    from seeing_sound.cli.options import config_from_args
    from seeing_sound.concepts.config import ConceptsConfig
    from seeing_sound.config import ConfigError
    from seeing_sound.evaluation.config import EvaluateConfig

    assert EvaluateConfig().max_pixels == ConceptsConfig().max_pixels == MAX_PIXELS
    args = build_parser().parse_args(["evaluate", "--images", "g", "--out", "o", "--max-pixels", "1000"])
    assert config_from_args(args, EvaluateConfig).max_pixels == 1000
    with pytest.raises(ConfigError, match="max_pixels"):
        EvaluateConfig(max_pixels=0)
