#!/usr/bin/env bash
# The main job from a fresh machine: install dependencies, build, and generate text with a real
# model (default: the trained tiny model in ../shared). Usage: scripts/run-demo.sh [MODEL.gguf] [mllm-run flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh >/dev/null
model=${1:-../shared/models/aidreams260K.gguf}
shift || true
if [ $# -eq 0 ]; then set -- -p "" -n 60 --temp 0; fi
exec build/tools/mllm-run -m "$model" "$@"
