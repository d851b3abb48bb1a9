"""A LangGraph agent with a human in the loop, checkpointed by ledgerflow.

The graph looks up an order with a tool (a side effect: it counts its calls in a file),
then stops at ``interrupt()`` for a person to approve a refund. Run it in two processes:

    python examples/python/hitl_agent.py start  STORE THREAD   # runs to the interrupt
    python examples/python/hitl_agent.py resume STORE THREAD yes   # a fresh process

The first process may be killed after the interrupt: the second resumes from the
checkpoint, and the tool is not called again. ``verify`` checks the thread's history:

    python examples/python/hitl_agent.py verify STORE THREAD
"""

import os
import sys
from typing import TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from ledgerflow.langgraph import LedgerflowSaver


class State(TypedDict, total=False):
    order: str
    details: dict
    approved: bool
    result: str


def calls_file(store: str) -> str:
    return os.path.join(store, "..", os.path.basename(store) + ".tool-calls")


def build(store: str, saver: LedgerflowSaver):
    def lookup_order(state: State) -> State:
        # The tool: an outside effect. Count each call, so a re-execution shows.
        with open(calls_file(store), "a") as f:
            f.write(state["order"] + "\n")
        return {"details": {"order": state["order"], "amount": 120}}

    def approve(state: State) -> State:
        answer = interrupt({"question": f"Refund {state['details']['amount']} EUR?"})
        return {"approved": answer == "yes"}

    def finish(state: State) -> State:
        return {"result": "refunded" if state["approved"] else "declined"}

    graph = StateGraph(State)
    graph.add_node("lookup_order", lookup_order)
    graph.add_node("approve", approve)
    graph.add_node("finish", finish)
    graph.add_edge(START, "lookup_order")
    graph.add_edge("lookup_order", "approve")
    graph.add_edge("approve", "finish")
    graph.add_edge("finish", END)
    return graph.compile(checkpointer=saver)


def main(argv: list) -> int:
    command, store, thread = argv[1], argv[2], argv[3]
    config = {"configurable": {"thread_id": thread}}
    with LedgerflowSaver.open(store) as saver:
        app = build(store, saver)
        if command == "start":
            out = app.invoke({"order": "A-17"}, config)
            print("interrupted:", out["__interrupt__"][0].value, flush=True)
        elif command == "resume":
            out = app.invoke(Command(resume=argv[4]), config)
            print("result:", out["result"], flush=True)
        elif command == "verify":
            run_id = saver.run_id(thread)
            checked = saver.runtime.verify(run_id)
            print(f"history of thread {thread}: run {run_id}, {checked['records']} records, chain ok", flush=True)
        else:
            print(__doc__)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
