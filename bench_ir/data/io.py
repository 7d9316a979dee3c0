"""Image files in and out: 8-bit RGB arrays (H, W, 3) uint8, read the way the reference test scripts read them.

The references open images with PIL and call ``.convert('RGB')``; :func:`read_rgb_uint8` does the same for
8-bit files (grayscale and palette images become replicated RGB, an alpha channel is dropped without
compositing). 16-bit files are the exception: PIL's conversion keeps only the high byte (or clips), so they
are decoded at full precision and scaled with ``round(v / 257)`` instead. Grayscale, alpha, 16 bits, CMYK (converted
by PIL's formula, without colour management) and files of several frames (a multi-page TIFF, an APNG, an animated
WebP: only the first frame is read) are each stated in an :class:`InputWarning` naming the file.
"""

from __future__ import annotations

import os
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from bench_ir.atomic import atomic_write

__all__ = ["IMAGE_EXTENSIONS", "ImageReadError", "InputWarning", "read_rgb_uint8", "image_size", "write_png_uint8",
           "to_uint8_hwc", "exif_orientation", "quarter_turned_by_exif", "quarter_turn_note",
           "QUARTER_TURN_ADVICE", "FLOAT_IMAGE_REFUSAL", "EXIF_ORIENTATIONS", "differing_orientations",
           "header_conversions", "orientation_mismatch_note"]

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
"""File-name suffixes (lower case) treated as images when listing dataset folders."""

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N"})
_UINT16_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)
_EXIF_ORIENTATION = 0x0112  # EXIF tag 274: 1 = stored upright, 2..8 = mirror and/or rotate to display


class InputWarning(UserWarning):
    """An input or target image was changed on reading (grayscale replicated, alpha dropped, 16 bits scaled, CMYK
    converted, frames after the first left out) or a dataset file was skipped; the message names the file. The CLI
    shows these as `warning:` lines. ``kind`` names a conversion made on reading, so that `data check` can group
    them: grayscale, alpha_dropped, 16_bit, netpbm_maxval, 32_bit, cmyk or first_frame; '' for other warnings."""

    def __init__(self, message: str = "", kind: str = "") -> None:
        super().__init__(message)
        self.kind = kind


class ImageReadError(ValueError):
    """An image file is missing, unreadable, corrupt, truncated or not an image; the message names it."""


