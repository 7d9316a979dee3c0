#!/usr/bin/env bash
# One GPU window, one script (issue 16): CUDA correctness, the efficiency figures, the speed targets against the
# official MIRAGE code, and the sample-checkpoint training, in about 9 minutes of wall time on one GPU.
#
#   bash bench/gpu_check.sh OUTDIR                      # on the GPU machine (the device tool's $OUT)
#   bash bench/gpu_check.sh OUTDIR --quick --device cpu # rehearsal of every part at tiny sizes (labelled, never a result)
#   bash bench/gpu_check.sh OUTDIR --dry                # prints the plan and checks what the parts need; runs nothing
#
# Needs (bench/gpu_prepare.sh makes them, run before the device call): .whl/ (wheels the GPU machine lacks,
# installed here into a temporary folder) and bench/_official/ (the official MIRAGE code @926dc83).
#
# Parts, each under its own time cap, writing into OUTDIR as it goes (a run cut short keeps what it measured):
#   tests    pytest -m cuda tests/test_cuda.py (pytest-xdist workers when installed) -> cuda-tests.xml (JUnit, with
#            the recorded figures as properties). The sample training runs BESIDE the tests: neither is a timing.
#   profile  bench/profile_models.py --models all at 224^2 -> profile-<device>-<date>.{json,md}; exits 3 when params
#            or FLOPs differ from bench/results/cpu-params-flops.json.
#   speed    bench/speed_mirage.py against bench/_official: inference 16x256^2 and latency 1x224^2 (MIRAGE-T, -S),
#            the 5deg-shaped protocol at 1/10 of its images (cold/warm compile, eager, exact: decides the CUDA
#            default), training 32x128^2 with 200-step loss curves -> speed-<device>-<date>.{json,md}
#   train    bench-ir train --recipe sample --init-weights <the shipped sample checkpoint> (a fine-tune: from
#            scratch, the brightness-augmented recipe had not learnt low light after 1,120 CPU steps; started beside
#            the tests, resumed after the timed parts, both with --max-minutes), then the fp16 weights + manifest +
#            log -> sample-train.tar
# plus gpu_check.log (everything printed) and summary.json (per part: exit status, seconds, cap): 8 files at most.
# Afterwards, on the CPU: python bench/gpu_collect.py <those files> --score (bench/README.md, "After a GPU run").
#
# Environment: GPU_CHECK_SECONDS (whole budget, default 540), CAP_TESTS (170), CAP_PROFILE (80), CAP_SPEED (230),
# PARTS (default "tests profile speed train"), PYTHON (default python3), XDIST_WORKERS (6).
set -uo pipefail

usage() { echo "usage: bash bench/gpu_check.sh OUTDIR [--dry|--quick] [--device cuda|cpu]" >&2; exit 2; }
[ $# -ge 1 ] || usage
OUT=$(mkdir -p "$1" && cd "$1" && pwd); shift
MODE=full
DEVICE=cuda
while [ $# -gt 0 ]; do
  case "$1" in
    --dry) MODE=dry ;;
    --quick) MODE=quick ;;
    --device) DEVICE=${2:?}; shift ;;
    *) usage ;;
  esac
  shift
done
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_SECONDS:-540}
PARTS=${PARTS:-tests profile speed train}
START=$(date +%s)
WORK=$(mktemp -d /tmp/gpu_check.XXXXXX)
export PYTHONUNBUFFERED=1

# A rehearsal (anything but a full run on CUDA) is labelled in every file name and JSON and never touches bench/.
REHEARSAL=0
[ "$MODE" = full ] && [ "$DEVICE" = cuda ] || REHEARSAL=1
P=""; RFLAG=""
if [ "$REHEARSAL" = 1 ]; then P="rehearsal-"; RFLAG="--rehearsal"; fi
exec > >(tee -a "$OUT/${P}gpu_check.log") 2>&1
SUMMARY="$OUT/${P}summary.json"
echo "gpu_check: mode $MODE, device $DEVICE, budget ${BUDGET}s, parts: $PARTS, out $OUT, $(date -u +%FT%TZ)"
[ "$REHEARSAL" = 1 ] && echo "gpu_check: REHEARSAL: nothing written here is a measurement"

elapsed() { echo $(( $(date +%s) - START )); }
left() { echo $(( BUDGET - $(elapsed) )); }
wants() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

