"""LangGraph's own conformance suite (the PyPI package langgraph-checkpoint-conformance),
run unchanged against LedgerflowSaver on a real sled store: it must reach FULL."""

import asyncio
import tempfile

import pytest

conformance = pytest.importorskip("langgraph.checkpoint.conformance")
from langgraph.checkpoint.conformance import checkpointer_test, validate  # noqa: E402

from ledgerflow.langgraph import LedgerflowSaver  # noqa: E402


@checkpointer_test(name="LedgerflowSaver")
async def ledgerflow_saver():
    with tempfile.TemporaryDirectory() as store:
        saver = LedgerflowSaver.open(store)
        try:
            yield saver
        finally:
            saver.close()


def test_the_conformance_suite_passes_at_level_full():
    report = asyncio.run(validate(ledgerflow_saver))
    report.print_report()
    failures = {
        name: result.failures
        for name, result in report.results.items()
        if result.passed is False or not result.detected
    }
    assert report.conformance_level() == "FULL", failures
    passed = sum(r.tests_passed for r in report.results.values())
    failed = sum(r.tests_failed for r in report.results.values())
    assert failed == 0 and passed >= 81, (passed, failed)
