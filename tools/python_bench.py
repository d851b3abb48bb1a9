#!/usr/bin/env python3
"""Benchmarks of the Python package, beside the engines Python users would pick instead,
in one process and one session. Prints one JSON object per line. Not part of CI (run it
with `tools/python.sh bench`, which installs the peers from PyPI).

- steps: R runs of K Python node handlers each, one run in flight, one commit per step
  (`records_per_commit_max=1`, so every step is durable before the next, as
  AbstractRuntime's `tick(max_steps=1)` persists each step), and the default (the steps
  of a tick share a commit). ledgerflow on sled (`log`: fsynced per commit) and memory;
  AbstractRuntime 0.13 on SQLite and memory.
- saver: N checkpoints put one after another on one thread, then N `get_tuple` of the
  latest checkpoint and N of a random one: LedgerflowSaver (sled, fsynced) against
  LangGraph's SqliteSaver with `PRAGMA synchronous=FULL` (fsync on each commit).

Usage: python_bench.py [steps|saver …]   (env: BENCH_RUNS, BENCH_STEPS, BENCH_CHECKPOINTS)
"""

import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

RUNS = int(os.environ.get("BENCH_RUNS", "20"))
STEPS = int(os.environ.get("BENCH_STEPS", "50"))
CHECKPOINTS = int(os.environ.get("BENCH_CHECKPOINTS", "2000"))


def emit(**fields):
    print(json.dumps(fields), flush=True)


def ledgerflow_steps(store: str, per_step: bool):
    import ledgerflow as lf

    wf = lf.Workflow("bench", 1)

    @wf.node("n", entry=True)
    def n(ctx):
        ctx.vars["n"] = ctx.vars.get("n", 0) + 1
        return lf.complete({"n": ctx.vars["n"]}) if ctx.vars["n"] >= STEPS else lf.next("n")

    options = {"records_per_commit_max": 1} if per_step else {}
    with tempfile.TemporaryDirectory() as tmp:
        location = "memory:" if store == "memory" else str(Path(tmp) / "store")
        rt = lf.Runtime.in_memory() if store == "memory" else lf.Runtime.open(location, **options)
        with rt:
            rt.register(wf)
            started = time.perf_counter()
            for _ in range(RUNS):
                done = rt.run(wf, {"n": 0})
                assert done["status"] == "completed", done
            elapsed = time.perf_counter() - started
    emit(
        workload="python-steps",
        engine="ledgerflow",
        store="sled-log" if store != "memory" else "memory",
        commit="per step" if per_step else "per tick",
        runs=RUNS,
        steps=RUNS * STEPS,
        steps_per_s=RUNS * STEPS / elapsed,
    )


def abstractruntime_steps(store: str):
    """The same workload on AbstractRuntime, one persisted step per tick: the peers
    script's (tools/bench_peers.py), which prints its own line."""
    sys.path.insert(0, str(Path(__file__).parent))
    import bench_peers

    bench_peers.abstractruntime(RUNS, STEPS, store)


def agent_step(saver, i: int):
    """Checkpoint `i` of a small agent: the message list and a counter change every
    checkpoint. The checkpoint and its new channel versions."""
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.base.id import uuid6

    checkpoint = empty_checkpoint()
    checkpoint["id"] = str(uuid6(clock_seq=i))
    checkpoint["channel_values"] = {"messages": [f"message {j}" for j in range(i % 8 + 1)], "step": i}
    versions = {"messages": saver.get_next_version(None, None), "step": saver.get_next_version(None, None)}
    checkpoint["channel_versions"] = versions
    return checkpoint, versions


def saver_bench(name: str, saver):
    thread = "bench-thread"
    config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    configs = []
    put_s = []
    for i in range(CHECKPOINTS):
        checkpoint, versions = agent_step(saver, i)
        t = time.perf_counter()
        config = saver.put(config, checkpoint, {"source": "loop", "step": i}, versions)
        put_s.append(time.perf_counter() - t)
        configs.append(config)
    latest_s = []
    latest = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    for _ in range(CHECKPOINTS):
        t = time.perf_counter()
        assert saver.get_tuple(latest) is not None
        latest_s.append(time.perf_counter() - t)
    any_s = []
    for _ in range(CHECKPOINTS):
        pick = random.choice(configs)
        t = time.perf_counter()
        assert saver.get_tuple(pick) is not None
        any_s.append(time.perf_counter() - t)
    emit(
        workload="saver",
        saver=name,
        checkpoints=CHECKPOINTS,
        puts_per_s=CHECKPOINTS / sum(put_s),
        put_p50_us=round(statistics.median(put_s) * 1e6),
        get_latest_p50_us=round(statistics.median(latest_s) * 1e6),
        get_any_p50_us=round(statistics.median(any_s) * 1e6),
        gets_per_s=CHECKPOINTS / sum(any_s),
    )


def concurrent_puts(name: str, saver, threads: int):
    """`threads` LangGraph threads putting at once, each from its own OS thread: a
    server's load. Checkpoints per second over all of them."""
    import threading

    per_thread = CHECKPOINTS // threads

    def work(t: int):
        config = {"configurable": {"thread_id": f"concurrent-{t}", "checkpoint_ns": ""}}
        for i in range(per_thread):
            checkpoint, versions = agent_step(saver, i)
            config = saver.put(config, checkpoint, {"source": "loop", "step": i}, versions)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    emit(workload="saver-concurrent", saver=name, threads=threads, checkpoints=per_thread * threads,
         puts_per_s=per_thread * threads / elapsed)


def savers():
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver

    from ledgerflow.langgraph import LedgerflowSaver

    with tempfile.TemporaryDirectory() as tmp:
        ours = "ledgerflow (sled, log, fsync per commit)"
        with LedgerflowSaver.open(str(Path(tmp) / "store")) as saver:
            saver_bench(ours, saver)
        with LedgerflowSaver.open(str(Path(tmp) / "store-concurrent")) as saver:
            concurrent_puts(ours, saver, 16)
        for db in ("checkpoints.sqlite", "concurrent.sqlite"):
            conn = sqlite3.connect(Path(tmp) / db, check_same_thread=False)
            saver = SqliteSaver(conn)
            saver.setup()
            conn.execute("PRAGMA synchronous=FULL")
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            theirs = f"langgraph SqliteSaver ({mode}, synchronous=FULL)"
            if db == "checkpoints.sqlite":
                saver_bench(theirs, saver)
            else:
                concurrent_puts(theirs, saver, 16)
            conn.close()


def steps():
    ledgerflow_steps("sled", per_step=True)
    ledgerflow_steps("sled", per_step=False)
    ledgerflow_steps("memory", per_step=False)
    abstractruntime_steps("sqlite")
    abstractruntime_steps("memory")


WORKLOADS = {"steps": steps, "saver": savers}


def main():
    for name in sys.argv[1:] or list(WORKLOADS):
        WORKLOADS[name]()


if __name__ == "__main__":
    main()