record() {  # part exit-status seconds cap note
  "$PY" - "$SUMMARY" "$@" "$MODE" "$DEVICE" "$REHEARSAL" <<'PYEOF'
import json, sys, pathlib
path, part, rc, seconds, cap, note, mode, device, rehearsal = sys.argv[1:10]
p = pathlib.Path(path)
data = json.loads(p.read_text()) if p.is_file() else {"mode": mode, "device": device,
                                                        "rehearsal": rehearsal == "1", "parts": {}}
data["parts"][part] = {"exit_status": int(rc), "seconds": int(seconds), "cap_s": int(cap), "note": note}
tmp = p.with_name(p.name + ".tmp")  # whole or not at all, whenever the window ends
tmp.write_text(json.dumps(data, indent=2) + "\n")
tmp.replace(p)
PYEOF
}

run_part() {  # name cap command...: runs under min(cap, time left - reserve); records the outcome
  local name=$1 cap=$2; shift 2
  local budget=$(( $(left) - 15 ))
  [ "$cap" -gt "$budget" ] && cap=$budget
  if [ "$cap" -lt 15 ]; then
    echo "== $name: skipped, ${budget}s left"; record "$name" 124 0 0 "skipped: no time left"; return 124
  fi
  echo "== $name (cap ${cap}s, at $(elapsed)s): $*"
  if [ "$MODE" = dry ]; then record "$name" 0 0 "$cap" "dry: not run"; return 0; fi
  local t0=$(date +%s)
  timeout --kill-after=10 "$cap" "$@"
  local rc=$?
  local note=""; [ $rc -eq 124 ] || [ $rc -eq 137 ] && note="cut at its cap"
  record "$name" "$rc" $(( $(date +%s) - t0 )) "$cap" "$note"
  echo "== $name: exit $rc after $(( $(date +%s) - t0 ))s"
  return $rc
}

