"""A tile no larger than its overlap is refused with one message that names the options to change, the same for
`run`, `restore` and suites (bench_ir.geometry.tile_size words it)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bench_ir.folder_restore import RestoreConfig, restore_folder
from bench_ir.geometry import GeometryError, tile_size

ADVICE = "give a smaller tile_overlap (--tile-overlap, 32 by default) or a larger tile (--tile)"


def test_a_tile_no_larger_than_its_overlap_names_the_options_to_change():
    with pytest.raises(GeometryError) as caught:
        tile_size(30, 32, 8)
    assert str(caught.value) == ("tile overlap 32 must be smaller than the tile size 24 (30 pixels fitted to a "
                                 f"multiple of 8): {ADVICE}")


def test_restore_gives_the_shared_advice_once(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(np.zeros((12, 16, 3), dtype=np.uint8)).save(inputs / "a.png")
    with pytest.raises(GeometryError) as caught:
        restore_folder(RestoreConfig(inputs, tmp_path / "out", model="input", device="cpu", tile=16))
    assert str(caught.value) == f"tile overlap 32 must be smaller than the tile size 16: {ADVICE}"