def _scale_16_to_8(values: np.ndarray) -> np.ndarray:
    """round(v / 257) for integer v in [0, 65535]; v/257 never ends in exactly .5, so no tie rule is needed."""
    v = np.clip(values.astype(np.int64), 0, 65535)
    return ((v * 2 + 257) // 514).astype(np.uint8)


def _decode_png_with_rawmode(path: Path, rawmode: str) -> np.ndarray:
    """Decode a PNG with PIL's own decoder but another unpacker (same bits per pixel, so the PNG
    un-filtering is unchanged); used to reach the low bytes of 16-bit colour PNGs."""
    with Image.open(path) as im:
        if len(im.tile) != 1:
            raise OSError(f"unexpected PNG tile layout {im.tile!r}")
        tile = im.tile[0]
        im.tile = [tile._replace(args=rawmode) if hasattr(tile, "_replace") else (*tile[:3], rawmode)]
        im.load()
        return np.array(im)


def _read_png16_colour(path: Path, rawmode: str) -> np.ndarray:
    """16-bit RGB / RGBA / LA PNG -> uint16 array (H, W, C) at full precision (PIL alone keeps the high byte)."""
    if rawmode in ("RGB;16B", "RGBA;16B"):
        high = _decode_png_with_rawmode(path, rawmode).astype(np.uint16)
        low = _decode_png_with_rawmode(path, rawmode.replace(";16B", ";16L")).astype(np.uint16)
        return (high << 8) | low
    if rawmode == "LA;16B":  # 4 bytes per pixel: L_hi L_lo A_hi A_lo, read as 8-bit RGBA
        raw = _decode_png_with_rawmode(path, "RGBA").astype(np.uint16)
        return np.stack([(raw[..., 0] << 8) | raw[..., 1], (raw[..., 2] << 8) | raw[..., 3]], axis=-1)
    raise OSError(f"unsupported 16-bit PNG raw mode {rawmode}")


def _read_tiff16_colour(path: Path) -> np.ndarray:
    """16-bit colour TIFF -> uint16 array (H, W, C) via tifffile (a scikit-image dependency)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        data = page.asarray()
        axes = page.axes
    if "S" in axes and axes.index("S") != data.ndim - 1:
        data = np.moveaxis(data, axes.index("S"), -1)
    return data


def _sixteen_bit_colour(im: Image.Image) -> str | None:
    """'png:<rawmode>' or 'tiff' when ``im`` is a 16-bit colour file that PIL would truncate to 8 bits."""
    if im.format == "PNG" and len(im.tile) == 1:
        rawmode = im.tile[0][3]
        if isinstance(rawmode, str) and rawmode in ("RGB;16B", "RGBA;16B", "LA;16B"):
            return f"png:{rawmode}"
    if im.format == "TIFF" and im.mode in ("RGB", "RGBA", "LA"):
        bits = getattr(im, "tag_v2", {}).get(258)
        bits = bits if isinstance(bits, tuple) else (bits,)
        if 16 in bits:
            return "tiff"
    return None


def _netpbm_maxval(im: Image.Image) -> int | None:
    """The maxval of a PPM/PGM file (binary or plain) when it is above 255 (a 9- to 16-bit image), read from the
    header PIL parsed (before the pixels are decoded); None for any other file."""
    if im.format != "PPM" or not im.tile:
        return None
    args = im.tile[0].args
    if args == "I;16B":  # PIL reads a maxval-65535 PGM raw
        return 65535
    if isinstance(args, tuple) and len(args) == 2 and isinstance(args[1], int) and args[1] > 255:
        return args[1]
    return None


def _frame_count(im: Image.Image) -> int:
    """How many frames ``im``'s file holds (pages of a TIFF, frames of an APNG, an animated WebP or GIF), from its
    headers; 1 for an MPO JPEG (a camera photo with embedded previews, whose first image is the photo) and for a
    file whose later frames cannot be counted."""
    if im.format == "MPO":
        return 1
    try:
        return max(1, int(getattr(im, "n_frames", 1)))
    except (*_DECODE_ERRORS, TypeError):
        return 1


def _first_frame_message(path: Path, frames: int) -> str:
    return f"{path}: {frames} frames (pages or an animation); only the first is read"


def _uint16_to_rgb(data: np.ndarray) -> tuple[np.ndarray, bool]:
    """uint16 (H, W) or (H, W, C) -> (uint8 RGB, had_alpha)."""
    data = _scale_16_to_8(data)
    if data.ndim == 2:
        data = data[..., None]
    channels = data.shape[-1]
    if channels in (1, 2):
        return np.repeat(data[..., :1], 3, axis=-1), channels == 2
    return np.ascontiguousarray(data[..., :3]), channels == 4


FLOAT_IMAGE_REFUSAL = "floating-point images (PIL mode F) are not supported; save as 8 or 16 bit"
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders
_NOT_AN_IMAGE = "not an image or an unsupported format"


def _unidentified(path: Path) -> str:
    """Why PIL could not identify ``path``: a TIFF whose pixel layout PIL does not read (described by tifffile: its
    sample type and samples per pixel, with what to save instead), or not an image at all."""
    return _unsupported_tiff(path) or _NOT_AN_IMAGE


def _unsupported_tiff(path: Path) -> str | None:
    """For a TIFF that PIL cannot identify but tifffile can describe: the refusal naming its sample type and
    samples per pixel, with the advice to save it as 8 or 16 bit; None for any other file."""
    with open(path, "rb") as handle:
        if handle.read(4) not in _TIFF_MAGIC:
            return None
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            dtype, samples = np.dtype(page.dtype), int(page.samplesperpixel)
            photometric = getattr(page.photometric, "name", str(page.photometric))
            alpha = any(int(kind) in (1, 2) for kind in page.extrasamples)  # associated or unassociated alpha
    except Exception:  # tifffile cannot read it either: nothing to describe
        return None
    colours = {"MINISBLACK": 1, "MINISWHITE": 1, "RGB": 3}.get(photometric)
    layout = {1: "gray", 3: "RGB"}.get(colours or 0, photometric.lower())
    if colours is not None and samples > colours:
        layout += " + alpha" if samples == colours + 1 and alpha else f" + {samples - colours} extra samples"
    what = f"{samples} sample{'s' if samples != 1 else ''} per pixel: {layout}"
    if dtype.kind == "f":
        return f"floating-point images ({dtype.name} TIFF, {what}) are not supported; save as 8 or 16 bit"
    return f"a TIFF of this layout ({dtype.name}, {what}) is not supported; save as 8 or 16 bit gray, RGB or RGBA"


def _image_file(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path when it is a non-empty regular file; else ImageReadError naming it: missing, a broken
    symbolic link (and where it points), not a regular file, or empty (0 bytes)."""
    path = Path(path)
    if not path.is_file():
        if path.is_symlink() and not path.exists():
            raise ImageReadError(f"{path}: broken symbolic link (to {os.readlink(path)}, which does not exist)")
        raise ImageReadError(f"{path}: file not found" if not path.exists() else f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file (0 bytes)")
    return path


def read_rgb_uint8(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image as RGB uint8 (H, W, 3), like ``np.asarray(Image.open(p).convert('RGB'))``.

    Grayscale images are replicated to RGB (warning); palette images are converted; alpha is dropped (warning);
    16-bit images (I;16, 16-bit RGB/RGBA/LA PNG, 16-bit colour TIFF) are scaled with round(v/257)
    (warning); PPM/PGM files with a maxval above 255 with round(v*255/maxval) (warning); 32-bit integer images are
    read as 16-bit values clipped to [0, 65535] (warning); CMYK images are converted by PIL (warning); of a file
    holding several frames (a multi-page TIFF, an APNG, an animated WebP) only the first is read (warning).
    Raises ImageReadError naming the file when it is missing, empty, not an image, corrupt or truncated, or a
    floating-point image (or a TIFF of another layout PIL cannot read, described with its sample type and samples
    per pixel), with what to save instead.
    """
    path = _image_file(path)
    try:
        with Image.open(path) as im:
            grayscale = im.mode in _GRAY_MODES
            sixteen = _sixteen_bit_colour(im)
            if sixteen is not None:
                data = _read_tiff16_colour(path) if sixteen == "tiff" else _read_png16_colour(path, sixteen[4:])
                rgb, had_alpha = _uint16_to_rgb(data)
                warnings.warn(InputWarning(f"{path}: 16-bit image scaled to 8 bits with round(v/257)", "16_bit"),
                              stacklevel=2)
            elif (maxval := _netpbm_maxval(im)) is not None:  # PIL scales these itself: colour to 8 bits, gray to 16
                im.load()
                rgb, had_alpha = _uint16_to_rgb(np.asarray(im)) if im.mode == "I" else (np.array(im.convert("RGB")),
                                                                                        False)
                warnings.warn(InputWarning(f"{path}: {maxval.bit_length()}-bit image (maxval {maxval}) scaled to 8 "
                                           f"bits with round(v*255/{maxval})", "netpbm_maxval"), stacklevel=2)
            else:
                im.load()
                rgb, had_alpha = _pil_to_rgb(im, path)
            frames = _frame_count(im)  # counted after the pixels are copied out: counting TIFF pages seeks
    except ImageReadError:
        raise
    except UnidentifiedImageError as err:
        raise ImageReadError(f"{path}: {_unidentified(path)}") from err
    except _DECODE_ERRORS as err:
        raise ImageReadError(f"{path}: corrupt or truncated image ({err})") from err
    if grayscale:
        warnings.warn(InputWarning(f"{path}: grayscale image replicated to 3 RGB channels, as PIL convert('RGB')",
                                   "grayscale"), stacklevel=2)
    if had_alpha:
        warnings.warn(InputWarning(f"{path}: alpha channel dropped (not composited), as PIL convert('RGB')",
                                   "alpha_dropped"), stacklevel=2)
    if frames > 1:
        warnings.warn(InputWarning(_first_frame_message(path, frames), "first_frame"), stacklevel=2)
    return rgb


def header_conversions(path: str | Path) -> tuple[str, ...]:
    """The conversions :func:`read_rgb_uint8` makes on reading ``path``, as the ``kind`` of each InputWarning it
    states (16_bit, netpbm_maxval, 32_bit or cmyk, then grayscale, then alpha_dropped, then first_frame), from the
    file's headers alone (no pixels decoded; the same tests in the same order as read_rgb_uint8); () when the header
    cannot be read."""
    try:
        with Image.open(path) as im:
            mode = im.mode
            if _sixteen_bit_colour(im) is not None:
                depth: tuple[str, ...] = ("16_bit",)
            elif _netpbm_maxval(im) is not None:
                depth = ("netpbm_maxval",)
            elif mode in _UINT16_MODES:
                depth = ("16_bit",)
            elif mode == "I":
                depth = ("32_bit",)
            elif mode == "CMYK":
                depth = ("cmyk",)
            else:
                depth = ()
            alpha = mode in _ALPHA_MODES or (mode == "P" and "transparency" in im.info)
            frames = _frame_count(im)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        return ()
    return (*depth, *(("grayscale",) if mode in _GRAY_MODES else ()), *(("alpha_dropped",) if alpha else ()),
            *(("first_frame",) if frames > 1 else ()))


def _pil_to_rgb(im: Image.Image, path: Path) -> tuple[np.ndarray, bool]:
    """A loaded 8-bit / 16-bit / 32-bit PIL image -> (uint8 RGB, had_alpha)."""
    mode = im.mode
    if mode in _UINT16_MODES:
        warnings.warn(InputWarning(f"{path}: 16-bit image ({mode}) scaled to 8 bits with round(v/257)", "16_bit"),
                      stacklevel=3)
        return _uint16_to_rgb(np.asarray(im))
    if mode == "I":
        warnings.warn(InputWarning(f"{path}: 32-bit integer image read as 16-bit values, scaled with round(v/257)",
                                   "32_bit"), stacklevel=3)
        return _uint16_to_rgb(np.asarray(im))
    if mode == "F":
        raise ImageReadError(f"{path}: {FLOAT_IMAGE_REFUSAL}")
    if mode == "CMYK":
        warnings.warn(InputWarning(f"{path}: CMYK image converted to RGB as PIL convert('RGB') does (no colour "
                                   "management: colours can differ from a viewer's)", "cmyk"), stacklevel=3)
    had_alpha = mode in _ALPHA_MODES or (mode == "P" and "transparency" in im.info)
    rgb = im if mode == "RGB" else im.convert("RGB")
    return np.array(rgb, dtype=np.uint8), had_alpha


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(H, W) from the file header, without decoding the pixels. Raises ImageReadError naming the file, also for
    a file whose header shows that :func:`read_rgb_uint8` would refuse it (a floating-point image), so that such
    a file is refused before any work rather than when it is scored."""
    path = _image_file(path)
    try:
        with Image.open(path) as im:
            width, height = im.size
            if im.mode == "F":
                raise ImageReadError(f"{path}: {FLOAT_IMAGE_REFUSAL}")
    except ImageReadError:
        raise
    except UnidentifiedImageError as err:
        raise ImageReadError(f"{path}: {_unidentified(path)}") from err
    except _DECODE_ERRORS as err:
        raise ImageReadError(f"{path}: unreadable image header ({err})") from err
    return int(height), int(width)


_PNG_LATE_METADATA = frozenset({b"eXIf", b"tEXt", b"zTXt", b"iTXt"})  # chunks PIL reads EXIF and XMP from


def _png_metadata_after_pixels(path: str | os.PathLike[str]) -> bool:
    """Whether a PNG holds an EXIF or text chunk after its first IDAT chunk, where PIL finds it only by decoding
    the pixels; walks the chunk headers and decodes nothing."""
    with open(path, "rb") as handle:
        handle.seek(8)  # the PNG signature
        pixels_seen = False
        while len(head := handle.read(8)) == 8:
            length, kind = struct.unpack(">I4s", head)
            if kind == b"IEND":
                return False
            if kind == b"IDAT":
                pixels_seen = True
            elif pixels_seen and kind in _PNG_LATE_METADATA:
                return True
            handle.seek(length + 4, os.SEEK_CUR)  # the data and its CRC
    return False


def exif_orientation(path: str | os.PathLike[str]) -> int:
    """The EXIF orientation tag of an image file (1..8), or 1 when it has none, an invalid one or no readable EXIF.

    :func:`read_rgb_uint8` ignores it, as the reference scripts do (pixels are read as stored); a camera photo
    with orientation 6 is then read lying on its side. Only headers are read (a PNG's pixels are decoded only when
    its EXIF follows them), so checking a whole test set costs about as little as reading its sizes. Raises
    nothing: a file that cannot be read reports 1."""
    try:
        with Image.open(path) as im:
            if im.format == "PNG" and "exif" not in im.info and not _png_metadata_after_pixels(path):
                exif = Image.Image.getexif(im)  # what the chunks before the pixels hold (PIL's PNG getexif decodes)
            else:
                exif = im.getexif()
            value = exif.get(_EXIF_ORIENTATION, 1)
    except (*_DECODE_ERRORS, UnidentifiedImageError):
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


EXIF_ORIENTATIONS = {1: "upright", 2: "mirrored left to right", 3: "turned 180 degrees",
                     4: "mirrored top to bottom", 5: "mirrored across its diagonal (transposed)",
                     6: "turned 90 degrees clockwise", 7: "mirrored across its other diagonal (transverse)",
                     8: "turned 90 degrees counter-clockwise"}
"""How viewers show the stored pixels of an image with each EXIF orientation (1..8)."""


QUARTER_TURN_ADVICE = ("pixels are read as stored, as the reference scripts read them: save such images upright "
                       "(e.g. with PIL.ImageOps.exif_transpose)")
"""What to do about an image that an EXIF orientation turns a quarter turn in viewers (see
:func:`quarter_turned_by_exif`)."""


def quarter_turned_by_exif(paths: tuple[Path, Path], sizes: tuple[tuple[int, int], tuple[int, int]]) -> list[str]:
    """For two images whose (H, W) ``sizes`` are each other's transpose: those of ``paths`` whose EXIF orientation
    (5..8) turns them a quarter turn in viewers, as 'PATH (EXIF orientation N)'; [] otherwise. Such a pair looks
    alike in a viewer but differs as stored, which is how bench-ir (and the references) read it."""
    if tuple(sizes[0]) != tuple(sizes[1])[::-1] or sizes[0][0] == sizes[0][1]:
        return []
    turned = [(path, exif_orientation(path)) for path in paths]
    return [f"{path} (EXIF orientation {orientation})" for path, orientation in turned if orientation >= 5]


def quarter_turn_note(paths: tuple[Path, Path], sizes: tuple[tuple[int, int], tuple[int, int]]) -> str:
    """'; PATH (EXIF orientation N) is turned a quarter turn in viewers, but ...' to end a size-mismatch message
    (see :func:`quarter_turned_by_exif`), or '' when no EXIF orientation explains the mismatch."""
    turned = quarter_turned_by_exif(paths, sizes)
    return f"; {', '.join(turned)} is turned a quarter turn in viewers, but {QUARTER_TURN_ADVICE}" if turned else ""


def differing_orientations(paths: tuple[Path, Path]) -> tuple[int, int] | None:
    """The (input, target) EXIF orientations of a pair when they differ, else None."""
    orientations = exif_orientation(paths[0]), exif_orientation(paths[1])
    return orientations if orientations[0] != orientations[1] else None


def orientation_mismatch_note(paths: tuple[Path, Path]) -> str:
    """For an (input, target) pair whose EXIF orientations differ: 'input PATH has EXIF orientation 6 (turned 90
    degrees clockwise in viewers) and target PATH has 1 (upright): ...' with what to do; '' when they agree. Such
    a pair is shown turned differently in viewers, while bench-ir (and the references) score the pixels as
    stored; a pair of transposed sizes is named by :func:`quarter_turn_note` instead."""
    differing = differing_orientations(paths)
    if differing is None:
        return ""
    (source, target), (of_source, of_target) = paths, differing
    return (f"input {source} has EXIF orientation {of_source} ({EXIF_ORIENTATIONS[of_source]} in viewers) and "
            f"target {target} has {of_target} ({EXIF_ORIENTATIONS[of_target]}): viewers show the pair turned "
            f"differently, but {QUARTER_TURN_ADVICE}")


def to_uint8_hwc(image: Any) -> np.ndarray:
    """uint8 (H, W, 3) from a uint8 array (H, W[, C]) or a float array/tensor in [0, 1], (C, H, W) or (H, W, C)
    for arrays, (C, H, W) or (1, C, H, W) for tensors. Floats are clipped to [0, 1], scaled by 255 and rounded
    half to even (the common ``img_as_ubyte``-style quantisation)."""
    if hasattr(image, "detach"):  # torch tensor
        tensor = image.detach().cpu()
        if tensor.ndim == 4 and tensor.shape[0] == 1:
            tensor = tensor[0]
        if tensor.ndim != 3:
            raise ValueError(f"expected a (C, H, W) tensor, got shape {tuple(tensor.shape)}")
        array = tensor.permute(1, 2, 0).numpy()
    else:
        array = np.asarray(image)
        if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
            array = np.transpose(array, (1, 2, 0))
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"expected uint8 or float pixels, got {array.dtype}")
        array = np.round(np.clip(array.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3):
        raise ValueError(f"expected an image with 1 or 3 channels, got shape {array.shape}")
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return np.ascontiguousarray(array)


def write_png_uint8(path: str | os.PathLike[str], image: Any, orientation: int = 1) -> Path:
    """Save ``image`` (see :func:`to_uint8_hwc`) as an 8-bit RGB PNG, atomically (temporary file in the same
    folder, then rename); parent folders are created. An ``orientation`` other than 1 (an EXIF orientation,
    2..8) is stored in the PNG's eXIf chunk, so viewers turn the image as they turn its source; the pixels are
    written as given. Returns the path written."""
    path = Path(path)
    rgb = to_uint8_hwc(image)
    options: dict[str, Any] = {}
    if orientation != 1:
        if orientation not in range(2, 9):
            raise ValueError(f"EXIF orientation must be 1..8, got {orientation!r}")
        exif = Image.Exif()
        exif[_EXIF_ORIENTATION] = orientation
        options["exif"] = exif.tobytes()
    with atomic_write(path, "wb") as handle:
        Image.fromarray(rgb).save(handle, format="PNG", **options)
    return path
