"""Image reading and writing: PIL convert('RGB') semantics, 16-bit scaling, errors that name the file."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from bench_ir.data.io import (
    FLOAT_IMAGE_REFUSAL,
    IMAGE_EXTENSIONS,
    ImageReadError,
    exif_orientation,
    image_size,
    quarter_turned_by_exif,
    read_rgb_uint8,
    write_png_uint8,
)


def _rng_image(height: int = 40, width: int = 56, channels: int = 3, seed: int = 0) -> np.ndarray:
    shape = (height, width, channels) if channels > 1 else (height, width)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _write_png16(path: Path, data: np.ndarray) -> None:
    """A 16-bit PNG written byte by byte; rows cycle through filters None, Sub and Up so the test covers
    the decoder's un-filtering with the real bytes-per-pixel."""
    height, width = data.shape[:2]
    channels = 1 if data.ndim == 2 else data.shape[2]
    rows = data.reshape(height, width * channels).astype(">u2").view(np.uint8).reshape(height, -1).astype(np.int64)
    bpp = 2 * channels
    raw = bytearray()
    for y in range(height):
        kind = y % 3
        if kind == 0:
            filtered = rows[y]
        elif kind == 1:
            filtered = rows[y] - np.concatenate([np.zeros(bpp, np.int64), rows[y][:-bpp]])
        else:
            filtered = rows[y] - rows[y - 1]
        raw += bytes([kind]) + (filtered % 256).astype(np.uint8).tobytes()

    def chunk(tag: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))

    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(raw)))
                     + chunk(b"IEND", b""))


def _round_257(values: np.ndarray) -> np.ndarray:
    return np.round(values.astype(np.float64) / 257.0).astype(np.uint8)


def test_rgb_png_reads_back_exactly(tmp_path):
    image = _rng_image()
    Image.fromarray(image).save(tmp_path / "a.png")
    out = read_rgb_uint8(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (40, 56, 3)
    np.testing.assert_array_equal(out, image)


def test_grayscale_is_replicated_to_three_channels(tmp_path):
    gray = _rng_image(channels=1)
    Image.fromarray(gray).save(tmp_path / "g.png")
    out = read_rgb_uint8(tmp_path / "g.png")
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], gray)


