#!/usr/bin/env bash
# Runs the whole test suite. Builds the environments first when needed (see scripts/env.sh).
# Extra arguments go to the main pytest run, e.g. ./test.sh -k raster
set -euo pipefail
cd "$(dirname "$0")"
source scripts/env.sh
ivlm_ensure_main_env
ivlm_ensure_blender_env
ivlm_ensure_blender_oldest_env
newest_blender=1
ivlm_ensure_blender_newest_env || newest_blender=0
ivlm_ensure_typecheck_env

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1
# The suite starts hundreds of Python processes (servers, workers, Blender, benchmark steps): let them keep the
# project's own compiled modules (in git-ignored __pycache__ folders) instead of compiling them again in every
# process, which PYTHONDONTWRITEBYTECODE, when set, would make them do.
unset PYTHONDONTWRITEBYTECODE
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
# The main tier runs on IVLM_TEST_WORKERS processes (pytest-xdist; 2 by default, 0 runs it in this process), one
# torch thread each so that the workers do not oversubscribe the cores (2 on the project's CI machine).
workers="${IVLM_TEST_WORKERS:-2}"
main_tier=(.venv/bin/python -m pytest tests --ignore=tests/blender --ignore=tests/typecheck --durations=15)
if [ "$workers" != 0 ]; then main_tier=(env OMP_NUM_THREADS=1 "${main_tier[@]}" -n "$workers"); fi
run_pytest "${main_tier[@]}" "$@"
# The add-on in real Blender: the version we develop on, the oldest it supports, and the newest on the index.
# Tests marked one_blender check server-side behaviour that no Blender version changes: the first tier only.
run_pytest .venv-blender/bin/python -m pytest tests/blender
run_pytest .venv-blender-oldest/bin/python -m pytest tests/blender -m "not one_blender"
if [ "$newest_blender" = 1 ]; then
    run_pytest .venv-blender-newest/bin/python -m pytest tests/blender -m "not one_blender"
elif [ "${IVLM_REQUIRE_ALL_BLENDERS:-0}" = 1 ]; then
    echo "[ivlm test] no Python 3.13 found: the newest Blender (bpy 5.3) cannot be tested; install python3.13" >&2
    status=1
else
    echo "[ivlm test] SKIPPED the newest Blender (bpy 5.3 needs Python 3.13, none found; pyenv install 3.13)" >&2
fi
run_pytest .venv-typecheck/bin/python -m pytest tests/typecheck  # mypy on the add-on, against fake-bpy-module

# Lint and types of the whole tree (ruff and mypy pinned in requirements/typecheck.in; config in pyproject.toml).
# mypy reads .venv's packages (torch, numpy, pydantic, ...) and keeps its cache in .mypy_cache (git-ignored).
run_check() {  # what is checked, then the command: a failure is reported by name and fails the run
    local what="$1"
    shift
    if ! "$@"; then
        echo "[ivlm test] FAILED: $what (command: $*)" >&2
        status=1
    fi
}
run_check "lint (ruff check; 'ruff check --fix .' fixes some)" .venv-typecheck/bin/ruff check .
run_check "formatting (ruff format --check; 'ruff format .' fixes it)" .venv-typecheck/bin/ruff format --check .
run_check "types of ivlm_core and server (mypy)" .venv-typecheck/bin/mypy --config-file pyproject.toml \
    --python-executable .venv/bin/python --cache-dir .mypy_cache ivlm_core server
exit $status
