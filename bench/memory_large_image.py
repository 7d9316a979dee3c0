"""Peak host memory of `bench-ir run --model input` on one large image pair (reading + scoring, no model).

Writes a synthetic H x W RGB pair (smooth gradients plus noise, PNG) to a temporary folder, then runs
``bench-ir run --input-dir --target-dir --model input --device cpu`` in a fresh process and reports that process's
peak resident memory (``VmHWM`` of /proc/self/status, Linux) next to its resident memory after the imports, so the
difference is what reading and scoring the image cost::

    python bench/memory_large_image.py                       # 6000 x 4000, the size of a 24-megapixel photo
    python bench/memory_large_image.py --height 1500 --width 1000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

_CHILD = r"""
import sys
def status(key):
    for line in open('/proc/self/status'):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
import bench_ir.cli, bench_ir.runner, bench_ir.data.datasets, bench_ir.metrics.conventions  # the imports of a run
after_imports = status('VmRSS:')
sys.argv = ['bench-ir', 'run', '--input-dir', sys.argv[1], '--target-dir', sys.argv[2], '--model', 'input',
            '--device', 'cpu', '--run-dir', sys.argv[3]]
try:
    bench_ir.cli.main()
except SystemExit as exit:
    code = exit.code
print('MEMORY', after_imports, status('VmHWM:'), code, file=sys.stderr)
"""


def _write_pair(folder: Path, height: int, width: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    rows = np.linspace(0, 200, height, dtype=np.float32)[:, None]
    cols = np.linspace(0, 50, width, dtype=np.float32)[None, :]
    clean = np.empty((height, width, 3), dtype=np.uint8)
    noisy = np.empty_like(clean)
    for c in range(3):  # one channel at a time keeps this script's own memory small
        plane = rows + cols + 5 * c
        clean[..., c] = plane.astype(np.uint8)
        noisy[..., c] = np.clip(plane + rng.normal(0, 10, (height, width)).astype(np.float32), 0, 255).astype(np.uint8)
    (folder / "in").mkdir()
    (folder / "gt").mkdir()
    Image.fromarray(noisy).save(folder / "in" / "photo.png", compress_level=1)
    Image.fromarray(clean).save(folder / "gt" / "photo.png", compress_level=1)
    return folder / "in", folder / "gt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--width", type=int, default=6000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        inputs, targets = _write_pair(Path(tmp), args.height, args.width)
        done = subprocess.run([sys.executable, "-c", _CHILD, str(inputs), str(targets), str(Path(tmp) / "run")],
                              capture_output=True, text=True)
    line = next((x for x in done.stderr.splitlines() if x.startswith("MEMORY")), None)
    if line is None:
        raise SystemExit(f"the run failed:\n{done.stderr[-3000:]}")
    _, after_imports, peak, code = line.split()
    megapixels = args.height * args.width / 1e6
    result = {"height": args.height, "width": args.width, "rss_after_imports_mb": int(after_imports) / 2**20,
              "peak_rss_mb": int(peak) / 2**20, "peak_minus_imports_mb": (int(peak) - int(after_imports)) / 2**20,
              "bytes_per_pixel": (int(peak) - int(after_imports)) / (args.height * args.width), "exit_code": code}
    print(json.dumps(result, indent=2))
    print(f"{args.width}x{args.height} ({megapixels:.0f} MP): peak {result['peak_rss_mb']:.0f} MB, "
          f"{result['peak_minus_imports_mb']:.0f} MB above the imports ({result['bytes_per_pixel']:.0f} B/pixel)")


if __name__ == "__main__":
    main()
