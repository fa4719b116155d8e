#!/usr/bin/env bash
# Builds weaviate-server into a cache directory and runs an N-node cluster on
# loopback, one process per node, tracked by PID files.
#
#   weaviate-cluster.sh build               go install weaviate-server (once per version)
#   weaviate-cluster.sh start N             start nodes 0..N-1, wait until all are ready
#   weaviate-cluster.sh stop                stop every node (SIGTERM, then SIGKILL after 30 s)
#   weaviate-cluster.sh status              one line per node: pid, ports, ready or not
#   weaviate-cluster.sh kill-node I         SIGKILL node I (a crash)
#   weaviate-cluster.sh stop-node I         SIGTERM node I
#   weaviate-cluster.sh start-node I        restart node I with its data, wait until ready
#   weaviate-cluster.sh clean               stop, then delete the cluster's data
#   weaviate-cluster.sh ports I             "HTTP GRPC" ports of node I
#
# Node I listens on BASE+10*I+{0 HTTP, 1 gRPC, 2 gossip, 3 data, 4 raft, 5 raft RPC}
# (local raft clusters need RPC = raft + 1).
#
# Environment:
#   WEAVIATE_VERSION    default v1.35.2
#   PRODSEARCH_CACHE    default ${XDG_CACHE_HOME:-$HOME/.cache}/prodsearch
#   WEAVIATE_STATE_DIR  data, logs and PID files; default $PRODSEARCH_CACHE/weaviate/cluster
#   WEAVIATE_PORT_BASE  default 18000
#   WEAVIATE_READY_TIMEOUT  seconds to wait for readiness, default 180
#   WEAVIATE_ENV        extra KEY=VALUE settings for every node, space separated
set -euo pipefail

VERSION="${WEAVIATE_VERSION:-v1.35.2}"
CACHE="${PRODSEARCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/prodsearch}/weaviate"
BIN="$CACHE/$VERSION/bin/weaviate-server"
STATE="${WEAVIATE_STATE_DIR:-$CACHE/cluster}"
BASE="${WEAVIATE_PORT_BASE:-18000}"
READY_TIMEOUT="${WEAVIATE_READY_TIMEOUT:-180}"

log() { echo "weaviate-cluster: $*" >&2; }
die() { log "$*"; exit 1; }

port() { echo $((BASE + 10 * $1 + $2)); }

build() {
  if [ -x "$BIN" ]; then
    return 0
  fi
  command -v go >/dev/null || die "go is needed to build weaviate-server"
  mkdir -p "$(dirname "$BIN")"
  log "building weaviate-server $VERSION into $(dirname "$BIN") (several minutes cold)"
  # Outside any module, so the repository's go.mod is not touched.
  (cd "$(dirname "$BIN")" && GOFLAGS=-buildvcs=false GOBIN="$(dirname "$BIN")" \
    go install "github.com/weaviate/weaviate/cmd/weaviate-server@$VERSION")
  log "built $BIN"
}

nodes() { cat "$STATE/nodes" 2>/dev/null || echo 0; }

