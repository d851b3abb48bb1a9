"""The Python API over a real store: runs, waits, effects, errors, operator controls,
history, queries and verification. Run with pytest after `maturin develop`."""

import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import ledgerflow as lf


def greet() -> lf.Workflow:
    wf = lf.Workflow("greet", 1)

    @wf.node("ask", entry=True)
    def ask(ctx):
        ctx.vars["asked_at"] = ctx.now_ms
        return lf.effect(lf.ask_user("Name?", ["Ada", "Grace"]), result_key="name", then="hello")

    @wf.node("hello")
    def hello(ctx):
        return lf.complete(f"hello, {ctx.vars['name']}")

    return wf


@pytest.fixture
def rt(tmp_path):
    runtime = lf.Runtime.open(str(tmp_path / "store"))
    yield runtime
    runtime.stop()


def test_ask_user_waits_and_respond_completes(rt):
    rt.register(greet())
    run = rt.run(("greet", 1))
    assert run["status"] == "waiting"
    assert run["waiting"]["prompt"] == "Name?"
    assert run["waiting"]["choices"] == ["Ada", "Grace"]
    done = rt.respond(run["run_id"], "Ada")
    assert done["status"] == "completed"
    assert done["output"] == "hello, Ada"
    kinds = [r["kind"] for r in rt.records(run["run_id"])]
    assert kinds[0] == "started" and kinds[-1] == "completed"
    assert rt.verify(run["run_id"])["records"] == len(kinds)
    report = rt.verify()
    assert report["ok"] and report["runs"] == 1 and report["log_leaves"] == len(kinds)


