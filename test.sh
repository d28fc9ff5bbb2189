#!/usr/bin/env bash
# Runs the whole test suite. Builds the environments first when needed (see scripts/env.sh).
# Extra arguments go to the main pytest run, e.g. ./test.sh -k raster
set -euo pipefail
cd "$(dirname "$0")"
source scripts/env.sh
ivlm_ensure_main_env
ivlm_ensure_blender_env
ivlm_ensure_typecheck_env

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1
# Tests never write into the user's home: caches and Blender's user folders go to a temp dir.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
export IVLM_CACHE_DIR="${IVLM_TEST_CACHE_DIR:-$scratch/ivlm-cache}"
export BLENDER_USER_RESOURCES="$scratch/blender-user" XDG_CACHE_HOME="$scratch/xdg-cache"

status=0
run_pytest() {  # pytest exit code 5 means "no tests collected": not a failure for a tier that is empty
    local rc=0
    "$@" || rc=$?
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then status=$rc; fi
}
run_pytest .venv/bin/python -m pytest tests --ignore=tests/blender --ignore=tests/typecheck "$@"
run_pytest .venv-blender/bin/python -m pytest tests/blender
run_pytest .venv-typecheck/bin/python -m pytest tests/typecheck  # mypy on the add-on, against fake-bpy-module
exit $status
