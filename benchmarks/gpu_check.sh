#!/usr/bin/env bash
# gpu_check.sh: the first GPU check of socseg_jax, prepared to run as one command (<= 8 min on
# one NVIDIA H200) by the first session that is lent a GPU. Paste its JSON into RESULTS.md.
#
# What it does, each stage timed, a failing stage recorded and the next one still run:
#   1. environment: a venv (<work folder>/venv, or $SOCSEG_GPU_CHECK_VENV) with the project
#      (`pip install -e .`) and the CUDA build of jax (`pip install -U "jax[cuda13]"`, or
#      cuda12 when nvidia-smi reports a CUDA 12 driver; $SOCSEG_JAX_CUDA=cuda12|cuda13 forces
#      one). $SOCSEG_GPU_CHECK_PYTHON=/path/to/python skips this stage and uses that
#      interpreter as it is. Without a registry (an offline machine), point
#      $SOCSEG_GPU_CHECK_WHEELS at a folder of wheels: pip then installs from it alone
#      (--no-index --no-build-isolation), into that interpreter when one is given. The venv
#      sees the base interpreter's site-packages, so a preinstalled CUDA jax there is reused.
#      A machine whose python3 already holds CUDA jax (say, an image with jax-cuda13-plugin)
#      and no registry: SOCSEG_GPU_CHECK_PYTHON=python3 SOCSEG_GPU_CHECK_WHEELS=<wheels of the
#      project's missing dependencies, from `pip download` elsewhere> bash benchmarks/gpu_check.sh
#   2. nvidia-smi: its full output is kept (driver, CUDA version, clocks, memory).
#   3. benchmark: `python launch.py --config configs/benchmark.py` (the full preset: bf16 and
#      f32 training samples/s at batch 32, inference patches/s, sliding-window megapixels/s on
#      the study's 2856x4096 image at strides 64 and 128, input-pipeline records/s).
#   4. quickstart: simulate -> prepare -> train ($SOCSEG_GPU_CHECK_STEPS steps, default 300)
#      -> segment -> score (`configs/quickstart.py`), for the test mIoU against the true phases.
#   5. JSON (benchmarks/gpu_check.py): versions (python, jax, jaxlib, CUDA plugin, flax, optax,
#      driver, CUDA), the device (name, memory, count), every benchmark figure (median, min,
#      max, unit, setup s), achieved FLOP/s and the fraction of the device's dense bf16 peak
#      (table in gpu_check.py, keyed by device name: H200 989 TFLOP/s), the quickstart's
#      mIoU, each stage's status and seconds. Written to $OUT/gpu_check.json when $OUT is set,
#      else ./gpu_check.json; the logs go beside it in the work folder ($SOCSEG_GPU_CHECK_WORKDIR,
#      default a temporary folder).
#
# --dry-run: the same stages on CPU with tiny shapes (config overrides), no CUDA install and
# JAX_PLATFORMS=cpu; well under 2 minutes (tests/test_gpu_check.py runs it).
#
# bash benchmarks/gpu_check.sh             # on the GPU machine
# bash benchmarks/gpu_check.sh --dry-run   # anywhere, to check the script
set -uo pipefail

DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "unknown argument: $arg (only --dry-run)" >&2; exit 2 ;;
  esac
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${SOCSEG_GPU_CHECK_WORKDIR:-$(mktemp -d -t socseg_gpu_check.XXXXXX)}"
mkdir -p "$WORK"
if [[ -n "${OUT:-}" ]]; then JSON="$OUT/gpu_check.json"; else JSON="$PWD/gpu_check.json"; fi
STAGES="$WORK/stages.tsv"
: >"$STAGES"
STEPS="${SOCSEG_GPU_CHECK_STEPS:-300}"
export PYTHONUNBUFFERED=1
[[ $DRY_RUN == 1 ]] && export JAX_PLATFORMS=cpu
echo "gpu_check: repo $REPO, work folder $WORK, dry run $DRY_RUN"

# run_stage NAME COMMAND...: runs it with its output in $WORK/NAME.log (and on stdout),
# appends "NAME<TAB>rc<TAB>seconds" to $STAGES.
run_stage() {
  local name="$1"; shift
  local start ms rc
  start=$(date +%s%N)
  echo "== $name: $*"
  "$@" 2>&1 | tee "$WORK/$name.log"
  rc=${PIPESTATUS[0]}
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  printf '%s\t%s\t%d.%03d\n' "$name" "$rc" $((ms / 1000)) $((ms % 1000)) >>"$STAGES"
  echo "== $name: exit $rc"
  return "$rc"
}

