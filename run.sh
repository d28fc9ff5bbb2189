#!/usr/bin/env bash
# The main job: the local inference server the Blender add-on talks to. Builds the environment first when
# needed (see scripts/env.sh). Without the real model files it starts in DEMO mode on generated assets.
#   ./run.sh                              # http://127.0.0.1:8765, models from $IVLM_MODELS_DIR or ~/ivlm-models
#   ./run.sh --models /data/ivlm-models   # any `ivlm serve` option (--port, --data-dir, --device, --demo, ...)
set -euo pipefail
cd "$(dirname "$0")"
source scripts/env.sh
ivlm_ensure_main_env
exec .venv/bin/ivlm serve "$@"