# ---------------------------------------------------------------------------------------------------- setup
echo "== setup"
if [ "$MODE" = full ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "error: no CUDA device; rehearse with --quick --device cpu or --dry" >&2; exit 1
fi
[ -f bench/_official/net/mirage_tiny.py ] || { echo "error: bench/_official/ missing: run bench/gpu_prepare.sh" >&2; exit 1; }
if ls .whl/*.whl >/dev/null 2>&1; then
  if [ "$MODE" != dry ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" .whl/*.whl \
      || { echo "error: installing .whl/ failed" >&2; exit 1; }
  fi
  export PYTHONPATH="$ROOT:$WORK/site"
else
  echo "warning: no .whl/ (bench/gpu_prepare.sh): fvcore and pyiqa must already be installed"
  export PYTHONPATH="$ROOT"
fi
"$PY" -c "import torch, bench_ir, fvcore.nn; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" || { echo "error: imports failed" >&2; exit 1; }
"$PY" -c "import typer, bench_ir.cli; print('typer', typer.__version__)" \
  || echo "warning: the bench-ir command line does not import: the train part will fail"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
"$PY" -m bench_ir --version 2>/dev/null | tail -n 2 || true  # platform, and the compilers torch.compile needs
# torch.compile on CUDA needs a C compiler (Triton builds its launcher with it): without one, run/profile/speed/train
# go on eagerly and say so (compile_failed) and the CUDA tests of the compiled path fail; the training then skips the
# attempt (its minutes are few)
TRAIN_COMPILE=()
if ! command -v "${CC:-cc}" >/dev/null 2>&1 && ! command -v gcc >/dev/null 2>&1 && ! command -v clang >/dev/null 2>&1
then
  echo "warning: no C compiler (cc, gcc, clang): torch.compile cannot build kernels; the training runs --compile off"
  TRAIN_COMPILE=(--compile off)
fi
XDIST=()
if "$PY" -c "import xdist" 2>/dev/null; then XDIST=(-n "${XDIST_WORKERS:-6}"); fi
echo "setup done at $(elapsed)s"

# ---------------------------------------------------------------------------------------------------- options
if [ "$MODE" = quick ]; then
  PROFILE_ARGS=(--models mirage-t nafnet --size 64 --repeats 2 --warmup 1)
  SPEED_ARGS=(--quick --variants tiny)
  TRAIN_ARGS=(--max-steps 2 --batch-size 2 --patch-size 32 --workers 0)
else
  PROFILE_ARGS=(--models all --size 224 --repeats 30 --warmup 5)
  SPEED_ARGS=(--protocol-scale 0.1)
  TRAIN_ARGS=(--workers 6)
fi
TRAIN_DIR="$WORK/sample-train"
TRAIN=("$PY" -m bench_ir train --recipe sample --model mirage-t --device "$DEVICE" --run-dir "$TRAIN_DIR" --no-val
       --init-weights registry/weights/mirage-t-sample.safetensors --no-tensorboard "${TRAIN_ARGS[@]}"
       "${TRAIN_COMPILE[@]}")
minutes_for() { "$PY" -c "print(f'{max($1, 1) / 60:.2f}')"; }

# ---------------------------------------------------------------------------------------------------- 1 tests (+ training)
TRAIN_PID=""
CAP_TESTS=${CAP_TESTS:-170}
if wants train && [ "$MODE" != dry ]; then
  first=$(( CAP_TESTS - 30 )); [ "$first" -gt $(( $(left) - 60 )) ] && first=$(( $(left) - 60 ))
  if [ "$first" -ge 30 ]; then
    echo "== train (beside the tests, ${first}s): ${TRAIN[*]} --max-minutes $(minutes_for $first)"
    train_t0=$(date +%s)
    timeout --kill-after=10 $(( first + 90 )) "${TRAIN[@]}" --max-minutes "$(minutes_for $first)" \
      > "$WORK/train-1.log" 2>&1 &
    TRAIN_PID=$!
  fi
fi
if wants tests; then
  # each test under its own timeout (cap - 30 s), so that a slow test fails alone and the JUnit report is written
  run_part tests "$CAP_TESTS" "$PY" -m pytest -m cuda tests/test_cuda.py -v -rA -p no:cacheprovider "${XDIST[@]}" \
    --timeout $(( CAP_TESTS - 30 )) -o junit_family=legacy --junitxml "$OUT/${P}cuda-tests.xml"
fi
if [ -n "$TRAIN_PID" ]; then
  wait "$TRAIN_PID"; rc=$?
  echo "== train (first stretch): exit $rc"; tail -n 5 "$WORK/train-1.log"
  record train-1 "$rc" $(( $(date +%s) - train_t0 )) "$first" "beside the tests"
fi

# ---------------------------------------------------------------------------------------------------- 2 profile
if wants profile; then
  run_part profile "${CAP_PROFILE:-80}" "$PY" bench/profile_models.py "${PROFILE_ARGS[@]}" --device "$DEVICE" \
    --out-dir "$OUT" $RFLAG
fi

# ---------------------------------------------------------------------------------------------------- 3 speed
if wants speed; then
  run_part speed "${CAP_SPEED:-230}" "$PY" bench/speed_mirage.py --official bench/_official --device "$DEVICE" \
    --checkpoint registry/weights/mirage-t-sample.safetensors "${SPEED_ARGS[@]}" --out-dir "$OUT" $RFLAG
fi

# ---------------------------------------------------------------------------------------------------- 4 train
if wants train; then
  rest=$(( $(left) - 45 ))
  resume=()
  # a first stretch cut by its timeout (SIGTERM) stops at a step boundary with a checkpoint; one cut before its
  # first checkpoint resumes from step 0: either way its folder holds a manifest and only --resume may reuse it
  [ -f "$TRAIN_DIR/train_manifest.json" ] && resume=(--resume)
  if [ "$MODE" = dry ]; then
    echo "== train: ${TRAIN[*]} --max-minutes M [--resume] (beside the tests, then in the minutes left)"
  elif [ "$rest" -ge 20 ] && ! grep -q '"status": "complete"' "$TRAIN_DIR/train_manifest.json" 2>/dev/null; then
    run_part train $(( rest + 30 )) "${TRAIN[@]}" --max-minutes "$(minutes_for $rest)" "${resume[@]}"
  fi
  if [ -f "$TRAIN_DIR/final.safetensors" ]; then
    mkdir -p "$WORK/pack"
    "$PY" -m bench_ir convert "$TRAIN_DIR/final.safetensors" "$WORK/pack/mirage-t-sample.safetensors" \
      --model mirage-t --fp16
    cp "$TRAIN_DIR/train_manifest.json" "$WORK/pack/mirage-t-sample.train-manifest.json"
    cp "$TRAIN_DIR/train_log.csv" "$WORK"/train-*.log "$WORK/pack/" 2>/dev/null
    tar -cf "$OUT/${P}sample-train.tar" -C "$WORK/pack" .
    echo "== train: $(grep -o '"status": "[a-z]*"' "$TRAIN_DIR/train_manifest.json"), \
$(grep -o '"steps_done": [0-9]*' "$TRAIN_DIR/train_manifest.json") -> ${P}sample-train.tar"
  fi
fi

echo "== done at $(elapsed)s of ${BUDGET}s; files in $OUT:"
ls -l "$OUT"
n=$(find "$OUT" -type f | wc -l)
[ "$n" -le 8 ] || echo "warning: $n files in $OUT; the device returns at most 8"
rm -rf "$WORK"
sleep 1  # lets tee write the end of the log
