"""Grading on a Dask cluster: the same tasks as the local pool, run by ``distributed`` workers.

``grade batch SUBS --scheduler tcp://HOST:8786`` connects to a running scheduler;
``--scheduler local`` starts a :class:`distributed.LocalCluster` on this machine (one single-threaded
worker process per ``--jobs``). Each Dask worker process keeps one :class:`grader.api.Grader` per
course configuration (its own fork-server and plan), so start-up is paid once per worker.

Tasks carry JSON text (the settings and the submission's source), results come back as JSON text
(the Report): Dask pickles task arguments and results, so nothing a student produced may ever be
one of them — and nothing is. Results are written to the gradebook by the batch parent alone.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from grader.errors import GraderError
from grader.settings import Settings

from .tasks import grade_payload, probe_layers, settings_from_dict, settings_to_dict

_GRADERS: dict[str, Any] = {}
_LOCK = threading.Lock()


def _grader(config: str) -> Any:
    """This worker process's Grader for ``config`` (created on first use)."""
    with _LOCK:
        grader = _GRADERS.get(config)
        if grader is None:
            from grader.api import Grader

            data = json.loads(config)
            # A Dask worker runs threads: fork-servers are always spawned fresh, never forked from it.
            grader = Grader(
                settings_from_dict(data["settings"]), only=data.get("only", ()), zygote_mode="spawn"
            )
            grader.preload()  # build the plan; hand its inputs to the fork-server once
            _GRADERS[config] = grader
        return grader


def warm(config: str) -> list[str]:
    """Runs on a Dask worker: build its Grader and return the isolation layers its workers get."""
    return probe_layers(_grader(config))


def grade_remote(config: str, task: str) -> str:
    """Runs on a Dask worker: grade one task (JSON text in, JSON text out)."""
    payload = json.loads(task)
    try:
        result = grade_payload(_grader(config), payload)
    except Exception as e:
        result = {"id": payload.get("id"), "error": f"internal grader error: {type(e).__name__}: {e}"}
    return json.dumps(result, separators=(",", ":"))


class DaskPool:
    """The batch's executor on a Dask cluster (same interface as :class:`grader.batch.pool.LocalPool`)."""

    name = "dask"

    def __init__(
        self,
        settings: Settings,
        *,
        scheduler: str,
        only: Iterable[str] = (),
        jobs: int | None = None,
        queue_per_job: int = 2,
    ) -> None:
        self.scheduler = scheduler
        self.jobs = jobs
        self.queue_per_job = max(1, queue_per_job)
        self.config = json.dumps({"settings": settings_to_dict(settings), "only": list(only)}, sort_keys=True)
        self.client: Any = None
        self.cluster: Any = None
        self.slots = 1
        self.layers: list[tuple[str, ...]] = []
        self.restarts = 0

    def start(self) -> list[tuple[str, ...]]:
        try:
            import logging

            from distributed import Client, LocalCluster
        except ImportError:
            raise GraderError(
                "--scheduler needs Dask: pip install 'imgclass-kit[dask]' (distributed)"
            ) from None
        from .pool import job_count

        if self.scheduler == "local":
            self.cluster = LocalCluster(
                n_workers=job_count(self.jobs),
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            self.client = Client(self.cluster)
        else:
            try:
                self.client = Client(self.scheduler, timeout="30s")
            except OSError as e:
                raise GraderError(f"Cannot reach the Dask scheduler at {self.scheduler}: {e}") from None
        nthreads: dict[str, int] = self.client.nthreads()
        if not nthreads:
            self.client.wait_for_workers(1, timeout=120)
            nthreads = self.client.nthreads()
        self.slots = max(1, sum(nthreads.values()))
        futures = [
            self.client.submit(warm, self.config, workers=[addr], allow_other_workers=False, pure=False)
            for addr in nthreads
        ]
        try:
            self.layers = [tuple(f.result()) for f in futures]
        except Exception as e:
            raise GraderError(f"a Dask worker could not start grading: {e}") from None
        return self.layers

    def run(self, tasks: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        from distributed import as_completed

        source = iter(tasks)
        ids: dict[Any, int] = {}

        def submit() -> Any:
            task = next(source)
            future = self.client.submit(
                grade_remote, self.config, json.dumps(task, separators=(",", ":")), pure=False
            )
            ids[future.key] = int(task["id"])
            return future

        initial = []
        for _ in range(self.slots * self.queue_per_job):
            try:
                initial.append(submit())
            except StopIteration:
                break
        pending = as_completed(initial)
        for future in pending:
            tid = ids.pop(future.key)
            try:
                result: dict[str, Any] = json.loads(future.result())
            except Exception as e:
                result = {
                    "id": tid,
                    "error": f"internal grader error on the Dask cluster: {type(e).__name__}: {e}",
                }
            future.release()
            yield result
            try:
                pending.add(submit())
            except StopIteration:
                pass

    def close(self, *, wait: bool = True) -> None:
        """Close the client (and a cluster of our own) now, whatever ``wait`` says; a second call
        does nothing."""
        client, cluster, self.client, self.cluster = self.client, self.cluster, None, None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

    def kill(self) -> None:
        self.close()
