"""ledgerflow: durable workflows with a hash-chained, verifiable ledger.

A workflow is a graph of node handlers, plain Python callables ``handler(ctx) -> plan``.
A run of it can wait for a person, an event, a timer or a child workflow, survive
restarts, and resume exactly where it stopped; every step is committed atomically with
its hash-chained ledger records.

    import ledgerflow as lf

    wf = lf.Workflow("greet", 1)

    @wf.node("ask", entry=True)
    def ask(ctx):
        return lf.effect(lf.ask_user("Name?"), result_key="name", then="hello")

    @wf.node("hello")
    def hello(ctx):
        return lf.complete(f"hello, {ctx.vars['name']}")

    with lf.Runtime.open("ledgerflow-data") as rt:
        rt.register(wf)
        run = rt.run(wf)                          # waits for the answer
        done = rt.respond(run["run_id"], "Ada")   # finds the wait itself
        assert done["output"] == "hello, Ada"
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence

from ._native import (  # noqa: F401  (re-exported)
    AfterCommitError,
    CancelledError,
    ClosedError,
    ConflictError,
    Context,
    CorruptError,
    InternalError,
    InvalidInputError,
    InvalidStateError,
    LedgerflowError,
    LimitExceededError,
    MissingError,
    NotFoundError,
    NotRegisteredError,
    Runtime,
    StoreIoError,
    WaitTimeoutError,
    __version__,
)

__all__ = [
    "Workflow",
    "Runtime",
    "Context",
    "next",
    "complete",
    "fail",
    "effect",
    "ask_user",
    "wait_event",
    "wait_until",
    "start_subworkflow",
    "emit_event",
    "custom",
    "retry",
    "waiting",
    "failed",
    "LedgerflowError",
    "ConflictError",
    "NotFoundError",
    "InvalidInputError",
    "InvalidStateError",
    "LimitExceededError",
    "NotRegisteredError",
    "AfterCommitError",
    "CorruptError",
    "MissingError",
    "StoreIoError",
    "ClosedError",
    "WaitTimeoutError",
    "CancelledError",
    "InternalError",
]

Handler = Callable[[Context], Dict[str, Any]]


class Workflow:
    """A workflow spec: an id, a version, an entry node and node handlers.

    Register it with :meth:`Runtime.register`. A run records the (id, version) it started
    with and always resumes on it, so change a workflow's behaviour under a new version.
    """

    def __init__(self, id: str, version: int) -> None:
        self.id = id
        self.version = version
        self.entry: Optional[str] = None
        self.nodes: Dict[str, Handler] = {}

    def node(self, name: str, *, entry: bool = False) -> Callable[[Handler], Handler]:
        """Decorator: registers the function as the handler of node ``name``."""

        def register(handler: Handler) -> Handler:
            self.add_node(name, handler, entry=entry)
            return handler

        return register

    def add_node(self, name: str, handler: Handler, *, entry: bool = False) -> "Workflow":
        """Adds the handler of node ``name`` (the first node added is the entry unless
        another is marked ``entry=True``)."""
        if name in self.nodes:
            raise ValueError(f"workflow {self.id!r} already has a node {name!r}")
        self.nodes[name] = handler
        if entry or self.entry is None:
            self.entry = name
        return self

    def __repr__(self) -> str:
        return f"Workflow({self.id!r}, {self.version}, nodes={list(self.nodes)})"


# Plans: what a node handler returns.


def next(node: str) -> Dict[str, Any]:  # noqa: A001  (the plan is called "next")
    """Go to ``node`` next."""
    return {"next": node}


def complete(output: Any = None) -> Dict[str, Any]:
    """The run is done, with ``output``."""
    return {"complete": output}


def fail(message: str) -> Dict[str, Any]:
    """The run failed, with ``message``."""
    return {"fail": message}


_NOTHING = object()


def effect(
    request: Dict[str, Any],
    *,
    then: Optional[str] = None,
    complete: Any = _NOTHING,
    result_key: Optional[str] = None,
    retry: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Perform the effect ``request`` (from :func:`ask_user`, :func:`wait_event`, …), put
    its result in ``ctx.vars[result_key]``, then go to node ``then`` or complete the run
    with ``complete``."""
    if (then is None) == (complete is _NOTHING):
        raise ValueError("give exactly one of then=NODE or complete=OUTPUT")
    request = dict(request)
    if result_key is not None:
        request["result_key"] = result_key
    if retry is not None:
        request["retry"] = retry
    cont = {"next": then} if then is not None else {"complete": complete}
    return {"effect": request, "then": cont}


def _request(kind: str, payload: Any) -> Dict[str, Any]:
    return {"kind": kind, "payload": payload, "result_key": None, "retry": None}


def ask_user(prompt: str, choices: Sequence[str] = ()) -> Dict[str, Any]:
    """Wait for a person's answer (:meth:`Runtime.respond`)."""
    return _request("ask_user", {"prompt": prompt, "choices": list(choices)})


def wait_event(wait_key: str) -> Dict[str, Any]:
    """Wait for an event delivered to ``wait_key`` (:meth:`Runtime.deliver`)."""
    return _request("wait_event", {"wait_key": wait_key})


def wait_until(at_ms: int) -> Dict[str, Any]:
    """Wait until ``at_ms`` (ms since the Unix epoch): a durable timer."""
    return _request("wait_until", {"at_ms": at_ms})


def start_subworkflow(
    workflow_id: str, version: int, input: Any = None, mode: str = "sync"
) -> Dict[str, Any]:
    """Start a child run; ``sync`` waits for its result, ``async`` goes on at once."""
    return _request(
        "start_subworkflow",
        {"workflow_id": workflow_id, "version": version, "input": input, "mode": mode},
    )


def emit_event(wait_key: str, payload: Any = None) -> Dict[str, Any]:
    """Deliver ``payload`` to ``wait_key`` (another run waiting on it, or its inbox)."""
    return _request("emit_event", {"wait_key": wait_key, "payload": payload})


def custom(kind: str, payload: Any = None) -> Dict[str, Any]:
    """A custom effect, run by the handler registered for ``kind``
    (:meth:`Runtime.register_effect`): recorded before it runs and after, with an
    idempotency key, so a crash never runs it twice unseen."""
    return _request(kind, payload)


def retry(
    attempts_max: int,
    initial_backoff_ms: int = 100,
    max_backoff_ms: int = 60_000,
    multiplier: float = 2.0,
    jitter: float = 0.1,
) -> Dict[str, Any]:
    """A retry policy for a custom effect: each retry waits on a durable timer."""
    return {
        "attempts_max": attempts_max,
        "initial_backoff_ms": initial_backoff_ms,
        "max_backoff_ms": max_backoff_ms,
        "multiplier": multiplier,
        "jitter": jitter,
    }


# Outcomes: what an effect handler may return besides its result.

_OUTCOME = "$ledgerflow_outcome"


def waiting(wait_key: str) -> Dict[str, Any]:
    """The effect was started elsewhere: its result will be delivered to ``wait_key``."""
    return {_OUTCOME: "waiting", "wait_key": wait_key}


def failed(error: str, retryable: bool = True) -> Dict[str, Any]:
    """The effect failed; a retryable failure is retried by the effect's policy."""
    return {_OUTCOME: "failed", "error": error, "retryable": retryable}