def test_a_waiting_run_survives_the_process_and_resumes_in_another(tmp_path):
    store = str(tmp_path / "store")
    child = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        import ledgerflow as lf
        from test_runtime import greet
        rt = lf.Runtime.open({store!r})
        rt.register(greet())
        run = rt.run(("greet", 1))
        print(run["run_id"], flush=True)
        os._exit(0)  # no stop(): the step was acknowledged, so it is durable
        """
    )
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True)
    run_id = out.stdout.strip()
    with lf.Runtime.open(store) as rt:
        rt.register(greet())
        assert rt.load(run_id)["status"] == "waiting"
        assert rt.respond(run_id, "Grace")["output"] == "hello, Grace"
        assert rt.verify()["ok"]


def test_events_are_delivered_or_queued_in_the_inbox(rt):
    wf = lf.Workflow("listen", 1)
    wf.add_node("wait", lambda ctx: lf.effect(lf.wait_event("order-7"), result_key="order", complete={"got": True}))
    rt.register(wf)
    queued = rt.deliver("order-7", {"n": 1})
    assert queued == {"queued": 1}
    run = rt.run(wf)
    assert run["status"] == "completed" and run["vars"]["order"] == {"n": 1}
    second = rt.run(wf)
    assert second["status"] == "waiting"
    resumed = rt.deliver("order-7", {"n": 2})
    assert resumed["resumed"]["run_id"] == second["run_id"]
    assert rt.await_end(second["run_id"])["vars"]["order"] == {"n": 2}


def test_custom_effects_run_in_python_retry_and_keep_their_idempotency_key(rt):
    calls = []

    def charge(call):
        calls.append((call["idempotency_key"], call["attempt"]))
        if call["attempt"] < 3:
            raise ConnectionError("card network down")
        return {"receipt": f"r-{call['payload']['amount']}"}

    rt.register_effect("charge", charge)
    wf = lf.Workflow("pay", 1)
    wf.add_node(
        "charge",
        lambda ctx: lf.effect(
            lf.custom("charge", {"amount": 40}),
            result_key="receipt",
            complete="paid",
            retry=lf.retry(5, initial_backoff_ms=1, max_backoff_ms=5),
        ),
    )
    rt.register(wf)
    run = rt.run(wf)
    done = rt.await_end(run["run_id"], timeout_s=20)
    assert done["status"] == "completed", done
    assert done["vars"]["receipt"] == {"receipt": "r-40"}
    keys = {key for key, _ in calls}
    assert len(keys) == 1, calls
    assert [attempt for _, attempt in calls] == [1, 2, 3]
    kinds = [r["kind"] for r in rt.records(run["run_id"])]
    assert kinds.count("effect_retry_scheduled") == 2
    assert "card network down" in str(rt.records(run["run_id"]))


def test_an_exception_in_a_node_fails_the_run_with_its_traceback(rt):
    wf = lf.Workflow("boom", 1)

    @wf.node("explode")
    def explode(ctx):
        raise RuntimeError("the parser choked")

    rt.register(wf)
    failed = rt.run(wf)
    assert failed["status"] == "failed"
    assert failed["failure"]["code"] == "node_failed"
    message = failed["failure"]["message"]
    assert "RuntimeError: the parser choked" in message
    assert "Traceback" in message and "explode" in message


def test_values_that_are_not_json_name_where_they_are(rt):
    rt.register(greet())
    with pytest.raises(TypeError, match=r'input\["items"\]\[1\] is not JSON-serialisable: a value of type set'):
        rt.run(("greet", 1), {"items": [1, {2}]})
    with pytest.raises(TypeError, match="the float NaN"):
        rt.run(("greet", 1), {"x": float("nan")})
    with pytest.raises(TypeError, match="dict key of type int"):
        rt.run(("greet", 1), {"x": {1: "a"}})
    wf = lf.Workflow("bad-vars", 1)

    @wf.node("set")
    def set_bad(ctx):
        ctx.vars["when"] = object()
        return lf.complete()

    rt.register(wf)
    failed = rt.run(wf)
    assert failed["status"] == "failed"
    assert 'ctx.vars["when"] is not JSON-serialisable' in failed["failure"]["message"]
    assert rt.query_runs(status="waiting")["runs"] == [], "refused input stored nothing"


def test_errors_are_typed_and_carry_their_code(rt):
    rt.register(greet())
    with pytest.raises(lf.NotFoundError) as missing:
        rt.load("00000000-0000-4000-8000-000000000000")
    assert missing.value.code == "not_found"
    assert isinstance(missing.value, lf.LedgerflowError)
    with pytest.raises(lf.InvalidInputError):
        rt.load("not-a-run-id")
    with pytest.raises(lf.NotRegisteredError):
        rt.run(("nobody", 1))
    run = rt.run(("greet", 1))
    rt.respond(run["run_id"], "Ada")
    with pytest.raises(lf.InvalidStateError) as ended:
        rt.respond(run["run_id"], "again")
    assert ended.value.code == "invalid_state"
    with pytest.raises(lf.InvalidInputError):
        rt.query_runs(status="sleeping")
    with pytest.raises(lf.InvalidInputError):
        rt.read_events(cursor="garbage")


def test_pause_unpause_and_cancel(rt):
    rt.register(greet())
    run = rt.run(("greet", 1))
    paused = rt.pause(run["run_id"])
    assert paused["paused"] is True
    assert rt.unpause(run["run_id"])["paused"] is False
    cancelled = rt.cancel(run["run_id"], "not needed")
    assert cancelled["status"] == "cancelled"
    assert rt.cancel(run["run_id"])["status"] == "cancelled", "idempotent"


def test_snapshots_and_fork(rt):
    rt.register(greet())
    run = rt.run(("greet", 1))
    snap = rt.create_snapshot(run["run_id"], "before-answer", "waiting for a name", ["review"])
    assert snap["seq"] == run["head"]["seq"]
    rt.respond(run["run_id"], "Ada")
    assert [s["name"] for s in rt.list_snapshots(tag="review")] == ["before-answer"]
    then = rt.snapshot_state(run["run_id"], "before-answer")
    assert then["status"] == "waiting"
    fork = rt.fork(run["run_id"], snap["seq"])
    waiting = rt.await_waiting(fork)
    assert waiting["status"] == "waiting"
    assert rt.respond(fork, "Grace")["output"] == "hello, Grace"
    assert rt.load(run["run_id"])["output"] == "hello, Ada", "the parent is unchanged"
    with pytest.raises(lf.NotFoundError):
        rt.snapshot_state(run["run_id"], "never-made")


def test_subworkflows_timers_and_emitted_events(rt):
    child = lf.Workflow("child", 1)
    child.add_node("double", lambda ctx: lf.complete(ctx.vars["n"] * 2))
    parent = lf.Workflow("parent", 1)
    parent.add_node(
        "call",
        lambda ctx: lf.effect(lf.start_subworkflow("child", 1, {"n": 21}), result_key="child", then="nap"),
    )
    parent.add_node(
        "nap",
        lambda ctx: lf.effect(lf.wait_until(ctx.now_ms - 1), then="tell"),
    )
    parent.add_node("tell", lambda ctx: lf.effect(lf.emit_event("told", ctx.vars["child"]), complete="told"))
    rt.register(child)
    rt.register(parent)
    run = rt.run(parent)
    done = rt.await_end(run["run_id"])
    assert done["status"] == "completed", done
    assert done["vars"]["child"]["output"] == 42
    assert rt.deliver("told", None) == {"queued": 2}, "the emitted event was queued first"


def test_queries_feed_and_counts(rt):
    rt.register(greet())
    ids = [rt.run(("greet", 1))["run_id"] for _ in range(3)]
    page = rt.query_runs(status="waiting", limit=2)
    assert len(page["runs"]) == 2 and page["next_cursor"]
    rest = rt.query_runs(status="waiting", cursor=page["next_cursor"], limit=2)
    assert {r["run_id"] for r in page["runs"] + rest["runs"]} == set(ids)
    assert rt.count_by_status() == {"waiting": 3}
    events = rt.read_events(limit=100)
    assert len(events["events"]) == 6 and not events["has_more"]
    again = rt.read_events(cursor=events["next_cursor"])
    assert again["events"] == []


def test_the_gil_is_released_while_waiting(rt):
    """A worker thread runs the Python handler while the caller waits in await_end."""
    wf = lf.Workflow("later", 1)
    wf.add_node("wait", lambda ctx: lf.effect(lf.wait_event("go"), result_key="go", then="done"))
    wf.add_node("done", lambda ctx: lf.complete(threading.current_thread().name))
    rt.register(wf)
    run = rt.run(wf)
    ticker = []
    t = threading.Thread(target=lambda: (time.sleep(0.2), ticker.append(1), rt.deliver("go", 1)))
    t.start()
    done = rt.await_end(run["run_id"], timeout_s=20)
    t.join()
    assert ticker == [1] and done["status"] == "completed"


def test_a_stopped_runtime_reads_but_refuses_writes(tmp_path):
    rt = lf.Runtime.open(str(tmp_path / "store"))
    rt.register(greet())
    run = rt.run(("greet", 1))
    rt.stop()
    assert rt.load(run["run_id"])["status"] == "waiting"
    with pytest.raises(lf.ClosedError):
        rt.respond(run["run_id"], "Ada")
    rt.stop()


def test_memory_runtime_and_locations(tmp_path):
    with lf.Runtime.in_memory() as rt:
        assert rt.location == "memory:"
        rt.register(greet())
        assert rt.run(("greet", 1))["status"] == "waiting"
    with lf.Runtime.open(f"sled:{tmp_path / 's'}") as rt:
        assert rt.location.startswith("sled:")
    with pytest.raises(lf.InvalidInputError, match="scheme"):
        lf.Runtime.open("mysql://db/x")


def test_leaving_the_with_block_lets_go_of_the_store(tmp_path):
    store = str(tmp_path / "store")
    with lf.Runtime.open(store) as rt:
        rt.register(greet())
        run = rt.run(("greet", 1))
    with pytest.raises(lf.ClosedError):
        rt.load(run["run_id"])
    rt.close()  # idempotent
    with lf.Runtime.open(store) as again:
        again.register(greet())
        assert again.respond(run["run_id"], "Ada")["output"] == "hello, Ada"


def test_named_logs_keep_their_entries_in_order_across_runtimes(tmp_path):
    store = str(tmp_path / "store")
    with lf.Runtime.open(store) as rt:
        for i in range(5):
            rt.append_log("audit", {"i": i})
        rt.append_log("big", {"blob": "x" * 20_000})  # stored as an artifact
        assert rt.read_log("audit") == [{"i": i} for i in range(5)]
    with lf.Runtime.open(store) as rt:
        assert sorted(rt.log_names()) == ["audit", "big"]
        assert rt.read_log("audit")[-1] == {"i": 4}
        assert rt.read_log("big") == [{"blob": "x" * 20_000}]
        assert rt.read_log("never-written") == []
        run_id = lf.Runtime.log_run_id("audit")
        assert rt.verify(run_id)["ok"]
        kinds = [r["kind"] for r in rt.records(run_id)]
        assert kinds.count("resumed") == 5


def test_open_takes_durability_and_commit_size(tmp_path):
    with pytest.raises(lf.InvalidInputError, match="unknown durability"):
        lf.Runtime.open(str(tmp_path / "a"), durability="sometimes")
    with pytest.raises(lf.InvalidInputError, match="at least 1"):
        lf.Runtime.open(str(tmp_path / "b"), records_per_commit_max=0)
    with lf.Runtime.open(str(tmp_path / "c"), durability="sync", records_per_commit_max=1) as rt:
        rt.register(greet())
        run = rt.run(("greet", 1))
        assert rt.respond(run["run_id"], "Ada")["output"] == "hello, Ada"
        assert rt.verify()["ok"]
