"""The Python API behind the CLI: keyword-only functions and a Grader that owns its fork-server."""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Iterable
from typing import Any

import torch

import grader.runner
from grader import specs
from grader.engine import Plan, build_plan, grade
from grader.errors import GraderError
from grader.memory import HUGE_PAGES_AHEAD
from grader.model import Report
from grader.sandbox import OutputCapture, SandboxError, Worker, Zygote
from grader.settings import Settings
from grader.submission import Submission, read_submission
from grader.version import __version__

with contextlib.suppress(ImportError):
    import grader.isolation  # noqa: F401 - likewise

#: A Grader whose plan is preloaded (a batch) moves its fork-server into huge pages (0.03-0.4 s
#: once, ~5-9 CPU-ms less per worker) when HUGE_PAGES_AHEAD more submissions are expected of it...
#: ...or, when the batch does not say how many, once it has graded this many
HUGE_PAGES_AFTER = 8


class Grader:
    """Grades submissions with one fork-server and one plan (cases + expected outputs) for all of them."""

    def __init__(
        self, settings: Settings | None = None, *, only: Iterable[str] = (), zygote_mode: str = "auto"
    ) -> None:
        self.settings = settings or Settings()
        wanted = tuple(only) or self.settings.exercises
        self.exercises = specs.select(wanted)
        self.modules = tuple(dict.fromkeys(e.module for e in specs.ALL))
        mode = zygote_mode
        if mode == "auto" and self.settings.hidden_seed is not None:
            mode = "spawn"  # the parent holds a secret: the fork-server must not inherit its memory
        # One thread in the parent: its tensors are small, and idle OpenMP threads spinning beside the
        # workers on a 2-core machine cost more than they give.
        torch.set_num_threads(1)
        self.zygote = Zygote.start(mode=mode, kernel_probes=self.settings.isolation != "minimal")
        self._plan: Plan | None = None
        self._graded = 0
        self._told = 0  #: submissions graded that said how many more are ahead (a batch's)
        # Batch grading only (a preloaded plan): the next worker, forked while the current one
        # works, and the last one, still exiting (see new_worker and _settle).
        self._spare: Worker | None = None
        self._retired: Worker | None = None
        #: MiB of the fork-server's memory in huge pages (None: not asked yet)
        self.huge_pages_mib: int | None = None

    @property
    def plan(self) -> Plan:
        if self._plan is None:
            self._plan = build_plan(self.exercises, self.settings, lazy=True)
        return self._plan

    def preload(self) -> None:
        """Build the whole plan and hand its inputs to the fork-server once: every later worker
        inherits them instead of receiving them per submission (batch grading; the expected outputs
        never leave this process)."""
        plan = self.plan
        if plan.preloaded is None:
            key = f"plan-{id(plan):x}"
            self.zygote.preload(key, [(pe.exercise.id, pe.run_cases, pe.blobs) for pe in plan.exercises])
            plan.preloaded = key

    @property
    def _batch(self) -> bool:
        return self._plan is not None and self._plan.preloaded is not None

    def new_worker(self, output: OutputCapture) -> Worker:
        """A fresh worker; in a batch, the spare forked earlier (it set itself up meanwhile).

        A spare has run nothing but the grader's own set-up (no student code, and no probed torch
        kernel: tests/test_probes.py checks it), so taking it is the same as forking one now.
        """
        worker, self._spare = self._spare, None
        if worker is None:
            worker = Worker(self.zygote, self.settings.policy(), output)
        else:
            worker.output = output
        if self._batch:
            with contextlib.suppress(SandboxError):
                self._spare = Worker(
                    self.zygote, self.settings.policy(), OutputCapture(self.settings.output_limit)
                )
        return worker

    def _retire(self, worker: Worker) -> None:
        """Keep the submission's last worker, still exiting, until ``_settle`` (at the start of the
        next ``grade_submission``, or ``close``)."""
        self._retired = worker

    def _settle(self) -> None:
        """Wait until the last submission's worker is gone (killed if it lingers): the kernel
        probes count every worker of the fork-server, so no other submission's worker may still
        run while the next one's calls are counted."""
        worker, self._retired = self._retired, None
        if worker is not None:
            with contextlib.suppress(Exception):
                worker.finish()

    def grade_submission(
        self,
        submission: Submission,
        *,
        hints_used: dict[str, int] | None = None,
        ahead: int | None = None,
    ) -> Report:
        """Grade one submission. ``ahead``: how many more this Grader will grade, if known (a batch)."""
        self._settle()  # the last submission's worker, before this submission's clock starts
        self._graded += 1
        # (never before the batch's first result, which the submission that says how many are
        # ahead of it gives: a batch shows progress first; the start-up probe says nothing)
        if ahead is not None:
            long = ahead >= HUGE_PAGES_AHEAD and self._told > 0
            self._told += 1
        else:
            long = self._graded > HUGE_PAGES_AFTER
        if self._batch and long and self.huge_pages_mib is None:
            # a batch long enough to repay the fork-server's move into huge pages; a fork-server
            # gone is reported by the grading below
            self.huge_pages_mib = 0
            with contextlib.suppress(SandboxError):
                self.huge_pages_mib = self.zygote.huge_pages()
        try:
            retire = self._retire if self._batch else None
            report, _ = grade(
                submission, self.plan, self.new_worker, self.settings, hints_used=hints_used, retire=retire
            )
            return report
        except GraderError:
            raise
        except Exception as e:
            last = traceback.extract_tb(e.__traceback__)[-1:]
            where = f" at {os.path.basename(last[0].filename)}:{last[0].lineno}" if last else ""
            return Report(
                submission=submission.name,
                exercises=(),
                grader_version=__version__,
                seed=self.settings.seed,
                crash=f"internal grader error: {type(e).__name__}: {e}{where}",
            )

    def grade_path(self, path: str | os.PathLike[str], *, hints_used: dict[str, int] | None = None) -> Report:
        return self.grade_submission(read_submission(path, self.modules), hints_used=hints_used)

    def close(self) -> None:
        self._settle()
        spare, self._spare = self._spare, None
        if spare is not None:
            with contextlib.suppress(Exception):
                spare.kill()
        self.zygote.close()

    def __enter__(self) -> Grader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def grade_path(
    path: str | os.PathLike[str], *, settings: Settings | None = None, only: Iterable[str] = ()
) -> Report:
    """Grade one submission (a folder, a .py or an .ipynb) and return its Report."""
    with Grader(settings, only=only) as g:
        return g.grade_path(path)
