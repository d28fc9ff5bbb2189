#!/usr/bin/env bash
# One GPU check: every GPU figure the project's targets need, in one run (planned for under 8 minutes on one H100;
# not yet timed on one).
#
#   benchmarks/gpu_check.sh                 # on a machine with a CUDA GPU and a CUDA build of torch
#   benchmarks/gpu_check.sh --rehearse      # the same steps on the CPU with tiny sizes (IVLM_GPU_CHECK_TINY=1),
#                                           # so a GPU run cannot fail on a typo (tests/test_gpu_check.py runs it)
#   benchmarks/device_run.sh                # on a lent GPU machine without network (see benchmarks/device_wheels.sh)
#
# Steps (each prints its figures; JSON copies go to $IVLM_GPU_CHECK_OUT, default gpu_check_out/). A step that fails
# is reported and the next one runs (one GPU session may be all there is); the exit status says whether any failed.
#   1 CUDA rasteriser, ms per 1024² view (benchmarks/bench_render.py)
#   2 Localize at 13B, bf16: CLIP+prompt, prefill, decode per token, SAM, total, peak memory; the no-cache path
#     for the speed-up ratio (benchmarks/bench_localize.py)
#   3 the same in 4-bit (NF4)
#   4 the whole pipeline per job at release size, joint release in bf16 and in NF4, with peak memory
#     (benchmarks/bench_release_size.py)
#   5 simulated 24 GB and 16 GB cards (torch.cuda.set_per_process_memory_fraction): the plan's choice and a job
#     that completes in it
#   6 pinned host -> GPU copy speed, for the decision on swapping a release per request
#   7 the tests that compare CUDA results with the CPU's (rasteriser face ids and barycentrics; skipped on a CPU)
#   8 the meshes artists bring (benchmarks/bench_assets.py, render only): CUDA seconds for the 4 object views beside
#     the CPU's, and the CUDA face ids' agreement with the CPU's
#   9 Multi-HMR (DINOv2 ViT-L + head, 896 px, fp16), the body fit's learned start: ms per photo with 1 and 4 people,
#     the backbone's share, peak memory (benchmarks/bench_multihmr.py)
#  10 the static-cache compiled decoder (CUDA graphs) against the dynamic one, bf16: last, because its compile
#     time on the 13B model is not known and a run stopped at its time limit keeps the steps before it
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
OUT="${IVLM_GPU_CHECK_OUT:-gpu_check_out}"
mkdir -p "$OUT"
if [ "${1:-}" = "--rehearse" ] || [ "${IVLM_GPU_CHECK_TINY:-0}" = "1" ]; then
    TINY=1; DEVICE=cpu
    RENDER=(--size 64 --repeats 1)
    ASSETS=(--size 64 --repeats 1 --only cube --no-stages)
    LOCALIZE=(--model tiny --device cpu --repeats 1)
    LOCALIZE_STATIC=(--compile-backend aot_eager)
    WHOLE=(--tiny --device cpu --min-available-gb 0.5)
    MULTIHMR=(--tiny --device cpu --repeats 1)
else
    TINY=0; DEVICE=cuda
    RENDER=(--repeats 5)
    ASSETS=(--repeats 3 --no-stages)
    LOCALIZE=(--model 13b --device cuda --dtype bfloat16 --repeats 3)
    LOCALIZE_STATIC=()
    WHOLE=(--device cuda --sam-batch 4 --min-available-gb 0)
    MULTIHMR=(--device cuda --dtype float16 --repeats 10)
fi
failed=""  # the numbers of the steps that failed, once each
CURRENT=""
SKIP=0
# IVLM_GPU_CHECK_STEPS="6 7 8 9 10" runs only those steps (and step 0): to finish a run stopped at a time limit.
STEPS="${IVLM_GPU_CHECK_STEPS:-}"
STEPS=" ${STEPS//,/ } "
step() {
    CURRENT="$1"
    SKIP=0
    if [ -n "${IVLM_GPU_CHECK_STEPS:-}" ] && [ "${1%% *}" != 0 ] && [[ "$STEPS" != *" ${1%% *} "* ]]; then
        SKIP=1
        printf '\n== %s: left out (IVLM_GPU_CHECK_STEPS)\n' "$1"
        return
    fi
    printf '\n== %s  (%s s since start)\n' "$1" "$SECONDS"
}
check() { # runs one command of the current step; a failure is reported and the check goes on
    [ "$SKIP" = 1 ] && return 0
    "$@"
    local status=$?
    if [ "$status" -ne 0 ]; then
        echo "!! step ${CURRENT} failed (exit ${status})"
        case " $failed " in *" ${CURRENT%% *} "*) ;; *) failed="${failed:+$failed }${CURRENT%% *}" ;; esac
    fi
}