def test_palette_image_matches_pil_convert_rgb(tmp_path):
    Image.fromarray(_rng_image()).quantize(16).save(tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as im:
        assert im.mode == "P"
        expected = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(read_rgb_uint8(tmp_path / "p.png"), expected)


def test_rgba_drops_alpha_without_compositing_and_warns_naming_the_file(tmp_path):
    rgba = _rng_image(channels=4)
    rgba[..., 3] = 0  # fully transparent: compositing on any background would change the colours
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    with pytest.warns(UserWarning, match="alpha.png.*alpha"):
        out = read_rgb_uint8(tmp_path / "alpha.png")
    np.testing.assert_array_equal(out, rgba[..., :3])


def test_16bit_grayscale_is_scaled_with_rounding_not_clipped(tmp_path):
    values = np.array([[0, 128, 129, 255, 32767, 32896, 65279, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode.startswith("I;16")
    with pytest.warns(UserWarning, match="16-bit"):
        out = read_rgb_uint8(tmp_path / "g16.png")
    assert out[0, :, 0].tolist() == [0, 0, 1, 1, 127, 128, 254, 255]
    assert (out[..., 0] == out[..., 2]).all()


@pytest.mark.parametrize("channels", [3, 4, 2])
def test_16bit_colour_png_keeps_full_precision_before_rounding(tmp_path, channels):
    data = np.random.default_rng(channels).integers(0, 65536, (9, 11, channels), dtype=np.uint16)
    data[0, 0, 0] = 255  # PIL's own decoder keeps the high byte: 0 instead of round(255/257) = 1
    _write_png16(tmp_path / "c16.png", data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = read_rgb_uint8(tmp_path / "c16.png")
    messages = " | ".join(str(w.message) for w in caught)
    assert "16-bit" in messages and ("alpha" in messages) == (channels in (2, 4))
    colour = data[..., :3] if channels >= 3 else np.repeat(data[..., :1], 3, axis=-1)
    np.testing.assert_array_equal(out, _round_257(colour))
    assert out[0, 0, 0] == 1


def test_16bit_rgb_tiff_is_scaled_with_rounding(tmp_path):
    data = np.random.default_rng(1).integers(0, 65536, (7, 5, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "c16.tif", data, photometric="rgb")
    with pytest.warns(UserWarning, match="16-bit"):
        out = read_rgb_uint8(tmp_path / "c16.tif")
    np.testing.assert_array_equal(out, _round_257(data))



@pytest.mark.parametrize(("magic", "channels", "maxval"), [("P6", 3, 65535), ("P6", 3, 1023), ("P5", 1, 65535),
                                                            ("P5", 1, 4095)])
def test_a_ppm_or_pgm_above_8_bits_is_scaled_by_its_maxval_and_says_so(tmp_path, magic, channels, maxval):
    values = np.random.default_rng(maxval).integers(0, maxval + 1, (6, 7, channels))
    path = tmp_path / "deep.pnm"
    path.write_bytes(f"{magic}\n7 6\n{maxval}\n".encode() + values.astype(">u2").tobytes())  # big-endian samples
    with pytest.warns(UserWarning, match=rf"deep.pnm: {maxval.bit_length()}-bit image \(maxval {maxval}\) scaled to 8 "
                      rf"bits with round\(v\*255/{maxval}\)"):
        out = read_rgb_uint8(path)
    expected = np.round(values * 255 / maxval).astype(np.uint8)
    np.testing.assert_array_equal(out, np.broadcast_to(expected, (6, 7, 3)))

def test_missing_file_error_names_the_file(tmp_path):
    with pytest.raises(ImageReadError, match="nothere.png.*not found"):
        read_rgb_uint8(tmp_path / "nothere.png")
    assert issubclass(ImageReadError, ValueError)


def test_non_image_file_error_names_the_file(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ImageReadError, match="notes.png.*not an image"):
        read_rgb_uint8(tmp_path / "notes.png")


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_file_error_names_the_file(tmp_path, suffix):
    Image.fromarray(_rng_image()).save(tmp_path / f"full{suffix}")
    data = (tmp_path / f"full{suffix}").read_bytes()
    (tmp_path / f"cut{suffix}").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=f"cut\\{suffix}"):
        read_rgb_uint8(tmp_path / f"cut{suffix}")


def test_image_size_reads_the_header_only(tmp_path):
    Image.fromarray(_rng_image(40, 56)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:200])  # pixels gone, header intact
    assert image_size(tmp_path / "cut.png") == (40, 56)
    with pytest.raises(ImageReadError, match="nothere"):
        image_size(tmp_path / "nothere.png")


def test_write_png_uint8_round_trips_arrays_and_quantises_tensors(tmp_path):
    image = _rng_image()
    write_png_uint8(tmp_path / "sub" / "a.png", image)
    np.testing.assert_array_equal(read_rgb_uint8(tmp_path / "sub" / "a.png"), image)
    tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    tensor[0, 0, 0], tensor[1, 0, 0] = 1.7, -0.2  # clipped
    tensor[2, 0, 0] = 100.4 / 255  # rounded to 100
    write_png_uint8(tmp_path / "t.png", tensor)
    out = read_rgb_uint8(tmp_path / "t.png")
    assert out[0, 0].tolist() == [255, 0, 100]
    np.testing.assert_array_equal(out[1:], image[1:])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub", "t.png"]  # no temporary files left


def test_write_png_uint8_replaces_an_existing_file(tmp_path):
    write_png_uint8(tmp_path / "a.png", _rng_image(seed=1))
    write_png_uint8(tmp_path / "a.png", _rng_image(seed=2))
    np.testing.assert_array_equal(read_rgb_uint8(tmp_path / "a.png"), _rng_image(seed=2))


def test_reading_an_rgb_file_raises_no_warning(tmp_path):
    Image.fromarray(_rng_image()).save(tmp_path / "a.jpg")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_rgb_uint8(tmp_path / "a.jpg")
    assert ".jpg" in IMAGE_EXTENSIONS and ".png" in IMAGE_EXTENSIONS


def test_exif_orientation_is_read_from_the_header_and_is_1_without_a_valid_tag(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.fromarray(_rng_image()).save(tmp_path / "turned.jpg", exif=exif.tobytes())
    exif[0x0112] = 42  # not an orientation
    Image.fromarray(_rng_image()).save(tmp_path / "invalid.jpg", exif=exif.tobytes())
    Image.fromarray(_rng_image()).save(tmp_path / "plain.png")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    assert exif_orientation(tmp_path / "turned.jpg") == 8
    assert [exif_orientation(tmp_path / n) for n in ("invalid.jpg", "plain.png", "junk.png", "gone.png")] == [1] * 4


def test_write_png_uint8_stores_an_orientation_without_turning_the_pixels(tmp_path):
    image = _rng_image(20, 30)
    write_png_uint8(tmp_path / "a.png", image, orientation=3)
    assert exif_orientation(tmp_path / "a.png") == 3
    np.testing.assert_array_equal(read_rgb_uint8(tmp_path / "a.png"), image)
    with pytest.raises(ValueError, match="1..8"):
        write_png_uint8(tmp_path / "b.png", image, orientation=9)


def test_an_exif_quarter_turn_is_named_only_where_it_explains_transposed_sizes(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_rng_image(30, 40)).save(tmp_path / "phone.jpg", exif=exif.tobytes())
    Image.fromarray(_rng_image(40, 30)).save(tmp_path / "upright.png")
    Image.fromarray(_rng_image(30, 40)).save(tmp_path / "plain.jpg")
    assert quarter_turned_by_exif((tmp_path / "phone.jpg", tmp_path / "upright.png"), ((30, 40), (40, 30))) == [
        f"{tmp_path / 'phone.jpg'} (EXIF orientation 6)"]
    assert quarter_turned_by_exif((tmp_path / "phone.jpg", tmp_path / "upright.png"), ((30, 40), (40, 31))) == []
    assert quarter_turned_by_exif((tmp_path / "plain.jpg", tmp_path / "upright.png"), ((30, 40), (40, 30))) == []


def test_an_empty_file_is_named_empty_not_an_unsupported_format(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    for read in (read_rgb_uint8, image_size):
        with pytest.raises(ImageReadError) as caught:
            read(tmp_path / "empty.png")
        assert str(caught.value) == f"{tmp_path / 'empty.png'}: empty file (0 bytes)"


def test_a_float_image_is_refused_from_its_header_before_its_pixels_are_read(tmp_path):
    Image.fromarray(np.random.default_rng(0).random((40, 56), np.float32)).save(tmp_path / "f.tif")  # mode F
    with pytest.raises(ImageReadError) as caught:
        image_size(tmp_path / "f.tif")  # what `run` reads of every image before it makes a run folder
    assert str(caught.value) == f"{tmp_path / 'f.tif'}: {FLOAT_IMAGE_REFUSAL}"


@pytest.mark.parametrize(("pixels", "options", "why"), [
    (np.full((6, 7, 3), 0.5, np.float32), {"photometric": "rgb"},
     "floating-point images (float32 TIFF, 3 samples per pixel: RGB) are not supported; save as 8 or 16 bit"),
    (np.full((6, 7, 3), 0.5, np.float16), {"photometric": "rgb"},
     "floating-point images (float16 TIFF, 3 samples per pixel: RGB) are not supported; save as 8 or 16 bit"),
    (np.full((6, 7, 2), 1000, np.uint16), {"photometric": "minisblack", "extrasamples": ["unassalpha"],
                                           "planarconfig": "contig"},
     "a TIFF of this layout (uint16, 2 samples per pixel: gray + alpha) is not supported; save as 8 or 16 bit gray, "
     "RGB or RGBA"),
], ids=["float32-rgb", "float16-rgb", "uint16-gray-alpha"])
def test_a_tiff_pil_cannot_read_is_described_with_what_to_save_instead(tmp_path, pixels, options, why):
    tifffile.imwrite(tmp_path / "a.tif", pixels, **options)
    for read in (read_rgb_uint8, image_size):
        with pytest.raises(ImageReadError) as caught:
            read(tmp_path / "a.tif")
        assert str(caught.value) == f"{tmp_path / 'a.tif'}: {why}"


def test_a_file_that_is_no_tiff_and_no_image_still_says_so(tmp_path):
    (tmp_path / "a.tif").write_bytes(b"II*\x00 but nothing a TIFF reader can follow")
    (tmp_path / "b.png").write_bytes(b"text")
    for name in ("a.tif", "b.png"):
        with pytest.raises(ImageReadError, match="not an image or an unsupported format"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's own complaint about the broken TIFF header
            image_size(tmp_path / name)


def test_a_png_orientation_is_read_from_its_chunks_without_decoding_the_pixels(tmp_path, monkeypatch):
    from PIL import PngImagePlugin

    write_png_uint8(tmp_path / "turned.png", _rng_image(40, 56), orientation=6)
    Image.fromarray(_rng_image(40, 56)).save(tmp_path / "plain.png")
    with monkeypatch.context() as patch:  # `run` reads every image's orientation before any work: headers only
        patch.setattr(PngImagePlugin.PngImageFile, "load", lambda self: pytest.fail("PNG pixels decoded"))
        assert [exif_orientation(tmp_path / name) for name in ("turned.png", "plain.png")] == [6, 1]
    data = (tmp_path / "turned.png").read_bytes()
    chunks, at = [], 8  # an eXIf chunk placed after the pixels (valid PNG) is found too
    while at < len(data):
        length = struct.unpack(">I", data[at:at + 4])[0]
        chunks.append(data[at:at + 12 + length])
        at += 12 + length
    exif = [c for c in chunks if c[4:8] == b"eXIf"]
    others = [c for c in chunks if c[4:8] != b"eXIf"]
    (tmp_path / "late.png").write_bytes(data[:8] + b"".join(others[:-1]) + exif[0] + others[-1])
    assert exif_orientation(tmp_path / "late.png") == 6


@pytest.mark.parametrize("orientation", [3, 6])
def test_a_pair_whose_exif_orientations_differ_is_named_with_both_even_at_one_size(tmp_path, orientation):
    from bench_ir.data.io import orientation_mismatch_note

    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(_rng_image(32, 32)).save(tmp_path / "phone.jpg", exif=exif.tobytes())
    Image.fromarray(_rng_image(32, 32)).save(tmp_path / "upright.png")
    turned = {3: "turned 180 degrees", 6: "turned 90 degrees clockwise"}[orientation]
    assert orientation_mismatch_note((tmp_path / "phone.jpg", tmp_path / "upright.png")) == (
        f"input {tmp_path / 'phone.jpg'} has EXIF orientation {orientation} ({turned} in viewers) and target "
        f"{tmp_path / 'upright.png'} has 1 (upright): viewers show the pair turned differently, but pixels are read "
        "as stored, as the reference scripts read them: save such images upright (e.g. with "
        "PIL.ImageOps.exif_transpose)")
    assert orientation_mismatch_note((tmp_path / "phone.jpg", tmp_path / "phone.jpg")) == ""  # alike: nothing
