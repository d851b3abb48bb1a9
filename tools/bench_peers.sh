#!/usr/bin/env bash
# Side by side with the engines users would pick instead (not in CI: it makes a Python
# virtual environment and installs the peers from PyPI). Runs `ledgerflow bench steps`
# with one run in flight in each durability mode, then the same workload on each peer
# (tools/bench_peers.py), then counts each peer's device flushes per step with strace
# (a separate, smaller run, so strace's cost stays out of the timings).
# Usage: tools/bench_peers.sh OUT.jsonl [RUNS STEPS]   (default 20 runs of 50 steps)
set -euo pipefail
out=${1:?usage: tools/bench_peers.sh OUT.jsonl [RUNS STEPS]}
runs=${2:-20}
steps=${3:-50}
venv=${LEDGERFLOW_PEERS_VENV:-target/bench-peers-venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "abstractruntime==0.13.*" langgraph langgraph-checkpoint-sqlite dbos
fi
cargo build --release -p ledgerflow-cli >&2
: > "$out"
for durability in log sync none; do
  echo "+ ledgerflow bench steps --durability $durability" >&2
  target/release/ledgerflow --json bench steps --runs "$runs" --steps "$steps" \
    --concurrency 1 --durability "$durability" >> "$out"
done
target/release/ledgerflow --json bench steps --store memory --runs "$runs" --steps "$steps" \
  --concurrency 1 --durability none >> "$out"
for peer in ar-memory ar-sqlite langgraph dbos; do
  echo "+ $peer" >&2
  "$venv/bin/python" tools/bench_peers.py "$runs" "$steps" "$peer" 2>/dev/null >> "$out"
  if command -v strace > /dev/null; then
    flushes=$(strace -f -c -e trace=fsync,fdatasync -o /dev/stdout \
      "$venv/bin/python" tools/bench_peers.py 5 20 "$peer" 2>/dev/null \
      | awk '/total/ { print $(NF-1) }')
    echo "{\"peer\": \"$peer\", \"flushes_per_step\": $(python3 -c "print(${flushes:-0} / 100)")}" >> "$out"
  fi
done
echo "wrote $out" >&2
