"""Instructor batch grading: a whole class in seconds, resumable, with a gradebook and a class report.

``grade batch SUBMISSIONS --out DIR`` (grader.batch.cli) runs :func:`grader.batch.run.run_batch`:

* ``discover``: find submissions (nbgrader, Gradescope export, folder per student, flat files);
* ``pool`` / ``cluster``: grading processes on this machine, or a Dask cluster, each with one
  fork-server and one plan (cases + PyTorch's expected outputs) for all its submissions;
* ``gradebook``: the SQLite gradebook, one writer, one transaction per graded submission;
* ``export`` / ``classreport``: grades.csv, per-student feedback, the class report.

This package is imported only by those commands: ``grade`` itself never loads it.
"""
