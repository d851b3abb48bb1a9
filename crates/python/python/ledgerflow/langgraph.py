"""``LedgerflowSaver``: a LangGraph checkpointer on ledgerflow's store.

Every ``put`` and ``put_writes`` (and every delete, copy and prune) is one entry of the
thread's log: a hash-chained, fsynced ledger record of a ledgerflow run (the run of the
log ``langgraph:<thread_id>``, id ``Runtime.log_run_id(...)``), in the store's global
Merkle log and covered by its signed checkpoints. So a thread's checkpoint history can be
exported and verified with ``ledgerflow ledger verify`` or ``tools/ledger_verify.py``.

Reads are served from a projection of the logs kept in memory (LangGraph's own
``InMemorySaver`` structures), rebuilt from the ledger when the saver opens: the ledger
is the truth, the projection only an index. An entry is applied to the projection only
after its commit is durable.

Deleting and pruning are entries too. They remove checkpoints from what the saver serves,
and nothing is rewritten: the ledger keeps every record, so the history stays verifiable
(a tombstone is itself a chained record). Purging the bytes of deleted checkpoints while
the chain keeps their hashes is not done yet (see docs/python.md).

Needs ``langgraph-checkpoint`` 4.x.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, Optional

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    SerializerProtocol,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.memory import InMemorySaver

from ._native import Runtime

__all__ = ["LedgerflowSaver", "LOG_PREFIX"]

#: Logs of LangGraph threads are named ``LOG_PREFIX + thread_id``.
LOG_PREFIX = "langgraph:"


def _enc(typed: tuple[str, bytes]) -> list:
    kind, data = typed
    return [kind, base64.b64encode(data).decode("ascii")]


def _dec(encoded: Sequence[Any]) -> tuple[str, bytes]:
    return (encoded[0], base64.b64decode(encoded[1]))


class _Projection(InMemorySaver):
    """What the saver serves: the threads' logs applied in order."""

    def __init__(self, serde: SerializerProtocol) -> None:
        super().__init__(serde=serde)
        # (thread, ns, checkpoint id) -> the run_id in its metadata.
        self.run_ids: dict[tuple[str, str, str], Optional[str]] = {}
        # (thread, ns) -> its newest checkpoint id, so reading the latest is not a scan.
        self.latest: dict[tuple[str, str], str] = {}

    def apply(self, thread: str, entry: Mapping[str, Any]) -> None:
        op = entry["op"]
        if op == "put":
            self._put(thread, entry)
        elif op == "writes":
            self._writes(thread, entry["ns"], entry["id"], entry["task_id"], entry["task_path"], entry["writes"])
        elif op == "delete_thread":
            self._drop(thread, lambda ns, cid: True)
        elif op == "delete_for_runs":
            runs = set(entry["run_ids"])
            self._drop(thread, lambda ns, cid: self.run_ids.get((thread, ns, cid)) in runs)
        elif op == "copy":
            for put in entry["checkpoints"]:
                self._put(thread, put)
            for w in entry["writes"]:
                self._writes(thread, w["ns"], w["id"], w["task_id"], w["task_path"], w["writes"])
        elif op == "prune":
            if entry["strategy"] == "delete":
                self._drop(thread, lambda ns, cid: True)
            else:
                latest = {ns: max(ids) for ns, ids in self.storage.get(thread, {}).items() if ids}
                self._drop(thread, lambda ns, cid: latest.get(ns) != cid, keep_blobs=True)
        else:
            raise ValueError(f"unknown entry {op!r} in the log of thread {thread!r}")

    def _put(self, thread: str, entry: Mapping[str, Any]) -> None:
        ns = entry["ns"]
        for channel, version, kind, data in entry["blobs"]:
            self.blobs[(thread, ns, channel, version)] = _dec((kind, data))
        self.storage[thread][ns][entry["id"]] = (
            _dec(entry["checkpoint"]),
            _dec(entry["metadata"]),
            entry["parent"],
        )
        self.run_ids[(thread, ns, entry["id"])] = entry.get("run_id")
        newest = self.latest.get((thread, ns))
        if newest is None or entry["id"] > newest:
            self.latest[(thread, ns)] = entry["id"]

    def _writes(self, thread: str, ns: str, cid: str, task_id: str, task_path: str, writes: Sequence) -> None:
        outer = self.writes[(thread, ns, cid)]
        for idx, channel, kind, data in writes:
            if idx >= 0 and (task_id, idx) in outer:
                continue
            outer[(task_id, idx)] = (task_id, channel, _dec((kind, data)), task_path)

    def _drop(self, thread: str, doomed, keep_blobs: bool = False) -> None:
        spaces = self.storage.get(thread)
        if spaces is None:
            return
        for ns in list(spaces):
            for cid in [c for c in spaces[ns] if doomed(ns, c)]:
                del spaces[ns][cid]
                self.writes.pop((thread, ns, cid), None)
                self.run_ids.pop((thread, ns, cid), None)
            if spaces[ns]:
                self.latest[(thread, ns)] = max(spaces[ns])
            else:
                del spaces[ns]
                self.latest.pop((thread, ns), None)
        if not spaces:
            del self.storage[thread]
            for key in [k for k in self.writes if k[0] == thread]:
                del self.writes[key]
            if not keep_blobs:
                for key in [k for k in self.blobs if k[0] == thread]:
                    del self.blobs[key]

    def export(self, thread: str) -> dict:
        """The thread's checkpoints and writes as one ``copy`` entry."""
        checkpoints, writes = [], []
        for ns, items in self.storage.get(thread, {}).items():
            for cid in sorted(items):
                checkpoint, metadata, parent = items[cid]
                blobs = [
                    [channel, version, *_enc(value)]
                    for (t, n, channel, version), value in self.blobs.items()
                    if t == thread and n == ns
                ]
                checkpoints.append(
                    {
                        "ns": ns,
                        "id": cid,
                        "parent": parent,
                        "checkpoint": _enc(checkpoint),
                        "metadata": _enc(metadata),
                        "run_id": self.run_ids.get((thread, ns, cid)),
                        "blobs": blobs,
                    }
                )
                stored = self.writes.get((thread, ns, cid), {})
                by_task: dict[tuple[str, str], list] = {}
                for (task_id, idx), (_, channel, value, task_path) in stored.items():
                    by_task.setdefault((task_id, task_path), []).append([idx, channel, *_enc(value)])
                for (task_id, task_path), entries in by_task.items():
                    writes.append({"ns": ns, "id": cid, "task_id": task_id, "task_path": task_path, "writes": entries})
        return {"op": "copy", "checkpoints": checkpoints, "writes": writes}


class LedgerflowSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer whose history is a verifiable ledger.

    ``LedgerflowSaver.open(path)`` opens (or creates) a store of its own;
    ``LedgerflowSaver(runtime)`` shares a :class:`ledgerflow.Runtime`. Use it as a
    context manager, or call :meth:`close`, to let go of the store.
    """

    def __init__(self, runtime: Runtime, *, serde: Optional[SerializerProtocol] = None, owns_runtime: bool = False) -> None:
        super().__init__(serde=serde)
        self.runtime = runtime
        self._owns_runtime = owns_runtime
        self._projection = _Projection(self.serde)
        # Writers of one thread append one at a time, so the projection applies a thread's
        # entries in its log's order; writers of different threads commit at once (and
        # share the store's group commits). Readers take only the projection's lock.
        self._thread_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._read_lock = threading.RLock()
        for name in runtime.log_names():
            if name.startswith(LOG_PREFIX):
                thread = name[len(LOG_PREFIX):]
                for entry in runtime.read_log(name):
                    self._projection.apply(thread, entry)

    @classmethod
    def open(cls, location: str, *, serde: Optional[SerializerProtocol] = None) -> "LedgerflowSaver":
        """A saver on the store at ``location`` (a directory or ``sled:PATH``)."""
        return cls(Runtime.open(location), serde=serde, owns_runtime=True)

    @classmethod
    def in_memory(cls, *, serde: Optional[SerializerProtocol] = None) -> "LedgerflowSaver":
        """A saver on a memory store (for tests: nothing survives the process)."""
        return cls(Runtime.in_memory(), serde=serde, owns_runtime=True)

    def close(self) -> None:
        """Lets go of the store if the saver opened it."""
        if self._owns_runtime:
            self.runtime.close()

    def __enter__(self) -> "LedgerflowSaver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> "LedgerflowSaver":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def log_name(thread_id: str) -> str:
        """The name of the thread's log."""
        return LOG_PREFIX + thread_id

    @staticmethod
    def run_id(thread_id: str) -> str:
        """The ledgerflow run that holds the thread's history (export or verify it)."""
        return Runtime.log_run_id(LOG_PREFIX + thread_id)

    def _append(self, thread: str, entry: dict) -> None:
        with self._locks_lock:
            lock = self._thread_locks.setdefault(thread, threading.Lock())
        with lock:
            self.runtime.append_log(LOG_PREFIX + thread, entry)
            with self._read_lock:
                self._projection.apply(thread, entry)

    def _threads(self) -> list[str]:
        with self._read_lock:
            return list(self._projection.storage)

    # Reads.

    def get_tuple(self, config: RunnableConfig) -> Optional[CheckpointTuple]:
        configurable = config["configurable"]
        with self._read_lock:
            if not configurable.get("checkpoint_id"):
                # The latest: named by the projection's index, not found by a scan.
                ns = configurable.get("checkpoint_ns", "")
                newest = self._projection.latest.get((configurable["thread_id"], ns))
                if newest is None:
                    return None
                config = {**config, "configurable": {**configurable, "checkpoint_ns": ns, "checkpoint_id": newest}}
            return self._projection.get_tuple(config)

    def list(
        self,
        config: Optional[RunnableConfig],
        *,
        filter: Optional[dict[str, Any]] = None,
        before: Optional[RunnableConfig] = None,
        limit: Optional[int] = None,
    ) -> Iterator[CheckpointTuple]:
        with self._read_lock:
            found = list(self._projection.list(config, filter=filter, before=before, limit=limit))
        yield from found

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        with self._read_lock:
            return self._projection.get_delta_channel_history(config=config, channels=channels)

    # Writes: one ledger entry each.

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        configurable = config["configurable"]
        thread = configurable["thread_id"]
        ns = configurable.get("checkpoint_ns", "")
        stored = checkpoint.copy()
        values: dict[str, Any] = stored.pop("channel_values")  # type: ignore[misc]
        blobs = [
            [channel, version, *_enc(self.serde.dumps_typed(values[channel]) if channel in values else ("empty", b""))]
            for channel, version in new_versions.items()
        ]
        full_metadata = get_checkpoint_metadata(config, metadata)
        run_id = full_metadata.get("run_id")
        entry = {
            "op": "put",
            "ns": ns,
            "id": checkpoint["id"],
            "parent": configurable.get("checkpoint_id"),
            "checkpoint": _enc(self.serde.dumps_typed(stored)),
            "metadata": _enc(self.serde.dumps_typed(full_metadata)),
            "run_id": None if run_id is None else str(run_id),
            "blobs": blobs,
        }
        self._append(thread, entry)
        return {"configurable": {"thread_id": thread, "checkpoint_ns": ns, "checkpoint_id": checkpoint["id"]}}

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        configurable = config["configurable"]
        thread = configurable["thread_id"]
        ns = configurable.get("checkpoint_ns", "")
        cid = configurable["checkpoint_id"]
        with self._read_lock:
            present = set(self._projection.writes.get((thread, ns, cid), {}))
        entries = []
        for i, (channel, value) in enumerate(writes):
            idx = WRITES_IDX_MAP.get(channel, i)
            if idx >= 0 and (task_id, idx) in present:
                continue
            entries.append([idx, channel, *_enc(self.serde.dumps_typed(value))])
        if entries:
            self._append(thread, {"op": "writes", "ns": ns, "id": cid, "task_id": task_id, "task_path": task_path, "writes": entries})

    def delete_thread(self, thread_id: str) -> None:
        if thread_id in self._threads():
            self._append(thread_id, {"op": "delete_thread"})

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        wanted = {str(r) for r in run_ids}
        if not wanted:
            return
        with self._read_lock:
            threads = sorted({t for (t, _, _), run in self._projection.run_ids.items() if run in wanted})
        for thread in threads:
            self._append(thread, {"op": "delete_for_runs", "run_ids": sorted(wanted)})

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        with self._read_lock:
            entry = self._projection.export(source_thread_id)
        if entry["checkpoints"]:
            self._append(target_thread_id, entry)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"unknown prune strategy {strategy!r}: keep_latest or delete")
        known = set(self._threads())
        for thread in thread_ids:
            if thread in known:
                self._append(thread, {"op": "prune", "strategy": strategy})

    def get_next_version(self, current: Optional[str], channel: None) -> str:
        return self._projection.get_next_version(current, channel)

    # Async twins: the store is called from a worker thread, so the event loop never
    # waits on a commit.

    async def aget_tuple(self, config: RunnableConfig) -> Optional[CheckpointTuple]:
        return self.get_tuple(config)

    async def alist(
        self,
        config: Optional[RunnableConfig],
        *,
        filter: Optional[dict[str, Any]] = None,
        before: Optional[RunnableConfig] = None,
        limit: Optional[int] = None,
    ) -> AsyncIterator[CheckpointTuple]:
        for item in self.list(config, filter=filter, before=before, limit=limit):
            yield item

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return self.get_delta_channel_history(config=config, channels=channels)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)
