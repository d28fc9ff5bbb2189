#!/usr/bin/env bash
# The main job. Builds the environment first when needed (see scripts/env.sh).
# Until the inference server lands, this runs the Render -> Lift demo on generated DEMO assets:
#   ./run.sh                      # demo_output/ with renders, contacts, coloured meshes, summary.json
#   ./run.sh --scene hold_mug     # any `ivlm demo` option
set -euo pipefail
cd "$(dirname "$0")"
source scripts/env.sh
ivlm_ensure_main_env
exec .venv/bin/ivlm demo "$@"
