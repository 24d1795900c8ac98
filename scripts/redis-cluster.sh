#!/usr/bin/env bash
# Start a local Redis Cluster for trying several gateway instances (and for tests):
# three masters (REPLICAS=1 adds one replica each), free ports, no persistence, a
# temporary directory. Prints the `state:` config to use, then waits; Ctrl-C stops it.
#
#   bash scripts/redis-cluster.sh                 # 3 masters
#   REPLICAS=1 bash scripts/redis-cluster.sh      # 3 masters + 3 replicas (failover)
#   bash scripts/redis-cluster.sh -- CMD ARGS...  # run CMD with REDIS_CLUSTER_URL set, then stop
set -euo pipefail

command -v redis-server >/dev/null && command -v redis-cli >/dev/null || {
  echo "error: redis-server and redis-cli are needed (e.g. 'apt-get install redis-server')" >&2
  exit 1
}
replicas=${REPLICAS:-0}
count=$((3 * (1 + replicas)))
dir=$(mktemp -d)
ports=$(python3 - "$count" <<'PY'
import random, socket, sys
want, ports = int(sys.argv[1]), []
while len(ports) < want:
    p = random.randrange(20000, 50000)
    if any(abs(p - q) in (0, 10000) for q in ports):
        continue
    try:
        for x in (p, p + 10000):  # the cluster bus is port + 10000
            with socket.socket() as s:
                s.bind(("127.0.0.1", x))
    except OSError:
        continue
    ports.append(p)
print(" ".join(map(str, ports)))
PY
)
cleanup() {
  for port in $ports; do
    [[ -f "$dir/$port/pid" ]] && kill "$(cat "$dir/$port/pid")" 2>/dev/null || true
  done
  rm -rf "$dir"
}
trap cleanup EXIT
nodes=()
for port in $ports; do
  mkdir -p "$dir/$port"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir/$port" --save "" --appendonly no \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 1000 \
    --daemonize yes --pidfile "$dir/$port/pid" --logfile "$dir/$port/log"
  nodes+=("127.0.0.1:$port")
done
for port in $ports; do
  until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done
done
redis-cli --cluster create "${nodes[@]}" --cluster-replicas "$replicas" --cluster-yes >/dev/null
for port in $ports; do
  until redis-cli -p "$port" cluster info | grep -q cluster_state:ok; do sleep 0.05; done
done
first=${nodes[0]}
export REDIS_CLUSTER_URL="redis://$first"
if [[ "${1:-}" == "--" ]]; then
  shift
  "$@"
  exit $?
fi
echo "Redis Cluster up: ${nodes[*]}"
echo "gateway config:"
echo "  state: {backend: redis, url: redis://$first, cluster: true}"
echo "Ctrl-C stops it."
while true; do sleep 3600; done
