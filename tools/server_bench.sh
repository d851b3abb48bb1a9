#!/usr/bin/env bash
# Load on `ledgerflow serve` (release build, loopback, not in CI): wrk against
# GET /api/runs/{id} and against POST /api/events (each a durable delivery, queued in a
# fresh inbox), for a bounded time each. Prints wrk's summary with latency percentiles.
# Usage: tools/server_bench.sh [SECONDS] [CONNECTIONS]   (defaults: 10 s, 16)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-16}
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }
cargo build --release --quiet -p ledgerflow-cli
cargo build --release --quiet -p ledgerflow --example quickstart
work=$(mktemp -d)
trap 'kill "$serve_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
(cd "$work" && "$OLDPWD/target/release/examples/quickstart" >/dev/null)
run=$(target/release/ledgerflow --db "$work/ledgerflow-data" --json runs list | python3 -c 'import json,sys; print(json.load(sys.stdin)["runs"][0]["run_id"])')
# The rate limit is for protection, not for this measurement.
target/release/ledgerflow --db "$work/ledgerflow-data" --json serve --listen 127.0.0.1:0 \
  --requests-per-s-max 100000000 > "$work/serve.out" &
serve_pid=$!
for _ in $(seq 50); do grep -q listening "$work/serve.out" 2>/dev/null && break; sleep 0.2; done
addr=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["listening"])' "$work/serve.out")
echo "== GET /api/runs/$run, $connections connections, ${seconds}s"
wrk -t2 -c"$connections" -d"${seconds}s" --latency "http://$addr/api/runs/$run"
cat > "$work/deliver.lua" <<'LUA'
-- Each request delivers to its own wait key: a durable commit queueing one inbox entry.
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"wait_key": "bench-%d-%d", "payload": {"n": %d}}', math.random(1, 1e9), n, n)
  return wrk.format("POST", "/api/events", { ["Content-Type"] = "application/json" }, body)
end
LUA
echo "== POST /api/events (durable deliveries), $connections connections, ${seconds}s"
wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$work/deliver.lua" "http://$addr"
