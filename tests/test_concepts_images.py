"""Image discovery (stable ids, roots, symlinks) and safe decoding of odd and bad files."""

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seeing_sound.concepts.images import ImageRef, decode_rgb, discover_images, load_image
from seeing_sound.testing.data import write_bad_images


def _save(path: Path, img: Image.Image, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


def _load(root: Path, rel: str, **kw):
    return load_image(root, ImageRef(rel, 0, rel), **kw)


def test_single_root_ids_are_relative_posix_paths_sorted(tmp_path):
    for rel in ["b.png", "a/z.jpg", "a/b.webp", ".hidden.png", ".git/x.png", "notes.txt"]:
        _save(tmp_path / rel, Image.new("RGB", (4, 4))) if not rel.endswith(".txt") else (tmp_path / rel).write_text(
            "x"
        )
    roots, refs = discover_images([tmp_path])
    assert roots == [tmp_path.resolve()]
    assert [r.image_id for r in refs] == ["a/b.webp", "a/z.jpg", "b.png"]
    assert all(r.path == r.image_id and r.root_index == 0 for r in refs)


def test_several_roots_prefix_ids_with_the_folder_name(tmp_path):
    _save(tmp_path / "cats" / "x.png", Image.new("RGB", (4, 4)))
    _save(tmp_path / "dogs" / "x.png", Image.new("RGB", (4, 4)))
    _roots, refs = discover_images([tmp_path / "dogs", tmp_path / "cats"])
    assert [r.image_id for r in refs] == ["dogs/x.png", "cats/x.png"]  # roots keep the order given
    assert [r.path for r in refs] == ["x.png", "x.png"]
    _save(tmp_path / "other" / "cats" / "y.png", Image.new("RGB", (4, 4)))
    with pytest.raises(ValueError, match="share the folder name"):
        discover_images([tmp_path / "cats", tmp_path / "other" / "cats"])


def test_file_arguments_join_their_folder_root(tmp_path):
    a = _save(tmp_path / "pics" / "sub" / "a.png", Image.new("RGB", (4, 4)))
    b = _save(tmp_path / "loose" / "b.png", Image.new("RGB", (4, 4)))
    _roots, refs = discover_images([tmp_path / "pics", a, b])
    assert [r.image_id for r in refs] == ["pics/sub/a.png", "loose/b.png"]
    with pytest.raises(FileNotFoundError):
        discover_images([tmp_path / "missing"])
    with pytest.raises(ValueError, match="image_roots"):
        discover_images([])


def test_symlink_outside_the_root_is_refused(tmp_path):
    outside = _save(tmp_path / "secret.png", Image.new("RGB", (4, 4)))
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "link.png")
    _, refs = discover_images([root])
    loaded = load_image(root, refs[0])
    assert loaded.error == "outside-root" and loaded.image is None


def test_bad_files_are_recorded_with_a_reason(tmp_path):
    expected = write_bad_images(tmp_path)
    for rel, reason in expected.items():
        loaded = _load(tmp_path, rel)
        assert loaded.error == reason, (rel, loaded.detail)
        assert loaded.image is None and loaded.sha256 is not None
    assert _load(tmp_path, "truncated.jpg").detail  # a human-readable detail goes with the reason


def test_max_pixels_guards_before_decoding(tmp_path):
    _save(tmp_path / "big.png", Image.new("RGB", (300, 200)))
    assert _load(tmp_path, "big.png", max_pixels=300 * 200 - 1).error == "decompression-bomb"
    assert _load(tmp_path, "big.png", max_pixels=300 * 200).error is None


def test_modes_become_rgb(tmp_path):
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (0, 0, 255, 255))
    _save(tmp_path / "rgba.png", rgba)
    img = _load(tmp_path, "rgba.png").image
    assert img.mode == "RGB" and img.getpixel((1, 1)) == (255, 255, 255) and img.getpixel((0, 0)) == (0, 0, 255)
    _save(tmp_path / "cmyk.jpg", Image.new("CMYK", (8, 8), (0, 255, 255, 0)))
    r, g, b = _load(tmp_path, "cmyk.jpg").image.getpixel((4, 4))
    assert r > 200 and g < 60 and b < 60  # CMYK red stays red
    pal = Image.new("P", (8, 8), 1)
    pal.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    _save(tmp_path / "pal.gif", pal)
    assert _load(tmp_path, "pal.gif").image.getpixel((2, 2)) == (0, 255, 0)
    _save(tmp_path / "gray.bmp", Image.new("L", (8, 8), 77))
    assert _load(tmp_path, "gray.bmp").image.getpixel((0, 0)) == (77, 77, 77)
    sixteen = Image.fromarray(np.full((8, 8), 32896, dtype=np.uint16))
    _save(tmp_path / "deep.png", sixteen)
    assert _load(tmp_path, "deep.png").image.getpixel((0, 0)) == (128, 128, 128)  # scaled, not clipped to 255
    _save(tmp_path / "tiff.tif", Image.new("RGB", (8, 8), (1, 2, 3)))
    assert _load(tmp_path, "tiff.tif").image.getpixel((0, 0)) == (1, 2, 3)
    _save(tmp_path / "w.webp", Image.new("RGB", (8, 8), (0, 0, 250)), lossless=True)
    assert _load(tmp_path, "w.webp").image.getpixel((0, 0)) == (0, 0, 250)


def test_animated_gif_uses_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    r, _g, b = _load(tmp_path, "anim.gif").image.getpixel((0, 0))
    assert r > 200 and b < 50


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 10, 20))  # blue band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    _save(tmp_path / "rot.jpg", img, exif=exif, quality=95)
    loaded = _load(tmp_path, "rot.jpg")
    assert (loaded.width, loaded.height) == (20, 40) and loaded.image.size == (20, 40)
    r, _g, b = loaded.image.getpixel((10, 3))  # the left band is now at the top
    assert b > 200 and r < 60


def test_large_images_are_downscaled_but_keep_their_true_size(tmp_path):
    _save(tmp_path / "big.jpg", Image.new("RGB", (4000, 3000), (10, 200, 10)), quality=80)
    loaded = _load(tmp_path, "big.jpg", max_side=512)
    assert (loaded.width, loaded.height) == (4000, 3000)
    assert max(loaded.image.size) == 512 and loaded.image.size[0] / loaded.image.size[1] == pytest.approx(
        4 / 3, abs=0.01
    )


def test_checksum_is_of_the_file_bytes(tmp_path):
    import hashlib

    path = _save(tmp_path / "a.png", Image.new("RGB", (4, 4)))
    assert _load(tmp_path, "a.png").sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_decode_rgb_on_bytes():
    buf = io.BytesIO()
    Image.new("LA", (6, 4), (10, 255)).save(buf, format="PNG")
    img, w, h = decode_rgb(buf.getvalue(), max_side=1024, max_pixels=10**6)
    assert (w, h) == (6, 4) and img.getpixel((0, 0)) == (10, 10, 10)
