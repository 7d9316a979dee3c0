#!/usr/bin/env bash
# Prepare a GPU window (run HERE, in the checkout the device call sends, before calling the device tool):
#   1. the wheels the GPU machine lacks (bench/gpu_check.sh installs them there): pyiqa (LPIPS), fvcore + iopath
#      + yacs + termcolor (FLOPs; the official MIRAGE network files import fvcore), and typer 0.28 + annotated-doc
#      (the version the CLI is tested with: typer before 0.16 breaks with click >= 8.2, and the machine's typer
#      version is unknown), into the git-ignored .whl/;
#   2. the official MIRAGE code at the commit bench-ir was checked against (926dc83), from a local git mirror of
#      github.com/Amazingren/MIRAGE, into the git-ignored bench/_official/ (only net/, utils/, LICENSE, README.md;
#      never committed);
#   3. checks that what travels (tracked + untracked-not-ignored files + the two carried folders) stays < 64 MiB;
#   4. prints the device call for the lead.
#
#   bash bench/gpu_prepare.sh [MIRAGE_GIT_DIR]     # default: /work/.mirror/Amazingren+MIRAGE/repo
# PYTHON (default: python3) is a Python with pip that can reach PyPI; fvcore and iopath exist only as source
# distributions there and are built into pure-Python wheels here.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
MIRAGE_GIT=${1:-/work/.mirror/Amazingren+MIRAGE/repo}
MIRAGE_COMMIT=926dc83
LIMIT=$((64 * 1024 * 1024))
BINARY_WHEELS=(pyiqa==0.1.16 yacs==0.1.8 termcolor==3.3.0 typer==0.28.0 annotated-doc==0.0.7)
SOURCE_ONLY=(fvcore==0.1.5.post20221221 iopath==0.1.10)

git check-ignore -q .whl/x || { echo "error: .whl/ is not git-ignored" >&2; exit 1; }
git check-ignore -q bench/_official/x || { echo "error: bench/_official/ is not git-ignored" >&2; exit 1; }

echo "== wheels -> .whl/"
rm -rf .whl && mkdir -p .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${BINARY_WHEELS[@]}"
"$PY" -m pip wheel -q --no-deps -w .whl "${SOURCE_ONLY[@]}"
for wheel in .whl/*.whl; do
  case "$wheel" in
    *-py3-none-any.whl|*-py2.py3-none-any.whl|*-cp312-*manylinux*x86_64.whl) ;;
    *) echo "error: $wheel does not install on CPython 3.12 x86-64" >&2; exit 1 ;;
  esac
done
ls -l .whl

echo "== official MIRAGE code @ $MIRAGE_COMMIT -> bench/_official/"
if ! git --git-dir "$MIRAGE_GIT" cat-file -e "$MIRAGE_COMMIT^{commit}" 2>/dev/null; then
  echo "error: $MIRAGE_GIT holds no commit $MIRAGE_COMMIT; mirror github.com/Amazingren/MIRAGE first" >&2
  exit 1
fi
rm -rf bench/_official && mkdir -p bench/_official
git --git-dir "$MIRAGE_GIT" archive "$MIRAGE_COMMIT" net utils LICENSE README.md | tar -x -C bench/_official
find bench/_official -name __pycache__ -prune -exec rm -rf {} + -o -name .DS_Store -exec rm -f {} +
test -f bench/_official/net/mirage_tiny.py && test -f bench/_official/utils/val_utils.py

echo "== size of what travels"
tree_bytes=$( (git ls-files -z --cached --others --exclude-standard | xargs -0 -r du -cb 2>/dev/null || true) \
  | awk '$2 == "total" {s += $1} END {print s + 0}')
carried_bytes=$(du -sb .whl bench/_official | awk '{s += $1} END {print s}')
total=$((tree_bytes + carried_bytes))
printf 'working tree %.1f MiB + carried %.1f MiB = %.1f MiB (limit 64 MiB)\n' \
  "$(echo "$tree_bytes / 1048576" | bc -l)" "$(echo "$carried_bytes / 1048576" | bc -l)" \
  "$(echo "$total / 1048576" | bc -l)"
if [ "$total" -ge "$LIMIT" ]; then
  echo "error: over the 64 MiB the device call carries" >&2
  exit 1
fi

cat <<'EOF'
== the device call (run tool), from this checkout:
  command:   bash bench/gpu_check.sh "$OUT"
  carry:     [".whl", "bench/_official"]
  timeout_s: 600
gpu_check.sh ends by itself after about 9 minutes (GPU_CHECK_SECONDS, default 540) and writes everything it
measured to $OUT as it goes; then: give_back, `python bench/gpu_collect.py <files_at> --score`, and follow
bench/README.md "After a GPU run".
EOF
