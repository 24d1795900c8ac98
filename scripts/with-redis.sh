#!/usr/bin/env bash
# Run a command with REDIS_URL pointing at a usable Redis:
#   1. REDIS_URL already set -> use it;
#   2. a Redis answers on 127.0.0.1:6379 -> use its database 15 (tests use their own key prefix);
#   3. redis-server is installed -> start a throwaway one on a free port, stop it afterwards;
#   4. otherwise fail with a clear message.
set -euo pipefail

if [[ -z "${REDIS_URL:-}" ]]; then
  if python3 - <<'PY' 2>/dev/null
import socket
s = socket.create_connection(("127.0.0.1", 6379), timeout=1)
s.sendall(b"PING\r\n")
assert s.recv(16).startswith(b"+PONG")
PY
  then
    export REDIS_URL="redis://127.0.0.1:6379/15"
  elif command -v redis-server >/dev/null 2>&1; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    dir=$(mktemp -d)
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
      --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
    trap 'kill "$(cat "$dir/redis.pid")" 2>/dev/null || true; rm -rf "$dir"' EXIT
    for _ in $(seq 50); do
      redis-cli -p "$port" ping >/dev/null 2>&1 && break
      sleep 0.1
    done
    export REDIS_URL="redis://127.0.0.1:$port/0"
    echo "started throwaway redis-server on port $port"
  else
    echo "error: the test suite needs Redis. Set REDIS_URL, run a Redis on 127.0.0.1:6379," >&2
    echo "       or install redis-server (e.g. 'apt-get install redis-server')." >&2
    exit 1
  fi
fi
echo "using REDIS_URL=$REDIS_URL"
"$@"
