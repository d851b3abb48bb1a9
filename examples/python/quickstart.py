"""The Python quickstart: a durable workflow that asks a person, survives a restart of
the runtime, and resumes where it stopped; its ledger verifies.

Run: tools/python.sh example   (builds the package into .venv-python first)
"""

import tempfile

import ledgerflow as lf

approval = lf.Workflow("approve-refund", 1)


@approval.node("check", entry=True)
def check(ctx):
    amount = ctx.vars["amount"]
    if amount <= 50:
        return lf.complete({"refunded": amount, "by": "policy"})
    return lf.effect(
        lf.ask_user(f"Refund {amount} EUR?", ["yes", "no"]),
        result_key="answer",
        then="decide",
    )


@approval.node("decide")
def decide(ctx):
    if ctx.vars["answer"] == "yes":
        return lf.complete({"refunded": ctx.vars["amount"], "by": "a person"})
    return lf.complete({"refunded": 0})


store = tempfile.mkdtemp(prefix="ledgerflow-python-")

with lf.Runtime.open(store) as rt:
    rt.register(approval)
    small = rt.run(approval, {"amount": 20})
    print("small refund:", small["status"], small["output"])
    big = rt.run(approval, {"amount": 400})
    print("big refund:", big["status"], "-", big["waiting"]["prompt"])

# A new runtime on the same store: the waiting run is still there.
with lf.Runtime.open(store) as rt:
    rt.register(approval)
    print("after a restart:", rt.load(big["run_id"])["status"])
    done = rt.respond(big["run_id"], "yes")
    print("answered:", done["status"], done["output"])
    kinds = [r["kind"] for r in rt.records(big["run_id"])]
    print("ledger:", " -> ".join(kinds))
    report = rt.verify()
    print(f"verified: {report['runs']} runs, {report['records']} records, ok={report['ok']}")
    assert done["output"] == {"refunded": 400, "by": "a person"}
    assert report["ok"]
