"""A real LangGraph graph with an interrupt() on LedgerflowSaver: the process that ran to
the interrupt is SIGKILLed, a fresh process resumes it, the tool node is not run again,
and the thread's history verifies."""

import os
import signal
import subprocess
import sys

import pytest

pytest.importorskip("langgraph.graph")

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples", "python", "hitl_agent.py")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, EXAMPLE, *args], capture_output=True, text=True, timeout=120)


def test_killed_after_the_interrupt_resumed_by_another_process(tmp_path):
    store = str(tmp_path / "store")
    calls = str(tmp_path / "store.tool-calls")
    # Run to the interrupt, then stay alive until killed (the checkpoint is durable once
    # the interrupt is reported: nothing is flushed at exit).
    script = f"""
import runpy, time
from ledgerflow.langgraph import LedgerflowSaver
agent = runpy.run_path({EXAMPLE!r}, run_name="agent")
saver = LedgerflowSaver.open({store!r})
app = agent["build"]({store!r}, saver)
app.invoke({{"order": "A-17"}}, {{"configurable": {{"thread_id": "t-1"}}}})
print("interrupted", flush=True)
time.sleep(600)
"""
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    line = child.stdout.readline()
    assert line.strip() == "interrupted", line
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert open(calls).read().splitlines() == ["A-17"]

    resumed = run("resume", store, "t-1", "yes")
    assert resumed.returncode == 0, resumed.stderr
    assert "result: refunded" in resumed.stdout
    assert open(calls).read().splitlines() == ["A-17"], "the tool ran again on resume"

    verified = run("verify", store, "t-1")
    assert verified.returncode == 0, verified.stderr
    assert "chain ok" in verified.stdout
