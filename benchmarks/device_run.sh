#!/usr/bin/env bash
# On a lent GPU machine (the device tool's run: command "bash benchmarks/device_run.sh", carry [".whl"], after
# benchmarks/device_wheels.sh here): installs the carried wheels beside the image's packages, runs
# benchmarks/gpu_check.sh with the image's python3, and leaves under $OUT what comes back (at most 8 files): the
# log as it is written (a run stopped at its limit still returns the steps it finished), nvidia-smi's reading,
# and the figures' JSON files in one archive. Arguments go to gpu_check.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-device_out}"
mkdir -p "$OUT"
SITE="${IVLM_DEVICE_SITE:-/tmp/ivlm-site}"
PYTHON="${PYTHON:-python3}"
if ! compgen -G ".whl/*.whl" >/dev/null; then
    echo "no wheels in .whl/: run benchmarks/device_wheels.sh where PyPI is reachable and carry .whl" >&2
    exit 1
fi
"$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl ||
    { echo "the carried wheels did not install (see pip's message above)" >&2; exit 1; }
export PYTHONPATH="$SITE:$PWD" PYTHON PYTHONUNBUFFERED=1 IVLM_GPU_CHECK_OUT="${IVLM_GPU_CHECK_OUT:-/tmp/gpu_check_out}"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv >"$OUT/nvidia_smi.csv" 2>&1 || true
bash benchmarks/gpu_check.sh "$@" 2>&1 | tee "$OUT/gpu_check.log"
status=${PIPESTATUS[0]}
tar czf "$OUT/gpu_check_json.tgz" -C "$IVLM_GPU_CHECK_OUT" . 2>/dev/null || true
exit "$status"
