#!/usr/bin/env bash
# Builds the Blender add-on zips from a fresh clone: makes .venv-blender (bpy==5.0.1, which carries Blender's own
# extension tool) when it is missing or its lock file changed, then validates and packs with build_addon.py.
#   ./build_addon.sh                 # dist/interactvlm_contact-<version>.zip and ...-legacy.zip
#   ./build_addon.sh --output DIR    # extra arguments go to build_addon.py
set -euo pipefail
cd "$(dirname "$0")"
source scripts/env.sh
ivlm_ensure_blender_env
exec .venv-blender/bin/python build_addon.py "$@"
