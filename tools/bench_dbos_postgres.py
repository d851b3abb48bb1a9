"""DBOS on PostgreSQL: the workload of `ledgerflow bench workers`, for the comparison in
docs/benchmarks.md. R workflows of K steps (each step a DBOS step, checkpointed in the
system database when it returns) over P processes on one PostgreSQL database, each process
running its share with T workflows in flight. Prints one JSON object like the bench's.

Not in CI: it needs DBOS from PyPI (`pip install dbos`) and a PostgreSQL server.
Usage: bench_dbos_postgres.py URL RUNS STEPS PROCESSES THREADS
  URL: a postgres:// URL of a role that may create databases (DBOS makes its own).
"""

import json
import multiprocessing
import sys
import time
import uuid


def worker(url, runs, steps, threads, ready, go, done):
    from concurrent.futures import ThreadPoolExecutor

    from dbos import DBOS

    DBOS(config={"name": "bench", "system_database_url": url, "max_executor_threads": threads})

    @DBOS.step()
    def step(n):
        return n + 1

    @DBOS.workflow()
    def workflow():
        n = 0
        for _ in range(steps):
            n = step(n)
        return n

    DBOS.launch()
    ready.release()
    go.wait()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(lambda _: workflow(), range(runs)))
    assert all(r == steps for r in results)
    done.release()
    DBOS.destroy()


def main():
    url, runs, steps, processes, threads = sys.argv[1], *map(int, sys.argv[2:6])
    # A fresh system database for this run.
    db_url = url.rsplit("/", 1)[0] + f"/dbos_bench_{uuid.uuid4().hex[:8]}"
    ctx = multiprocessing.get_context("spawn")
    ready, done, go = ctx.Semaphore(0), ctx.Semaphore(0), ctx.Event()
    shares = [runs // processes + (1 if i < runs % processes else 0) for i in range(processes)]
    procs = [
        ctx.Process(target=worker, args=(db_url, share, steps, threads, ready, go, done))
        for share in shares
    ]
    # The first process makes the system database; the others then join it.
    procs[0].start()
    ready.acquire()
    for p in procs[1:]:
        p.start()
    for _ in procs[1:]:
        ready.acquire()
    started = time.perf_counter()
    go.set()
    for _ in procs:
        done.acquire()
    elapsed = time.perf_counter() - started
    for p in procs:
        p.join()
    print(json.dumps({
        "workload": "workers",
        "peer": "dbos",
        "store": "postgres",
        "processes": processes,
        "threads": threads,
        "runs": runs,
        "steps": runs * steps,
        "elapsed_s": elapsed,
        "steps_per_s": runs * steps / elapsed,
    }))


if __name__ == "__main__":
    main()
