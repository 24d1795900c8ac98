#!/usr/bin/env bash
# Portkey's open-source gateway (Node) for bench.overhead --compare; prints its PID.
# Installs into $PEERS/portkey (default /work/peers/portkey), outside the repository.
# @hono/node-server is pinned to 1.14.1: with later versions every chat completion
# fails with "TypeError: immutable" (Portkey-AI/gateway#1389; 1.14.2 fails here too).
set -euo pipefail
PEERS=${PEERS:-/work/peers}
PORT=${PORT:-8787}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$PEERS/portkey"
cd "$PEERS/portkey"
if [ ! -f node_modules/@portkey-ai/gateway/build/start-server.js ]; then
    cp "$HERE/portkey-package.json" package.json
    npm install --no-audit --no-fund >install.log 2>&1
fi
nohup node node_modules/@portkey-ai/gateway/build/start-server.js --port="$PORT" --headless \
    >portkey.log 2>&1 &
echo $! | tee portkey.pid
