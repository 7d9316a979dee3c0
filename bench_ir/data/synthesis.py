"""Deterministic synthesis of degraded inputs: the reference Gaussian-noise stream and the sample degradations.

Everything here is a pure function of its arguments; no global random state is read or changed.

* Noise (the reference test scripts' Gaussian noise): ``noisy = clip(clean + draws * sigma, 0, 255)`` in float64,
  then cast to uint8 (truncation). :class:`ReferenceNoiseStream` replays the reference test loop (one legacy
  ``RandomState(seed)``; for each sigma in turn, for each image in order, ``randn(H, W, 3)``) and hands out
  any single image's draws without holding the whole stream.
* Sample degradations: ``f(clean uint8 (H, W, 3), rng) -> uint8 (H, W, 3)`` of the same size, computed in
  float32 on the sRGB values in [0, 1] and rounded back to 8 bits. Lengths are given for an image whose long
  side is 256 px and scale with the long side. They make the built-in sample data (``--sample``); they are
  plausible stand-ins for the benchmark degradations, not replicas of the datasets' synthesis.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

__all__ = [
    "gaussian_noise_uint8",
    "ReferenceNoiseStream",
    "per_image_rng",
    "DEGRADATIONS",
    "list_degradations",
    "apply_degradations",
]

Degradation = Callable[[np.ndarray, np.random.Generator], np.ndarray]


# scipy is imported on first use: scipy.signal and scipy.ndimage take over a second to import, and the Gaussian noise
# of the denoising protocols (the use of this module in every `bench-ir run` on the benchmark data) needs neither.
def _fftconvolve(*args, **kwargs) -> np.ndarray:
    from scipy.signal import fftconvolve

    return fftconvolve(*args, **kwargs)


def _gaussian_filter(*args, **kwargs) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(*args, **kwargs)


def _uniform_filter(*args, **kwargs) -> np.ndarray:
    from scipy.ndimage import uniform_filter

    return uniform_filter(*args, **kwargs)


# ----------------------------------------------------------------------------------------------- noise
def gaussian_noise_uint8(
    clean_uint8: np.ndarray, sigma: float, normal_draws: np.ndarray, truncate: bool = True
) -> np.ndarray:
    """Reference noisy image: clip(clean + draws * sigma, 0, 255) in float64, then uint8.

    sigma is on the 0-255 scale; ``normal_draws`` are N(0, 1) float64 of the image's shape (H, W, 3).
    ``truncate=True`` casts like ``astype(np.uint8)`` (towards zero, the references); False rounds half to even.
    """
    if normal_draws.shape != clean_uint8.shape:
        raise ValueError(f"noise draws of shape {normal_draws.shape} do not match the image {clean_uint8.shape}")
    noisy = np.clip(clean_uint8.astype(np.float64) + normal_draws * float(sigma), 0.0, 255.0)
    return (noisy if truncate else np.round(noisy)).astype(np.uint8)


class ReferenceNoiseStream:
    """The reference test loop's noise: ``RandomState(seed)`` once; for each sigma of ``sigmas`` in order,
    for each (name, (H, W)) of ``shapes`` in the given order, ``randn(H, W, 3)``.

    ``draws(name, sigma)`` returns exactly the draws that loop used for that image and sigma. The stream is
    replayed once, lazily and only as far as needed, recording the generator state (which includes the legacy
    cached Gaussian left by an odd draw count) before each draw; memory is one state per (sigma, image).
    """

    def __init__(self, shapes: Sequence[tuple[str, tuple[int, int]]], sigmas: Sequence[float] = (15, 25, 50),
                 seed: int = 0) -> None:
        self.shapes = {name: (int(h), int(w)) for name, (h, w) in shapes}
        if len(self.shapes) != len(shapes):
            raise ValueError("ReferenceNoiseStream: duplicate image names")
        self.sigmas = [float(s) for s in sigmas]
        if len(set(self.sigmas)) != len(self.sigmas):
            raise ValueError(f"ReferenceNoiseStream: duplicate sigmas {self.sigmas}")
        self.seed = int(seed)
        self._order = [(sigma, name) for sigma in self.sigmas for name, _ in shapes]
        self._states: dict[tuple[float, str], tuple] = {}
        self._rng = np.random.RandomState(self.seed)
        self._cursor = 0

    def _advance(self, stop: int) -> None:
        while self._cursor < stop:
            sigma, name = self._order[self._cursor]
            self._states[(sigma, name)] = self._rng.get_state()
            self._rng.standard_normal((*self.shapes[name], 3))
            self._cursor += 1

    def prepare(self, sigma: float | None = None) -> None:
        """Replay the stream to the end of ``sigma``'s segment (all of it when None), e.g. before forking."""
        if sigma is None:
            self._advance(len(self._order))
        else:
            self._advance((self._sigma_index(sigma) + 1) * len(self.shapes))

    def _sigma_index(self, sigma: float) -> int:
        try:
            return self.sigmas.index(float(sigma))
        except ValueError:
            raise KeyError(f"sigma {sigma} is not in the noise stream's sigmas {self.sigmas}") from None

    def draws(self, name: str, sigma: float) -> np.ndarray:
        """N(0, 1) float64 draws (H, W, 3) of image ``name`` for ``sigma``."""
        if name not in self.shapes:
            raise KeyError(f"image '{name}' is not in the noise stream")
        key = (float(sigma), name)
        if key not in self._states:
            self._advance(self._order.index(key, self._sigma_index(sigma) * len(self.shapes)) + 1)
        replay = np.random.RandomState()
        replay.set_state(self._states[key])
        return replay.standard_normal((*self.shapes[name], 3))


