#!/usr/bin/env bash
# Runs every `ledgerflow bench` workload once, in one session, so ratios to the floor are
# measured on the same machine in the same state. Writes one JSON object per line.
# Usage: tools/bench_report.sh OUT.jsonl [--large]   (--large adds the 1M-run points)
set -euo pipefail
out=${1:?usage: tools/bench_report.sh OUT.jsonl [--large]}
large=${2:-}
cargo build --release -p ledgerflow-cli >&2
b=target/release/ledgerflow
: > "$out"
run() { echo "+ ledgerflow bench $*" >&2; "$b" --json bench "$@" >> "$out"; }
run floor --batch 256 --seconds 3
for durability in log sync; do
  run steps --runs 256 --steps 20 --concurrency 256 --durability "$durability"
  run steps --runs 1 --steps 1000 --concurrency 1 --durability "$durability"
done
run steps --runs 256 --steps 20 --concurrency 256 --durability batched
run steps --runs 256 --steps 20 --concurrency 256 --durability none
run steps --store memory --runs 256 --steps 400 --concurrency 2 --durability none
run hitl --runs 2000 --concurrency 64
run hitl --store memory --runs 20000 --concurrency 2
run timers --runs 10000 --due-in-ms 10000
run timers --runs 100000 --due-in-ms 40000
run timers --runs 100000 --due-in-ms 40000 --spread-ms 10000
run verify --records 200000 --payload-bytes 128
for runs in 1000 10000 100000; do
  run steps --runs "$runs" --steps 5 --concurrency 256
  run recover --runs "$runs" --records $((runs * 4))
done
run recover --runs 1000 --records 1000000
if [ "$large" = "--large" ]; then
  run recover --runs 1000000 --records 2000000
fi
