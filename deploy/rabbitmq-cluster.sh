#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine, from the installed rabbitmq-server, beside
# (never instead of) the machine's own node: its own node names, ports, data directories and
# Erlang cookie.
#
#   deploy/rabbitmq-cluster.sh start    start the nodes that are down, cluster them; prints
#                                       `export DOMAINFLOW_AMQP_URLS=...` on stdout, so
#                                       `eval "$(deploy/rabbitmq-cluster.sh start)"` points
#                                       the stack at it
#   deploy/rabbitmq-cluster.sh stop     stop the three nodes (their data stays for the next start)
#   deploy/rabbitmq-cluster.sh status   the cluster's members and which of them run
#   deploy/rabbitmq-cluster.sh pid N    the OS pid of node N (1-3), for fault tests
#   deploy/rabbitmq-cluster.sh urls     the JSON list of AMQP URLs
#   deploy/rabbitmq-cluster.sh start-node N    start node N alone (after a kill or a stop)
#   deploy/rabbitmq-cluster.sh ctl N ARGS...   rabbitmqctl ARGS on node N (stop_app, start_app, ...)
#
# Settings: DOMAINFLOW_RABBITMQ_CLUSTER_DIR (./var/rabbitmq-cluster),
# DOMAINFLOW_RABBITMQ_CLUSTER_NAME (dfcluster: nodes dfcluster1@localhost ...),
# DOMAINFLOW_RABBITMQ_CLUSTER_PORTS (AMQP, "5681 5682 5683") and
# DOMAINFLOW_RABBITMQ_CLUSTER_DIST_PORTS (Erlang distribution, "25681 25682 25683").
set -euo pipefail

DIR=$(realpath -m "${DOMAINFLOW_RABBITMQ_CLUSTER_DIR:-var/rabbitmq-cluster}")
NAME=${DOMAINFLOW_RABBITMQ_CLUSTER_NAME:-dfcluster}
read -r -a PORTS <<<"${DOMAINFLOW_RABBITMQ_CLUSTER_PORTS:-5681 5682 5683}"
read -r -a DIST_PORTS <<<"${DOMAINFLOW_RABBITMQ_CLUSTER_DIST_PORTS:-25681 25682 25683}"
NODES=(1 2 3)
# Nodes on one machine find each other through its epmd; bind everything to loopback.
HOST=localhost
# Debian's /usr/sbin wrappers switch to the rabbitmq user with its own HOME (and so the
# machine node's cookie); the scripts behind them run as whoever calls them.
RABBIT_BIN=/usr/lib/rabbitmq/bin
[ -x "$RABBIT_BIN/rabbitmq-server" ] || RABBIT_BIN=$(dirname "$(readlink -f "$(command -v rabbitmq-server)")")

node() { echo "${NAME}$1@${HOST}"; }

# The environment one node runs (and is controlled) in, as NODE_ENV. HOME holds the cluster's own Erlang
# cookie, which rabbitmq-server and rabbitmqctl both read from there; our own env file keeps
# the machine's /etc/rabbitmq/rabbitmq-env.conf (its node name) out.
node_env() {
  local i=$1 base="$DIR/node$1"
  NODE_ENV=(
    HOME="$DIR/home"
    RABBITMQ_CONF_ENV_FILE="$base/rabbitmq-env.conf"
    RABBITMQ_NODENAME="$(node "$i")"
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    RABBITMQ_NODE_PORT="${PORTS[$((i - 1))]}"
    RABBITMQ_DIST_PORT="${DIST_PORTS[$((i - 1))]}"
    RABBITMQ_CONFIG_FILE="$base/rabbitmq.conf"
    RABBITMQ_ADVANCED_CONFIG_FILE="$base/advanced.config"
    RABBITMQ_ENABLED_PLUGINS_FILE="$base/enabled_plugins"
    RABBITMQ_MNESIA_BASE="$base/mnesia"
    RABBITMQ_LOG_BASE="$base/log"
    RABBITMQ_PID_FILE="$base/pid"
    ERL_EPMD_ADDRESS=127.0.0.1
    "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}"
  )
}

ctl() {
  local i=$1
  shift
  node_env "$i"
  env "${NODE_ENV[@]}" "$RABBIT_BIN/rabbitmqctl" -q -n "$(node "$i")" "$@"
}

