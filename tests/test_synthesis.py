"""Deterministic synthesis: reference noise stream replay, per-image generators, sample degradations."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bench_ir.data.sample import load_sample_photo
from bench_ir.data.synthesis import (
    DEGRADATIONS,
    ReferenceNoiseStream,
    apply_degradations,
    gaussian_noise_uint8,
    list_degradations,
    per_image_rng,
)

SHAPES = [("a.png", (5, 7)), ("b.png", (4, 4)), ("c.png", (3, 3)), ("d.png", (2, 5)), ("e.png", (1, 1))]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def _reference_loop(shapes, sigmas, seed=0):
    """The reference test script, verbatim in spirit: seed the global legacy RNG once, loop sigmas then
    images, np.random.randn(H, W, 3) per image. The caller's global state is restored afterwards."""
    saved = np.random.get_state()
    try:
        np.random.seed(seed)
        out = {}
        for sigma in sigmas:
            for name, (height, width) in shapes:
                out[(name, sigma)] = np.random.randn(height, width, 3)
        return out
    finally:
        np.random.set_state(saved)


def test_noise_is_clipped_then_truncated_not_rounded():
    clean = np.array([[[10, 10, 250]]], dtype=np.uint8)
    draws = np.array([[[0.9, -0.95, 0.9]]]) / 10.0  # sigma 10: +0.9, -0.95, +0.9
    assert gaussian_noise_uint8(clean, 10, draws).tolist() == [[[10, 9, 250]]]
    assert gaussian_noise_uint8(clean, 10, draws, truncate=False).tolist() == [[[11, 9, 251]]]
    big = np.array([[[3.0, -3.0, 3.0]]])
    assert gaussian_noise_uint8(clean, 50, big).tolist() == [[[160, 0, 255]]]


def test_noise_draws_must_match_the_image_shape():
    with pytest.raises(ValueError, match="do not match"):
        gaussian_noise_uint8(np.zeros((4, 4, 3), np.uint8), 25, np.zeros((4, 5, 3)))


def test_reference_stream_replays_the_straight_loop_for_every_image_and_sigma():
    sigmas = [15, 25, 50]
    expected = _reference_loop(SHAPES, sigmas)
    stream = ReferenceNoiseStream(SHAPES, sigmas, seed=0)
    requests = [(name, sigma) for sigma in reversed(sigmas) for name, _ in reversed(SHAPES)]  # out of order
    for name, sigma in requests:
        np.testing.assert_array_equal(stream.draws(name, sigma), expected[(name, sigma)])


def test_reference_stream_odd_draw_counts_carry_the_cached_gaussian():
    # 3*3*3 = 27 draws: the legacy generator keeps the 28th Gaussian for the next image
    shapes = [("odd.png", (3, 3)), ("next.png", (2, 2))]
    expected = _reference_loop(shapes, [25])
    naive = np.random.RandomState(0)
    naive.randn(3, 3, 3)
    without_cache = np.random.RandomState()
    state = list(naive.get_state())
    state[3], state[4] = 0, 0.0  # drop the cached value
    without_cache.set_state(tuple(state))
    assert not np.array_equal(without_cache.randn(2, 2, 3), expected[("next.png", 25)])
    np.testing.assert_array_equal(ReferenceNoiseStream(shapes, [25]).draws("next.png", 25),
                                  expected[("next.png", 25)])


def test_reference_stream_sigma_25_is_the_second_segment():
    expected = _reference_loop(SHAPES, [15, 25, 50], seed=3)
    only_25 = _reference_loop(SHAPES, [25], seed=3)
    stream = ReferenceNoiseStream(SHAPES, [15, 25, 50], seed=3)
    np.testing.assert_array_equal(stream.draws("b.png", 25), expected[("b.png", 25)])
    assert not np.array_equal(stream.draws("b.png", 25), only_25[("b.png", 25)])