step "0 device"
"$PY" - <<'PY' || exit 1
import torch
print("torch", torch.__version__, "|", torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device (rehearsal on the CPU)")
PY
if [ "$TINY" = 0 ]; then
    "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU: run with --rehearse')" || exit 1
fi

step "1 rasteriser (ms per view)"
# The lent GPU machines lack embreex (benchmarks/device_wheels.sh leaves it out, for size): then no Embree columns.
if ! "$PY" -c "import embreex" 2>/dev/null; then
    echo "embreex is not installed: the Embree columns are left out"
    RENDER+=(--no-embree)
    ASSETS+=(--no-embree)
fi
check "$PY" benchmarks/bench_render.py "${RENDER[@]}" --json "$OUT/render.json"

step "2 Localize, language model bf16 (KV cache vs no cache)"
check "$PY" benchmarks/bench_localize.py "${LOCALIZE[@]}" --json "$OUT/localize_bf16.json"

step "3 Localize, language model NF4"
check "$PY" benchmarks/bench_localize.py "${LOCALIZE[@]}" --llm-precision nf4 --json "$OUT/localize_nf4.json"

step "4 whole pipeline per job, joint release bf16 and NF4"
check "$PY" benchmarks/bench_release_size.py "${WHOLE[@]}" --precision native --json "$OUT/whole_bf16.json"
# The rehearsal leaves out the NF4 job here: step 5's 16 GB card runs the same joint-nf4 job at the tiny size.
if [ "$TINY" = 0 ]; then
    check "$PY" benchmarks/bench_release_size.py "${WHOLE[@]}" --precision nf4 --json "$OUT/whole_nf4.json"
fi

step "5 simulated cards: 24 GB and 16 GB"
check "$PY" benchmarks/bench_release_size.py "${WHOLE[@]}" --simulate-gb 24 --json "$OUT/card_24gb.json"
check "$PY" benchmarks/bench_release_size.py "${WHOLE[@]}" --simulate-gb 16 --json "$OUT/card_16gb.json"

step "6 pinned host -> device copy (swapping a release per request)"
check "$PY" - "$DEVICE" <<'PY'
import sys, time, torch
from ivlm_core.pipeline import plan
device = sys.argv[1]
size = (1 << 30) if device == "cuda" else (16 << 20)
host = torch.empty(size, dtype=torch.uint8, pin_memory=device == "cuda")
target = torch.empty(size, dtype=torch.uint8, device=device)
for _ in range(2):
    if device == "cuda": torch.cuda.synchronize()
    start = time.perf_counter(); target.copy_(host, non_blocking=True)
    if device == "cuda": torch.cuda.synchronize()
    seconds = time.perf_counter() - start
rate = size / seconds / 1e9
for p in plan.plan_all("cuda", nominal=True)[::2]:
    if p.configuration.joint: continue
    llm = p.weights[0].bytes
    print(f"{p.configuration.name}: one release's language model {llm / 1e9:.1f} GB -> {llm / 1e9 / rate:.2f} s per swap")
print(f"copy {rate:.1f} GB/s ({device})")
PY

step "7 CUDA against CPU (tests)"
PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 check "$PY" -m pytest -q -p no:cacheprovider tests/test_rasterize.py -k cuda

step "8 asset meshes (render only; CUDA beside the CPU)"
check "$PY" benchmarks/bench_assets.py "${ASSETS[@]}" --json "$OUT/assets.json"

step "9 Multi-HMR, the body's learned start (fp16, 896 px)"
check "$PY" benchmarks/bench_multihmr.py "${MULTIHMR[@]}" --json "$OUT/multihmr.json"

step "10 Localize, static cache + torch.compile (vs step 2's dynamic cache)"
check "$PY" benchmarks/bench_localize.py "${LOCALIZE[@]}" --decoder static "${LOCALIZE_STATIC[@]}" --json "$OUT/localize_static.json"

printf '\nGPU check finished in %s s; figures in %s/\n' "$SECONDS" "$OUT"
if [ -n "$failed" ]; then
    echo "!! failed steps: $failed"
    exit 1
fi
