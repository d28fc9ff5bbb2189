#!/usr/bin/env bash
# Builds the project's virtual environments on a fresh machine, or reuses them when the lock
# files have not changed. Sourced by run.sh and test.sh, so each of the README's two commands
# does its own set-up.
#
#   .venv          the pipeline / server stack (numpy 2, CPU torch from requirements/ci-lock.txt)
#   .venv-blender  bpy==5.0.1 (Blender as a module; pins numpy<2) for running the add-on in tests
#   .venv-blender-oldest  bpy==4.2.23 (4.2 LTS, the oldest Blender the add-on supports; Python 3.11)
#   .venv-blender-newest  bpy==5.3.0 (the newest bpy on the index; its wheels need Python 3.13)
#   .venv-typecheck  mypy, ruff + fake-bpy-module-5-0 (bpy stubs; kept apart from the real bpy, see the lock's .in file)
set -euo pipefail

IVLM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UV_VERSION="0.13.9"

_ivlm_log() { printf '[ivlm setup] %s\n' "$*" >&2; }

# Part of every environment's key: raise it when the way environments are built changes, so old ones are rebuilt.
# 2: installed packages are compiled to bytecode at install time.
IVLM_ENV_FORMAT=2

_ivlm_hash() { { echo "env format $IVLM_ENV_FORMAT"; cat "$@"; } | sha256sum | cut -c1-16; }

# The local CPU torch wheel lives in pip's find-links folder on these machines; uv does not
# read pip.conf, so we pass it on. Elsewhere we fall back to PyTorch's CPU index, so a CPU
# machine never pulls the multi-GB CUDA build.
_ivlm_torch_sources() {
    local fl="${PIP_FIND_LINKS:-}"
    if [ -z "$fl" ]; then fl="$(python3 -m pip config get global.find-links 2>/dev/null || true)"; fi
    if [ -n "$fl" ] && [ -d "$fl" ]; then
        echo "--find-links $fl"
    else
        echo "--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match"
    fi
}

_ivlm_installer() {
    # Prints the command used to install into a venv: uv when it can be had, else pip.
    if python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install -q "uv==${UV_VERSION}" >/dev/null 2>&1; then
        # --compile-bytecode: uv leaves .pyc files to be written on first import, and where PYTHONDONTWRITEBYTECODE
        # is set (as on the project's CI machines) none ever are, so every process compiled torch and transformers
        # again (the README's suite time says what it cost; pip compiles at install by default).
        echo "python3 -m uv pip install --compile-bytecode --python"
    else
        echo "pip"
    fi
}

_ivlm_install() {  # venv_dir, then install arguments
    local venv="$1"; shift
    local inst; inst="$(_ivlm_installer)"
    if [ "$inst" = "pip" ]; then
        "$venv/bin/python" -m pip install -q "$@"
    else
        $inst "$venv/bin/python" -q "$@"
    fi
}

ivlm_ensure_main_env() {
    local venv="$IVLM_ROOT/.venv"
    local key; key="$(_ivlm_hash "$IVLM_ROOT/requirements/ci-lock.txt" "$IVLM_ROOT/pyproject.toml")"
    if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.ivlm-env-key" 2>/dev/null)" = "$key" ]; then
        return 0
    fi
    _ivlm_log "building $venv (pipeline stack, CPU torch)"
    rm -rf "$venv"
    python3 -m venv "$venv"
    # shellcheck disable=SC2046
    _ivlm_install "$venv" $(_ivlm_torch_sources) -r "$IVLM_ROOT/requirements/ci-lock.txt"
    _ivlm_install "$venv" --no-deps -e "$IVLM_ROOT"
    "$venv/bin/python" - <<'PY'
import sys, torch
if not torch.__version__.endswith("+cpu"):
    sys.exit(f"expected the CPU build of torch in .venv, got {torch.__version__}")
PY
    echo "$key" > "$venv/.ivlm-env-key"
}

_ivlm_ensure_locked_env() {  # venv name, lock file name, what it holds[, interpreter]: a venv made from one lock file
    local venv="$IVLM_ROOT/$1" lock="$IVLM_ROOT/requirements/$2" python="${4:-python3}"
    local key; key="$(_ivlm_hash "$lock")"
    if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.ivlm-env-key" 2>/dev/null)" = "$key" ]; then
        return 0
    fi
    _ivlm_log "building $venv ($3)"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    _ivlm_install "$venv" -r "$lock"
    echo "$key" > "$venv/.ivlm-env-key"
}

# Prints the path of a Python 3.13 interpreter (PATH, then pyenv's versions), or nothing.
ivlm_find_python313() {
    local candidate
    for candidate in "$(command -v python3.13 2>/dev/null)" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3.13; do
        if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" -c 'import venv' >/dev/null 2>&1; then
            echo "$candidate"
            return 0
        fi
    done
}

ivlm_ensure_blender_env() {
    _ivlm_ensure_locked_env .venv-blender blender-lock.txt "bpy==5.0.1"
}

ivlm_ensure_typecheck_env() {
    _ivlm_ensure_locked_env .venv-typecheck typecheck-lock.txt "mypy, ruff, fake-bpy-module-5-0"
}

ivlm_ensure_blender_oldest_env() {
    _ivlm_ensure_locked_env .venv-blender-oldest blender-oldest-lock.txt "bpy==4.2.23, Blender 4.2 LTS"
}

# Returns 1 (building nothing) when no Python 3.13 is found; the caller says what is skipped.
ivlm_ensure_blender_newest_env() {
    local python; python="$(ivlm_find_python313)"
    if [ -z "$python" ]; then
        return 1
    fi
    _ivlm_ensure_locked_env .venv-blender-newest blender-newest-lock.txt "bpy==5.3.0, Python 3.13" "$python"
}