def test_reference_stream_leaves_the_global_rng_alone_and_rejects_unknown_keys():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    stream = ReferenceNoiseStream(SHAPES)
    stream.draws("c.png", 50)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    with pytest.raises(KeyError, match="sigma 30"):
        stream.draws("a.png", 30)
    with pytest.raises(KeyError, match="zzz"):
        stream.draws("zzz.png", 15)


def test_per_image_rng_is_a_pure_function_of_its_parts():
    a = per_image_rng("0001.png", "denoise-25", 0).standard_normal(8)
    assert np.array_equal(a, per_image_rng("0001.png", "denoise-25", 0).standard_normal(8))
    assert not np.array_equal(a, per_image_rng("0002.png", "denoise-25", 0).standard_normal(8))
    assert not np.array_equal(a, per_image_rng("0001.png", "denoise-25", 1).standard_normal(8))
    # joining is unambiguous
    assert not np.array_equal(per_image_rng("a/b", "c").random(4), per_image_rng("a", "b/c").random(4))


def test_registry_lists_every_sample_degradation_named_by_the_protocols():
    assert list_degradations() == sorted(DEGRADATIONS)
    assert set(list_degradations()) == {"haze", "rain", "heavy_rain", "motion_blur", "low_light", "snow",
                                        "heavy_snow", "raindrop", "underwater", "udc_toled", "udc_poled"}


@pytest.fixture(scope="module")
def photos():
    return {name: load_sample_photo(name) for name in ("astronaut", "coffee", "hubble_deep_field")}


@pytest.mark.parametrize("name", sorted(DEGRADATIONS))
def test_degradation_is_deterministic_and_depends_on_the_image_name(name, photos):
    clean = photos["coffee"]
    first = apply_degradations(clean, [name], "coffee", "task", "sample")
    again = apply_degradations(clean.copy(), [name], "coffee", "task", "sample")
    other = apply_degradations(clean, [name], "other-name", "task", "sample")
    assert first.dtype == np.uint8 and first.shape == clean.shape
    assert first.tobytes() == again.tobytes()
    assert first.tobytes() != other.tobytes()


@pytest.mark.parametrize("name", sorted(DEGRADATIONS))
def test_degradation_is_visible_but_restorable(name, photos):
    for photo_name, clean in photos.items():
        psnr = _psnr(apply_degradations(clean, [name], photo_name, "task", "sample"), clean)
        assert 8.0 < psnr < 40.0, f"{name} on {photo_name}: {psnr:.1f} dB"


@pytest.mark.parametrize("name", sorted(DEGRADATIONS))
def test_degradation_of_a_256_pixel_image_is_fast(name, photos):
    clean = photos["astronaut"]  # 256x256
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        DEGRADATIONS[name](clean, per_image_rng(name))
        best = min(best, time.perf_counter() - start)
    assert best < 0.15, f"{name}: {best * 1000:.0f} ms"


def test_apply_degradations_composes_in_order_with_one_generator_per_degradation(photos):
    clean = photos["coffee"]
    manual = DEGRADATIONS["haze"](clean, per_image_rng("haze", "coffee", "t"))
    manual = DEGRADATIONS["rain"](manual, per_image_rng("rain", "coffee", "t"))
    np.testing.assert_array_equal(apply_degradations(clean, ["haze", "rain"], "coffee", "t"), manual)
    assert not np.array_equal(apply_degradations(clean, ["rain", "haze"], "coffee", "t"), manual)


def test_apply_degradations_leaves_the_global_rng_alone(photos):
    np.random.seed(7)
    before = np.random.get_state()[1].copy()
    apply_degradations(photos["coffee"], list_degradations(), "coffee", "t")
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_unknown_degradation_lists_the_known_ones(photos):
    with pytest.raises(KeyError, match="fog.*known: haze, heavy_rain"):
        apply_degradations(photos["coffee"], ["haze", "fog"], "coffee", "t")