def per_image_rng(*parts: object) -> np.random.Generator:
    """A NumPy Generator (PCG64) seeded from sha256 of the parts (e.g. image name, task, seed), so each image
    has its own stream whatever the order, subset or machine. Parts are joined unambiguously (JSON list of str).
    """
    digest = hashlib.sha256(json.dumps([str(p) for p in parts]).encode("utf-8")).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "little")))


# ------------------------------------------------------------------------------------------- helpers
def _to_float(img: np.ndarray) -> np.ndarray:
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {img.dtype} {img.shape}")
    return img.astype(np.float32) / np.float32(255.0)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def _scale(img: np.ndarray) -> float:
    """Length unit: 1 for a long side of 256 px."""
    return float(np.clip(max(img.shape[:2]) / 256.0, 0.25, 8.0))


def _smooth_field(rng: np.random.Generator, height: int, width: int, cells: int = 4) -> np.ndarray:
    """Low-frequency noise of unit-ish amplitude: a (cells+1)^2 N(0,1) grid upsampled bicubically."""
    grid = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    return np.asarray(Image.fromarray(grid).resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)


def _splat_kernel(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Rasterise a path of points (pixels, centred on its centroid) with bilinear weights; sums to 1."""
    xs, ys = xs - xs.mean(), ys - ys.mean()
    radius = int(math.ceil(max(np.abs(xs).max(), np.abs(ys).max()))) + 1
    kernel = np.zeros((2 * radius + 1, 2 * radius + 1), np.float64)
    px, py = xs + radius, ys + radius
    x0, y0 = np.floor(px).astype(int), np.floor(py).astype(int)
    fx, fy = px - x0, py - y0
    for dy, dx, weight in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(kernel, (y0 + dy, x0 + dx), weight)
    return (kernel / kernel.sum()).astype(np.float32)


def _line_kernel(length: float, angle_deg: float) -> np.ndarray:
    """Straight motion path of ``length`` px at ``angle_deg`` from the x axis (90 = vertical)."""
    t = np.linspace(-length / 2, length / 2, max(2, int(length * 4)))
    angle = math.radians(angle_deg)
    return _splat_kernel(t * math.cos(angle), t * math.sin(angle))


def _convolve_rgb(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve each channel of (H, W, 3) with ``kernel``; reflect padding keeps the image size."""
    ry, rx = kernel.shape[0] // 2, kernel.shape[1] // 2
    padded = np.pad(x, ((ry, ry), (rx, rx), (0, 0)), mode="reflect")
    return _fftconvolve(padded, kernel[..., None], mode="valid", axes=(0, 1)).astype(np.float32)


def _box_gauss(x: np.ndarray, sigma: float) -> np.ndarray:
    """Wide Gaussian blur of (H, W, 3) approximated by three box filters (cost independent of sigma)."""
    width = max(1, int(round(math.sqrt(4.0 * sigma * sigma + 1.0))))
    for _ in range(3):
        x = _uniform_filter(x, size=(width, width, 1), mode="reflect")
    return x


def _depth_map(rng: np.random.Generator, height: int, width: int, wobble: float) -> np.ndarray:
    """Synthetic scene distance in [0.05, 1.2]: far at the top, near at the bottom, plus smooth variation."""
    rows = np.linspace(1.0, 0.0, height, dtype=np.float32)[:, None]
    depth = 0.3 + 0.7 * rows + wobble * _smooth_field(rng, height, width, cells=3)
    return np.clip(depth, 0.05, 1.2)


# ------------------------------------------------------------------------------------------ weather
def haze(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Atmospheric scattering I = J·t + A·(1 - t), t = exp(-beta·d): d a vertical depth gradient plus smooth
    noise (0.05-1.2), beta ~ U(0.5, 1.1), airlight A ~ U(0.7, 0.9) grey with a ±0.02 per-channel tint."""
    img = _to_float(clean)
    depth = _depth_map(rng, *img.shape[:2], wobble=0.12)
    beta = rng.uniform(0.5, 1.1)
    airlight = (rng.uniform(0.7, 0.9) + rng.uniform(-0.02, 0.02, 3)).astype(np.float32)
    t = np.exp(-beta * depth)[..., None]
    return _to_uint8(img * t + airlight * (1.0 - t))


def _rain(clean: np.ndarray, rng: np.random.Generator, density: tuple[float, float], length: tuple[float, float],
          strength: tuple[float, float], thickness: float) -> np.ndarray:
    """Additive rain streaks O = B + a·S: sparse random seeds drawn out along one direction (±20° from
    vertical), softened by a Gaussian of ``thickness`` px, scaled by a and clipped."""
    img = _to_float(clean)
    height, width = img.shape[:2]
    scale = _scale(img)
    seeds = (rng.random((height, width)) < rng.uniform(*density)).astype(np.float32)
    seeds *= rng.uniform(0.4, 1.0, (height, width)).astype(np.float32)
    kernel = _line_kernel(rng.uniform(*length) * scale, 90.0 + rng.uniform(-20.0, 20.0))
    streaks = _fftconvolve(seeds, kernel / kernel.max(), mode="same")
    streaks = np.clip(_gaussian_filter(streaks, thickness * scale), 0.0, 1.0).astype(np.float32)
    tint = rng.uniform(0.9, 1.0, 3).astype(np.float32)
    return _to_uint8(img + rng.uniform(*strength) * streaks[..., None] * tint)


def rain(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Light rain (Rain100L-like): seed density 0.3-0.6 %, streaks 10-20 px, strength 0.4-0.7."""
    return _rain(clean, rng, density=(0.003, 0.006), length=(10.0, 20.0), strength=(0.4, 0.7), thickness=0.5)


def heavy_rain(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Heavy rain: seed density 0.8-1.2 %, streaks 20-35 px, thicker, strength 0.6-0.85."""
    return _rain(clean, rng, density=(0.008, 0.012), length=(20.0, 35.0), strength=(0.6, 0.85), thickness=0.7)


def _snow(clean: np.ndarray, rng: np.random.Generator, layers: Sequence[tuple[float, float]],
          fall: tuple[float, float], veil: tuple[float, float]) -> np.ndarray:
    """Snow: per size class (seed density, blob sigma px) random flakes are Gaussian blobs; the flake mask M
    (maximum over classes, smeared along a short fall path) blends white in: I = J·(1-M) + w·M, plus a
    uniform white veil of ``veil`` opacity."""
    img = _to_float(clean)
    height, width = img.shape[:2]
    scale = _scale(img)
    mask = np.zeros((height, width), np.float32)
    for density, sigma in layers:
        flakes = (rng.random((height, width)) < density).astype(np.float32)
        flakes *= rng.uniform(0.6, 1.0, (height, width)).astype(np.float32)
        sigma = sigma * scale
        blobs = _gaussian_filter(flakes, sigma) * np.float32(2.0 * math.pi * sigma * sigma)
        mask = np.maximum(mask, blobs)
    kernel = _line_kernel(rng.uniform(*fall) * scale, 90.0 + rng.uniform(-30.0, 30.0))
    mask = np.clip(_fftconvolve(mask, kernel / kernel.max(), mode="same") * 0.8, 0.0, 1.0)[..., None]
    white = np.float32(rng.uniform(0.9, 1.0))
    out = img * (1.0 - mask) + white * mask
    opacity = np.float32(rng.uniform(*veil))
    return _to_uint8(out * (1.0 - opacity) + white * opacity)


def snow(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Light snow (Snow100K-S-like): many small flakes (sigma 0.6-1.2 px), few 2 px ones, faint veil."""
    layers = ((0.003, 0.6), (0.001, 1.2), (0.0002, 2.0))
    return _snow(clean, rng, layers, fall=(2.0, 4.0), veil=(0.0, 0.04))


def heavy_snow(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Heavy snow (Snow100K-L-like): denser and larger flakes (up to sigma 3.5 px), longer fall, thicker veil."""
    layers = ((0.004, 0.7), (0.0012, 1.5), (0.0004, 2.5), (0.0001, 3.5))
    return _snow(clean, rng, layers, fall=(3.0, 6.0), veil=(0.03, 0.08))


def raindrop(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Adherent raindrops: 10-20 elliptical drops (radius 4-8 % of the short side, per 256x256 of area) act
    as small inverted, minifying lenses (factor 1.5-3) onto an out-of-focus copy of the scene (Gaussian
    sigma 1.5-3 px); each is slightly brightened, darkened at the rim and blended with a soft edge."""
    img = _to_float(clean)
    height, width = img.shape[:2]
    scale = _scale(img)
    background = _gaussian_filter(img, (rng.uniform(1.5, 3.0) * scale,) * 2 + (0,))
    out = img.copy()
    count = max(3, int(round(rng.integers(10, 21) * height * width / 256.0**2)))
    for _ in range(count):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        rx = rng.uniform(0.04, 0.08) * min(height, width)
        ry = rx * rng.uniform(0.8, 1.25)
        top, bottom = max(0, int(cy - ry) - 1), min(height, int(cy + ry) + 2)
        left, right = max(0, int(cx - rx) - 1), min(width, int(cx + rx) + 2)
        if bottom <= top or right <= left:
            continue
        yy, xx = np.mgrid[top:bottom, left:right].astype(np.float32)
        rho2 = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
        alpha = np.clip((1.0 - rho2) / 0.2, 0.0, 1.0)[..., None]
        magnify = rng.uniform(1.5, 3.0)
        src_y = np.clip(np.rint(cy - magnify * (yy - cy) - ry), 0, height - 1).astype(int)
        src_x = np.clip(np.rint(cx - magnify * (xx - cx)), 0, width - 1).astype(int)
        drop = background[src_y, src_x] * rng.uniform(1.0, 1.15) * (1.0 - 0.35 * np.clip(rho2, 0, 1) ** 4)[..., None]
        out[top:bottom, left:right] = out[top:bottom, left:right] * (1.0 - alpha) + drop * alpha
    return _to_uint8(out)


# ---------------------------------------------------------------------------------- camera / medium
def motion_blur(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Camera shake: convolution with a smooth random-walk path of 9-21 px (direction uniform, heading
    changing by N(0, 0.12 rad) per px), centred on its centroid; reflect padding at the borders."""
    img = _to_float(clean)
    length = rng.uniform(9.0, 21.0) * _scale(img)
    steps = max(8, int(length * 4))
    heading = rng.uniform(0.0, 2.0 * math.pi) + np.cumsum(rng.normal(0.0, 0.12 / 2.0, steps))
    xs = np.concatenate([[0.0], np.cumsum(np.cos(heading) * length / steps)])
    ys = np.concatenate([[0.0], np.cumsum(np.sin(heading) * length / steps)])
    return _to_uint8(_convolve_rgb(img, _splat_kernel(xs, ys)))


def low_light(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Under-exposure: x = k·J^gamma (gamma ~ U(1.0, 1.25), k ~ U(0.3, 0.45)) plus sensor noise — photon noise
    with std sqrt(x/P), P ~ U(300, 1000) photons at full scale, and read noise ~ U(0.002, 0.006) — quantised."""
    img = _to_float(clean)
    dark = rng.uniform(0.3, 0.45) * img ** np.float32(rng.uniform(1.0, 1.25))
    photons, read = rng.uniform(300.0, 1000.0), rng.uniform(0.002, 0.006)
    noise = rng.standard_normal(img.shape, dtype=np.float32)
    noisy = dark + noise * np.sqrt(dark / photons + read * read).astype(np.float32)
    return _to_uint8(noisy)


def underwater(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Underwater image formation I_c = J_c·t_c + B_c·(1 - t_c), t_c = exp(-beta_c·d): attenuation strongest
    for red (beta ~ U(0.7, 1.3)) then green (0.25-0.5) and blue (0.15-0.35), distance d = 0.6-1.5 (depth
    map + 0.6); blue-green backscatter B = (0.05-0.15, 0.35-0.55, 0.45-0.7); mild forward-scatter blur."""
    img = _to_float(clean)
    depth = 0.6 + 0.8 * _depth_map(rng, *img.shape[:2], wobble=0.15)[..., None]
    beta = np.array([rng.uniform(0.7, 1.3), rng.uniform(0.25, 0.5), rng.uniform(0.15, 0.35)], np.float32)
    backscatter = np.array([rng.uniform(0.05, 0.15), rng.uniform(0.35, 0.55), rng.uniform(0.45, 0.7)], np.float32)
    t = np.exp(-beta * depth)
    out = img * t + backscatter * (1.0 - t)
    return _to_uint8(_gaussian_filter(out, (0.7 * _scale(img),) * 2 + (0,)))


def _udc(clean: np.ndarray, rng: np.random.Generator, core: tuple[float, float], halo: tuple[float, float],
         halo_weight: tuple[float, float], transmission: tuple[float, float], gains: Sequence[tuple[float, float]],
         noise: tuple[float, float]) -> np.ndarray:
    """Under-display camera: PSF = (1-w)·G(core sigma) + w·G(halo sigma) (diffraction by the display's pixel
    grid spreads light into a wide halo), times panel transmission and per-channel gains, plus read noise."""
    img = _to_float(clean)
    scale = _scale(img)
    weight = np.float32(rng.uniform(*halo_weight))
    sharp = _gaussian_filter(img, (rng.uniform(*core) * scale,) * 2 + (0,))
    blurred = (1.0 - weight) * sharp + weight * _box_gauss(img, rng.uniform(*halo) * scale)
    colour = np.array([rng.uniform(*g) for g in gains], np.float32)
    dimmed = blurred * np.float32(rng.uniform(*transmission)) * colour
    return _to_uint8(dimmed + rng.uniform(*noise) * rng.standard_normal(img.shape, dtype=np.float32))


def udc_toled(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Transparent OLED display: core blur sigma 0.8-1.4 px, halo sigma 5-9 px of weight 0.15-0.3,
    transmission 0.8-0.92 (slightly dimmer), neutral colour, noise std 0.004-0.01."""
    return _udc(clean, rng, core=(0.8, 1.4), halo=(5.0, 9.0), halo_weight=(0.15, 0.3), transmission=(0.8, 0.92),
                gains=((0.97, 1.03),) * 3, noise=(0.004, 0.01))


def udc_poled(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pentile OLED display: much lower transmission 0.45-0.6, yellow-green cast (gains R 0.95-1.05,
    G 0.85-0.95, B 0.6-0.75), stronger blur (core 1.5-2.5 px, halo 8-14 px of weight 0.25-0.4), noise 0.01-0.02."""
    return _udc(clean, rng, core=(1.5, 2.5), halo=(8.0, 14.0), halo_weight=(0.25, 0.4), transmission=(0.45, 0.6),
                gains=((0.95, 1.05), (0.85, 0.95), (0.6, 0.75)), noise=(0.01, 0.02))


# ------------------------------------------------------------------------------------------ registry
DEGRADATIONS: dict[str, Degradation] = {
    "haze": haze,
    "rain": rain,
    "heavy_rain": heavy_rain,
    "motion_blur": motion_blur,
    "low_light": low_light,
    "snow": snow,
    "heavy_snow": heavy_snow,
    "raindrop": raindrop,
    "underwater": underwater,
    "udc_toled": udc_toled,
    "udc_poled": udc_poled,
}


def list_degradations() -> list[str]:
    """Names of the sample degradations, sorted."""
    return sorted(DEGRADATIONS)


def apply_degradations(clean: np.ndarray, names: Sequence[str], *seed_parts: object) -> np.ndarray:
    """Apply the named degradations in order to a uint8 (H, W, 3) image; degradation ``n`` draws from
    ``per_image_rng(n, *seed_parts)`` (e.g. seed_parts = image name, task, "sample").
    An unknown name is a KeyError listing the known ones."""
    unknown = [n for n in names if n not in DEGRADATIONS]
    if unknown:
        raise KeyError(f"unknown degradation(s) {unknown}; known: {', '.join(list_degradations())}")
    out = clean
    for name in names:
        out = DEGRADATIONS[name](out, per_image_rng(name, *seed_parts))
    return out
