#!/usr/bin/env bash
# LiteLLM proxy (1 worker) for bench.overhead --compare; prints its PID.
# Installs into its own venv under $PEERS/litellm (default /work/peers/litellm),
# outside the repository and its venv. Config: litellm.yaml next to this script
# (simulator on port 18300, master key sk-bench-litellm).
set -euo pipefail
PEERS=${PEERS:-/work/peers}
PORT=${PORT:-4000}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$PEERS/litellm"
cd "$PEERS/litellm"
if [ ! -x venv/bin/litellm ]; then
    python3 -m venv venv
    venv/bin/pip install -q --upgrade pip
    venv/bin/pip install -q "litellm[proxy]==${LITELLM_VERSION:-1.108.7}" >install.log 2>&1
fi
nohup venv/bin/litellm --config "$HERE/litellm.yaml" --host 127.0.0.1 --port "$PORT" \
    --num_workers 1 >litellm.log 2>&1 &
echo $! | tee litellm.pid
