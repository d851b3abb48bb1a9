#!/usr/bin/env python3
"""Runs the `steps` workload of `ledgerflow bench steps` on the engines users would pick
instead, one step committed at a time: R runs of K steps each, every step persisted by
the engine's own store, one run in flight. Prints one JSON object per line.

Peers: AbstractRuntime 0.13 (memory and SQLite stores), LangGraph (SQLite checkpointer:
a checkpoint per superstep), DBOS (SQLite system database: a recorded step per step).
Whether a peer flushes the device per step is measured, not assumed: tools/bench_peers.sh
counts their `fsync`/`fdatasync` calls with strace in a separate, smaller run. Run
through tools/bench_peers.sh, which makes the virtual environment; not part of CI.

Usage: bench_peers.py RUNS STEPS [PEER…]   (peers: ar-memory ar-sqlite langgraph dbos)
"""

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


def report(peer, store, runs, steps, latencies, elapsed):
    latencies.sort()
    print(
        json.dumps(
            {
                "workload": "steps",
                "peer": peer,
                "store": store,
                "runs": runs,
                "steps": len(latencies),
                "concurrency": 1,
                "steps_per_s": len(latencies) / elapsed,
                "step_p50_us": round(statistics.median(latencies) * 1e6),
                "step_p99_us": round(latencies[int(len(latencies) * 0.99) - 1] * 1e6),
            }
        ),
        flush=True,
    )


def abstractruntime(runs, steps, store):
    import abstractruntime as ar
    from abstractruntime.core.spec import WorkflowSpec

    def node(run, ctx):
        n = run.vars.get("n", 0) + 1
        run.vars["n"] = n
        if n >= steps:
            return ar.StepPlan(node_id="n", complete_output={"n": n})
        return ar.StepPlan(node_id="n", next_node="n")

    spec = WorkflowSpec(workflow_id="bench", entry_node="n", nodes={"n": node})
    with tempfile.TemporaryDirectory() as tmp:
        if store == "sqlite":
            db = ar.SqliteDatabase(Path(tmp) / "runs.sqlite")
            runtime = ar.Runtime(run_store=ar.SqliteRunStore(db), ledger_store=ar.SqliteLedgerStore(db))
        else:
            runtime = ar.Runtime(run_store=ar.InMemoryRunStore(), ledger_store=ar.InMemoryLedgerStore())
        latencies = []
        started = time.perf_counter()
        for _ in range(runs):
            run_id = runtime.start(workflow=spec, vars={"n": 0})
            while True:
                t = time.perf_counter()
                state = runtime.tick(workflow=spec, run_id=run_id, max_steps=1)
                latencies.append(time.perf_counter() - t)
                if str(getattr(state.status, "value", state.status)).lower() != "running":
                    break
        report("abstractruntime-0.13", store, runs, steps, latencies, time.perf_counter() - started)


def langgraph(runs, steps):
    import sqlite3
    from typing import TypedDict

    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.graph import END, StateGraph

    class State(TypedDict):
        n: int

    stamps = []

    def step(state):
        stamps.append(time.perf_counter())
        return {"n": state["n"] + 1}

    graph = StateGraph(State)
    graph.add_node("step", step)
    graph.set_entry_point("step")
    graph.add_conditional_edges("step", lambda s: END if s["n"] >= steps else "step")
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "checkpoints.sqlite", check_same_thread=False)
        app = graph.compile(checkpointer=SqliteSaver(conn))
        started = time.perf_counter()
        for i in range(runs):
            app.invoke({"n": 0}, {"configurable": {"thread_id": str(i)}, "recursion_limit": steps + 10})
            stamps.append(time.perf_counter())
        elapsed = time.perf_counter() - started
        # A step's time: from one node call to the next (the checkpoint between included).
        latencies = [b - a for a, b in zip(stamps, stamps[1:]) if b > a]
        report("langgraph", "sqlite", runs, steps, latencies[: runs * steps], elapsed)


def dbos(runs, steps):
    from dbos import DBOS

    with tempfile.TemporaryDirectory() as tmp:
        DBOS(config={"name": "bench", "system_database_url": f"sqlite:///{tmp}/dbos.sqlite"})
        latencies = []

        @DBOS.step()
        def step(n):
            return n + 1

        @DBOS.workflow()
        def workflow():
            n = 0
            for _ in range(steps):
                t = time.perf_counter()
                n = step(n)
                latencies.append(time.perf_counter() - t)
            return n

        DBOS.launch()
        started = time.perf_counter()
        for _ in range(runs):
            workflow()
        elapsed = time.perf_counter() - started
        DBOS.destroy()
        report("dbos", "sqlite", runs, steps, latencies, elapsed)


PEERS = {
    "ar-memory": lambda runs, steps: abstractruntime(runs, steps, "memory"),
    "ar-sqlite": lambda runs, steps: abstractruntime(runs, steps, "sqlite"),
    "langgraph": langgraph,
    "dbos": dbos,
}


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    for name in sys.argv[3:] or list(PEERS):
        PEERS[name](runs, steps)


if __name__ == "__main__":
    main()