prepare() {
  mkdir -p "$DIR/home"
  if [ ! -s "$DIR/home/.erlang.cookie" ]; then
    # A cookie of the cluster's own: the machine's node cannot join it, nor it the machine's.
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/home/.erlang.cookie"
  fi
  chmod 600 "$DIR/home/.erlang.cookie"
  for i in "${NODES[@]}"; do
    local base="$DIR/node$i"
    mkdir -p "$base/mnesia" "$base/log"
    echo "ERL_EPMD_ADDRESS=127.0.0.1" >"$base/rabbitmq-env.conf"
    # The management API, where the services put their queues' policies (kit/policies.py):
    # on the AMQP port + 10000, the port the services derive from a cluster node's URL.
    echo "[rabbitmq_management]." >"$base/enabled_plugins"
    echo "[]." >"$base/advanced.config"
    cat >"$base/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:${PORTS[$((i - 1))]}
management.tcp.ip = 127.0.0.1
management.tcp.port = $((PORTS[$((i - 1))] + 10000))
# A node that lost its peers keeps serving what still has a majority (quorum queues decide).
cluster_partition_handling = pause_minority
log.file.level = warning
EOF
  done
}

running() { ctl "$1" ping >/dev/null 2>&1; }

start_node() {
  local i=$1
  running "$i" && return 0
  echo "starting $(node "$i") on 127.0.0.1:${PORTS[$((i - 1))]}" >&2
  rm -f "$DIR/node$i/pid"
  # A node restarted after a kill or a stop rejoins the cluster its data remembers.
  node_env "$i"
  env "${NODE_ENV[@]}" setsid "$RABBIT_BIN/rabbitmq-server" >>"$DIR/node$i/log/console.log" 2>&1 </dev/null &
}

await_node() {
  local i=$1
  for _ in $(seq 1 12); do
    if ctl "$i" await_startup --timeout 10 >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.5
  done
  echo "$(node "$i") did not start; see $DIR/node$i/log" >&2
  return 1
}

clustered() { ctl 1 cluster_status --formatter json 2>/dev/null | grep -q "\"$(node "$1")\""; }

join() {
  local i=$1
  clustered "$i" && return 0
  echo "joining $(node "$i") to $(node 1)" >&2
  {
    ctl "$i" stop_app
    ctl "$i" reset
    ctl "$i" join_cluster "$(node 1)"
    ctl "$i" start_app
  } >>"$DIR/node$i/log/console.log" 2>&1
}

urls() {
  local list=""
  for i in "${NODES[@]}"; do
    list+="${list:+,}\"amqp://guest:guest@127.0.0.1:${PORTS[$((i - 1))]}/\""
  done
  echo "[$list]"
}

case "${1:-}" in
  start)
    prepare
    # All at once: nodes stopped together wait for each other's tables when they come back.
    for i in "${NODES[@]}"; do start_node "$i"; done
    for i in "${NODES[@]}"; do await_node "$i"; done
    for i in 2 3; do join "$i"; done
    echo "export DOMAINFLOW_AMQP_URLS='$(urls)'"
    ;;
  start-node)
    prepare
    start_node "$2"
    await_node "$2"
    ;;
  stop)
    for i in "${NODES[@]}"; do
      if running "$i"; then
        echo "stopping $(node "$i")" >&2
        ctl "$i" stop || true
      fi
    done
    ;;
  status)
    for i in "${NODES[@]}"; do
      if running "$i"; then
        echo "$(node "$i") running on 127.0.0.1:${PORTS[$((i - 1))]}"
      else
        echo "$(node "$i") down"
      fi
    done
    for i in "${NODES[@]}"; do
      if running "$i"; then
        ctl "$i" cluster_status
        exit 0
      fi
    done
    exit 1
    ;;
  pid)
    cat "$DIR/node$2/pid"
    ;;
  urls)
    urls
    ;;
  ctl)
    i=$2
    shift 2
    ctl "$i" "$@"
    ;;
  *)
    echo "usage: $0 start|stop|status|start-node N|pid N|urls|ctl N ARGS..." >&2
    exit 2
    ;;
esac