cuda_extra() {
  if [[ -n "${SOCSEG_JAX_CUDA:-}" ]]; then echo "$SOCSEG_JAX_CUDA"; return; fi
  local version
  version=$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9]*\).*/\1/p' | head -1)
  if [[ -n "$version" && "$version" -lt 13 ]]; then echo cuda12; else echo cuda13; fi
}

VENV="${SOCSEG_GPU_CHECK_VENV:-$WORK/venv}"
PIP_ARGS=(-q)
if [[ -n "${SOCSEG_GPU_CHECK_WHEELS:-}" ]]; then  # offline: these wheels and nothing else
  PIP_ARGS+=(--no-index --find-links "$SOCSEG_GPU_CHECK_WHEELS" --no-build-isolation)
fi
setup_env() {  # runs in a subshell (run_stage's pipe): sets nothing for the caller
  local py="$VENV/bin/python"
  python3 -m venv --system-site-packages "$VENV" || return 1
  "$py" -m pip install "${PIP_ARGS[@]}" -e "$REPO" || return 1
  if [[ $DRY_RUN == 0 ]]; then
    "$py" -m pip install "${PIP_ARGS[@]}" -U "jax[$(cuda_extra)]" || return 1
  fi
}

if [[ -n "${SOCSEG_GPU_CHECK_PYTHON:-}" ]]; then
  PY="$SOCSEG_GPU_CHECK_PYTHON"
  if [[ -n "${SOCSEG_GPU_CHECK_WHEELS:-}" ]]; then
    run_stage environment "$PY" -m pip install "${PIP_ARGS[@]}" -e "$REPO"
  else
    printf 'environment\t0\t0\n' >>"$STAGES"
  fi
else
  run_stage environment setup_env
  PY="$VENV/bin/python"
  [[ -x "$PY" ]] || PY=python3
fi
echo "python: $PY"

if command -v nvidia-smi >/dev/null; then
  run_stage nvidia_smi nvidia-smi
else
  echo "nvidia-smi: not found" | tee "$WORK/nvidia_smi.log"
  printf 'nvidia_smi\t127\t0\n' >>"$STAGES"
fi

TINY_MODEL=(--config.model.features="(4, 8)" --config.model.encoder_dropout="(0.1, 0.1)"
            --config.model.decoder_dropout="(0.1,)")
BENCH_ARGS=()
QUICK_ARGS=(--config.num_train_steps="$STEPS" --config.checkpoint_every_steps="$STEPS"
            --config.eval_every_steps="$STEPS")
if [[ $DRY_RUN == 1 ]]; then
  BENCH_ARGS=("${TINY_MODEL[@]}" --config.benchmark.patch_size=32
    --config.benchmark.repetitions=2 --config.benchmark.warmup=0
    --config.benchmark.train_batch_size=2
    --config.benchmark.inference_batch_size=2 --config.benchmark.inference_batches=1
    --config.benchmark.sliding_image_shape="(48, 80)" --config.benchmark.sliding_strides="(16,)"
    --config.benchmark.sliding_batch_size=4 --config.benchmark.pipeline_images=1
    --config.benchmark.pipeline_image_size=64 --config.benchmark.pipeline_batches=2
    --config.benchmark.train_steps=1 --config.benchmark.matmul_size=64)
  QUICK_ARGS=("${TINY_MODEL[@]}" --config.synthetic.num_samples=4
    --config.synthetic.shape="(128, 128)" --config.prepare.patch_size=64
    --config.prepare.stride=64 --config.prepare.val_fraction=0.25
    --config.prepare.test_fraction=0.25 --config.batch_size=4 --config.num_train_steps=4
    --config.warmup_steps=1 --config.checkpoint_every_steps=4 --config.eval_every_steps=4
    --config.predict.patch_size=64 --config.predict.stride=32 --config.predict.batch_size=4
    --config.predict.tta=none)
fi

cd "$REPO" || exit 1
run_stage benchmark "$PY" launch.py --config configs/benchmark.py --workdir "$WORK/bench" \
  "${BENCH_ARGS[@]}"
run_stage quickstart "$PY" launch.py --config configs/quickstart.py --workdir "$WORK/quickstart" \
  "${QUICK_ARGS[@]}"

DRY_FLAG=()
[[ $DRY_RUN == 1 ]] && DRY_FLAG=(--dry-run)
"$PY" benchmarks/gpu_check.py --workdir "$WORK" --out "$JSON" "${DRY_FLAG[@]}"
rc=$?
echo "gpu_check: wrote $JSON (logs in $WORK)"
exit "$rc"