pid_of() {
  local f="$STATE/node-$1.pid" pid
  [ -f "$f" ] || return 1
  pid="$(cat "$f")"
  # Guard against a recycled PID: it must still be our weaviate-server.
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q weaviate-server; then
    echo "$pid"
    return 0
  fi
  return 1
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ready() { curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$(port "$1" 0)/v1/.well-known/ready"; }

wait_for() { # description, seconds, command...
  local what="$1" secs="$2"
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      die "timed out after ${secs}s waiting for $what (logs in $STATE)"
    fi
    sleep 0.5
  done
}

start_node() {
  local i="$1" n
  n="$(nodes)"
  [ "$i" -ge 0 ] && [ "$i" -lt "$n" ] || die "node $i is not in a cluster of $n"
  if pid_of "$i" >/dev/null; then
    log "node $i already running"
    return 0
  fi
  [ -x "$BIN" ] || die "$BIN missing: run '$0 build' first"
  local join="" k
  for ((k = 0; k < n; k++)); do
    join+="${join:+,}node-$k:$(port "$k" 4)"
  done
  mkdir -p "$STATE/node-$i"
  local -a env=(
    PERSISTENCE_DATA_PATH="$STATE/node-$i"
    AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED=true
    DEFAULT_VECTORIZER_MODULE=none
    ENABLE_MODULES=
    DISABLE_TELEMETRY=true
    PROMETHEUS_MONITORING_ENABLED=false
    QUERY_DEFAULTS_LIMIT=25
    LOG_LEVEL=info
    GRPC_PORT="$(port "$i" 1)"
    CLUSTER_HOSTNAME="node-$i"
    CLUSTER_IN_LOCALHOST=true
    CLUSTER_BIND_ADDR=127.0.0.1
    CLUSTER_ADVERTISE_ADDR=127.0.0.1
    CLUSTER_GOSSIP_BIND_PORT="$(port "$i" 2)"
    CLUSTER_DATA_BIND_PORT="$(port "$i" 3)"
    RAFT_PORT="$(port "$i" 4)"
    RAFT_INTERNAL_RPC_PORT="$(port "$i" 5)"
    RAFT_JOIN="$join"
    RAFT_BOOTSTRAP_EXPECT="$n"
  )
  if [ "$i" -gt 0 ]; then
    env+=(CLUSTER_JOIN="127.0.0.1:$(port 0 2)")
  fi
  # shellcheck disable=SC2206 # word splitting of WEAVIATE_ENV is intended
  env+=(${WEAVIATE_ENV:-})
  setsid nohup env "${env[@]}" "$BIN" --scheme http --host 127.0.0.1 --port "$(port "$i" 0)" \
    --read-timeout=600s --write-timeout=600s >>"$STATE/node-$i.log" 2>&1 </dev/null &
  echo $! >"$STATE/node-$i.pid"
  log "node $i started, pid $!, http $(port "$i" 0), grpc $(port "$i" 1)"
}

wait_ready() { wait_for "node $1 ready" "$READY_TIMEOUT" ready "$1"; }

healthy_nodes() {
  curl -sf --max-time 5 "http://127.0.0.1:$(port 0 0)/v1/nodes" 2>/dev/null | grep -o '"status":"HEALTHY"' | wc -l
}

all_healthy() { [ "$(healthy_nodes)" -ge "$(nodes)" ]; }

start() {
  local n="${1:?usage: $0 start N}"
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer"
  build
  local running=0 k
  for ((k = 0; k < $(nodes); k++)); do
    if pid_of "$k" >/dev/null; then running=1; fi
  done
  if [ "$running" = 1 ] && [ "$(nodes)" != "$n" ]; then
    die "a cluster of $(nodes) is running; stop it first"
  fi
  mkdir -p "$STATE"
  echo "$n" >"$STATE/nodes"
  local t0=$SECONDS
  start_node 0
  # Others join node 0's gossip, so it must be listening first.
  wait_for "node 0 gossip port" "$READY_TIMEOUT" listening "$(port 0 2)"
  for ((k = 1; k < n; k++)); do
    start_node "$k"
  done
  for ((k = 0; k < n; k++)); do
    wait_ready "$k"
  done
  wait_for "$n healthy nodes" "$READY_TIMEOUT" all_healthy
  log "cluster of $n ready in $((SECONDS - t0))s"
}

signal_node() { # node, signal
  local pid
  if pid="$(pid_of "$1")"; then
    kill "-$2" "$pid" 2>/dev/null || true
    echo "$pid"
  fi
}

stop_node() {
  local i="$1" pid deadline
  pid="$(signal_node "$i" TERM)"
  if [ -n "$pid" ]; then
    deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "node $i ignored SIGTERM; killing"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "node $i stopped"
  fi
  rm -f "$STATE/node-$i.pid"
}

kill_node() {
  local i="$1" pid
  pid="$(signal_node "$i" KILL)"
  [ -n "$pid" ] || die "node $i is not running"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$STATE/node-$i.pid"
  log "node $i killed"
}

stop() {
  local k
  for ((k = $(nodes) - 1; k >= 0; k--)); do
    stop_node "$k"
  done
}

status() {
  local n k pid state
  n="$(nodes)"
  [ "$n" -gt 0 ] || { echo "no cluster in $STATE"; return 0; }
  for ((k = 0; k < n; k++)); do
    if pid="$(pid_of "$k")"; then
      if ready "$k"; then state=ready; else state=starting; fi
    else
      pid=-
      state=down
    fi
    echo "node-$k pid=$pid http=$(port "$k" 0) grpc=$(port "$k" 1) $state"
  done
}

cmd="${1:-}"
shift || true
case "$cmd" in
build) build ;;
start) start "$@" ;;
stop) stop ;;
status) status ;;
start-node)
  start_node "${1:?node}"
  wait_ready "$1"
  ;;
stop-node) stop_node "${1:?node}" ;;
kill-node) kill_node "${1:?node}" ;;
clean)
  stop
  rm -rf "$STATE"
  ;;
ports) echo "$(port "${1:?node}" 0) $(port "$1" 1)" ;;
*)
  sed -n '2,28p' "$0" >&2
  exit 2
  ;;
esac
