"""The attack suite: every file in ``submissions/`` is one attack on the grader, graded here by one
Grader (one fork-server) with an instructor's hidden seed, and each must get the behaviour its
docstring names (the table ``EXPECT`` below says it again, as data).

For every attack the test checks: the statuses and a clear message; no points beyond what the
honest part of the file earns; no "untraced"/review surprises; no secret (the hidden seed, the
reference solutions, the course config, the gradebook, another student's file) anywhere in the
report; no process left behind (nothing is left for the fork-server, which adopts orphans, and no
process carries an attack's marker); no file changed outside the worker's own directory; and the
honest student graded right after it by the same grader gets exactly the report it got before
the attacks (nothing persisted: patches, planted files, stray processes).

Attacks whose behaviour depends on a layer this machine lacks are checked against the layers the
report says were in force; ``test_layers_in_force`` says which those were. The attacks that forge
the worker's replies (``forge_replies_via_frames``, ``lift_probe_and_forge``) and the one that
runs the forbidden op while it is imported are caught by the kernel probes (grader.probes): on a
machine without them they are skipped, and the README's Security section says what is left.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, ZOO

from grader import probes
from grader.model import Report, Status

HERE = Path(__file__).parent
ATTACKS = HERE / "submissions"
CONTROLS = HERE / "controls"
HONEST = ZOO / "all_correct.py"
HIDDEN_SEED = 987_651_234
SECRET_MARKS = (
    str(HIDDEN_SEED),
    "IMGCLASS-SECRET-SOLUTION",
    "IMGCLASS-SECRET-COURSE",
    "IMGCLASS-SECRET-GRADEBOOK",
    "IMGCLASS-SECRET-OTHER-STUDENT",
)
PROCESS_MARKS = ("imgclass-attack", "ick-thread")
LISTENER_PORTS = range(47100, 47140)

P, F, E, T, X, N = (
    Status.PASSED,
    Status.FAILED,
    Status.ERROR,
    Status.TIMEOUT,
    Status.FORBIDDEN,
    Status.NOT_ATTEMPTED,
)
SOFTMAX, LOG_SOFTMAX, NLL, CE = (
    "losses.softmax",
    "losses.log_softmax",
    "losses.nll_loss",
    "losses.cross_entropy",
)
BINARY, BREED, IS_CAT = "losses.binary_softmax", "regex_labels.breed_from_filename", "regex_labels.is_cat"


@dataclass(frozen=True)
class Expect:
    """What an attack must get."""

    status: dict[str, Status | Callable[[tuple[str, ...]], Status]]
    """Exercise id -> status (or a function of the layers in force); unnamed exercises: ``others``."""
    message: dict[str, str | Callable[[tuple[str, ...]], str]]
    """Exercise id -> text its message (or its first non-passing case's message) must contain (or a
    function of the layers in force that gives it)."""
    others: Status = Status.NOT_ATTEMPTED
    earns: dict[str, float] | Callable[[tuple[str, ...]], dict[str, float]] = field(default_factory=dict)
    """Points the honest part of the file earns, per exercise (all others: 0), or a function of the
    layers in force that gives them."""

    def earned(self, layers: tuple[str, ...]) -> dict[str, float]:
        return self.earns if isinstance(self.earns, dict) else self.earns(layers)

    review: bool = False
    """The static scan must flag the file for review."""
    held: bool = True
    """False for an attack that documents a limit (the test checks what still holds)."""
    needs: tuple[str, ...] = ()
    """Isolation layers the expected behaviour relies on."""


def _pid1_ignores_sigstop(layers: tuple[str, ...]) -> Status:
    return F if "pid-namespace" in layers else T


def _probes_or(with_probes: Any, without: Any) -> Callable[[tuple[str, ...]], Any]:
    """One expectation with the kernel probes in force, another without (their calls then run
    under the op trace, which notices what they cannot: a thread, a mode popped off the stack)."""
    return lambda layers: with_probes if probes.LAYER in layers else without


def _counted_or(why: str) -> Callable[[tuple[str, ...]], str]:
    """The message of a forbidden op the kernel probes counted, or ``why`` without probes."""
    return _probes_or("counted in torch's kernels", why)


#: Replies forged through the worker loop's frame (softmax computed with torch.softmax), after
#: which the worker exits: the kernel probes count the softmax kernel whatever the replies say.
FORGED_REPLIES = Expect(
    {SOFTMAX: X, BINARY: E},
    {SOFTMAX: "counted in torch's kernels as aten._softmax", BINARY: "ended the worker"},
    others=N,
    review=True,
    needs=(probes.LAYER,),
)


EXPECT: dict[str, Expect] = {
    # ---- the process boundary, time and resources
    "infinite_loop.py": Expect(
        {SOFTMAX: T, LOG_SOFTMAX: P}, {SOFTMAX: "took longer than"}, earns={LOG_SOFTMAX: 2}
    ),
    "sleep_past_limit.py": Expect({SOFTMAX: T}, {SOFTMAX: "took longer than"}),
    "sleep_under_limit_everywhere.py": Expect(
        {BREED: T, IS_CAT: T}, {CE: "time budget (20 s) ran out", BREED: "returned None"}, others=T
    ),
    "memory_bomb.py": Expect({SOFTMAX: E}, {SOFTMAX: "can't allocate memory"}, needs=("rlimits",)),
    "disk_bomb.py": Expect({SOFTMAX: E}, {SOFTMAX: "File too large"}, needs=("rlimits",)),
    "fork_bomb.py": Expect(
        {SOFTMAX: E}, {SOFTMAX: "Operation not permitted"}, review=True, needs=("seccomp",)
    ),
    "segfault_ctypes.py": Expect(
        {SOFTMAX: E, LOG_SOFTMAX: P}, {SOFTMAX: "SIGSEGV"}, earns={LOG_SOFTMAX: 2}, review=True
    ),
    "stack_overflow.py": Expect(
        {SOFTMAX: E, LOG_SOFTMAX: P}, {SOFTMAX: "SIGSEGV"}, earns={LOG_SOFTMAX: 2}, review=True
    ),
    "os_exit_at_import.py": Expect(
        {}, {SOFTMAX: "ended the worker: the process exited with code 0"}, others=E, review=True
    ),
    "os_exit_in_function.py": Expect(
        {SOFTMAX: E, LOG_SOFTMAX: P}, {SOFTMAX: "exited with code 0"}, earns={LOG_SOFTMAX: 2}, review=True
    ),
    "sys_exit_at_import.py": Expect({}, {SOFTMAX: "raised SystemExit"}, others=E),
    "sys_exit_in_function.py": Expect(
        {SOFTMAX: E, LOG_SOFTMAX: P}, {SOFTMAX: "SystemExit: score: 20/20"}, earns={LOG_SOFTMAX: 2}
    ),
    "keyboard_interrupt.py": Expect({SOFTMAX: E}, {SOFTMAX: "raised KeyboardInterrupt"}),
    "base_exception_subclass.py": Expect(
        {SOFTMAX: E, LOG_SOFTMAX: E},
        {SOFTMAX: "could not show this value", LOG_SOFTMAX: "ValueError: PASSED"},
    ),
    "ignore_signals_then_loop.py": Expect(
        {SOFTMAX: T, LOG_SOFTMAX: P}, {SOFTMAX: "took longer than"}, earns={LOG_SOFTMAX: 2}, review=True
    ),
    "stop_itself.py": Expect({SOFTMAX: _pid1_ignores_sigstop}, {SOFTMAX: ""}, review=True),
    "non_daemon_thread.py": Expect(
        {SOFTMAX: _probes_or(P, X)},
        {SOFTMAX: _probes_or("", "another thread was running")},
        earns=_probes_or({SOFTMAX: 2}, {}),
        review=True,
    ),
    "background_process.py": Expect(
        {SOFTMAX: E}, {SOFTMAX: "popen: PermissionError"}, review=True, needs=("seccomp",)
    ),
    "kill_grader_processes.py": Expect(
        {SOFTMAX: E}, {SOFTMAX: "Operation not permitted"}, review=True, needs=("seccomp",)
    ),
    "close_grader_channel.py": Expect(
        {SOFTMAX: E, LOG_SOFTMAX: P}, {SOFTMAX: "ended the worker"}, earns={LOG_SOFTMAX: 2}, review=True
    ),
    "garbage_into_channel.py": Expect(
        {SOFTMAX: E, LOG_SOFTMAX: P}, {SOFTMAX: "malformed"}, earns={LOG_SOFTMAX: 2}, review=True
    ),
    "stdout_flood.py": Expect({SOFTMAX: P}, {}, earns={SOFTMAX: 2}, review=True),
    "huge_outputs.py": Expect(
        {SOFTMAX: F, LOG_SOFTMAX: F}, {SOFTMAX: "400,000,000 bytes", LOG_SOFTMAX: "too large"}
    ),
    # ---- what crosses the codec
    "always_equal_object.py": Expect(
        {SOFTMAX: F}, {SOFTMAX: "returned a _imgclass_student_submission.Agreeable"}
    ),
    "subclassed_builtins.py": Expect(
        {BREED: F, IS_CAT: F, NLL: F}, {BREED: "returned a _imgclass_student_submission.YesStr"}
    ),
    "tensor_subclass_lies.py": Expect({SOFTMAX: F}, {SOFTMAX: "torch.Tensor subclass"}, review=True),
    "reduce_payload.py": Expect(
        {SOFTMAX: F, LOG_SOFTMAX: F, NLL: E},
        {SOFTMAX: "returned a _imgclass_student_submission.Payload"},
        review=True,
    ),
    "weird_return_values.py": Expect(
        {IS_CAT: F, BREED: F, SOFTMAX: F, BINARY: F, LOG_SOFTMAX: F, NLL: F},
        {IS_CAT: "int too long", SOFTMAX: "too large or too deep", LOG_SOFTMAX: "sparse", NLL: "meta device"},
    ),
    "nan_inf_outputs.py": Expect({SOFTMAX: F, LOG_SOFTMAX: F}, {SOFTMAX: "are nan", LOG_SOFTMAX: "are inf"}),
    "wrong_dtype_shape.py": Expect(
        {SOFTMAX: F, LOG_SOFTMAX: F, BINARY: F}, {SOFTMAX: "dtype float64", LOG_SOFTMAX: "shape"}
    ),
    "mutate_input.py": Expect({SOFTMAX: F, NLL: F}, {SOFTMAX: "changed its input in place"}),
    "hardcoded_lesson_output.py": Expect({SOFTMAX: F}, {SOFTMAX: "shape (6, 2)"}),
    # ---- the judge and the op trace
    "patch_checkers_at_import.py": Expect({SOFTMAX: F, CE: F}, {SOFTMAX: "values differ"}, review=True),
    "replace_grader_modules.py": Expect({SOFTMAX: F}, {SOFTMAX: "values differ"}, review=True),
    "forbidden_direct.py": Expect(
        {SOFTMAX: X, LOG_SOFTMAX: X, NLL: X, CE: X}, {SOFTMAX: "implement it yourself", CE: "F.nll_loss"}
    ),
    "forbidden_obfuscated.py": Expect(
        {SOFTMAX: X, LOG_SOFTMAX: X, NLL: X, CE: X},
        {SOFTMAX: "torch.softmax", NLL: "F.nll_loss"},
        review=True,
    ),
    "forbidden_in_thread.py": Expect(
        {SOFTMAX: X, LOG_SOFTMAX: X},
        {SOFTMAX: _counted_or("thread"), LOG_SOFTMAX: _counted_or("another thread was running")},
        review=True,
    ),
    "forbidden_trace_switched_off.py": Expect(
        {SOFTMAX: X, LOG_SOFTMAX: _probes_or(E, X), NLL: X},
        {
            SOFTMAX: _counted_or("switched off the op trace"),
            LOG_SOFTMAX: _probes_or("pop from empty mode stack", "switched off the op trace"),
            NLL: _counted_or("_ExcludeDispatchKeyGuard"),
        },
        review=True,
    ),
    "forbidden_in_backward.py": Expect({CE: X}, {CE: "F.log_softmax"}),
    "patch_worker_to_hide_ops.py": Expect({SOFTMAX: X}, {SOFTMAX: "torch.softmax"}, review=True),
    "patch_json_and_socket.py": Expect({SOFTMAX: X}, {SOFTMAX: "implement it yourself"}, review=True),
    "patch_torch_printing.py": Expect({SOFTMAX: X}, {SOFTMAX: "torch.softmax"}, review=True),
    "rebind_runner_internals.py": Expect({SOFTMAX: X}, {SOFTMAX: "torch.softmax"}, review=True),
    "stop_the_op_trace.py": Expect({SOFTMAX: X}, {SOFTMAX: _counted_or("op trace was stopped")}, review=True),
    "pop_trace_via_originals.py": Expect(
        {SOFTMAX: _probes_or(E, X)},
        {SOFTMAX: _probes_or("pop from empty mode stack", "switched off the op trace")},
        review=True,
    ),
    "inspect_stack_for_answers.py": Expect(
        {SOFTMAX: E}, {SOFTMAX: "gc.get_objects is not allowed in graded code"}, review=True
    ),
    "forge_replies_via_frames.py": FORGED_REPLIES,
    "lift_probe_and_forge.py": FORGED_REPLIES,
    "precompute_at_import.py": Expect(
        {SOFTMAX: X},
        {SOFTMAX: "counted in torch's kernels as aten._softmax"},
        review=True,
        needs=(probes.LAYER,),
    ),
    "precompute_in_permissive_exercise.py": Expect(
        {BINARY: P, LOG_SOFTMAX: E},
        {LOG_SOFTMAX: "not precomputed"},
        earns={BINARY: 1},
        review=True,
    ),
    "forbidden_other_kernels.py": Expect(
        {SOFTMAX: X, BINARY: X, LOG_SOFTMAX: X},
        {
            SOFTMAX: "F.scaled_dot_product_attention",
            BINARY: "torch.sparse.softmax",
            LOG_SOFTMAX: "torch.sparse.log_softmax",
        },
    ),
    # ---- secrets, files, network, persistence
    "steal_solutions_and_config.py": Expect({SOFTMAX: E}, {SOFTMAX: "found nothing"}, review=True),
    "steal_hidden_seed.py": Expect({SOFTMAX: E}, {SOFTMAX: "found nothing"}, review=True),
    "fake_scores_on_stdout.py": Expect({SOFTMAX: F}, {SOFTMAX: "values differ"}),
    "write_outside_workdir.py": Expect(
        {SOFTMAX: E}, {SOFTMAX: "blocked:"}, review=True, needs=("mount-allowlist", "uid-65534")
    ),
    "network_connect.py": Expect({SOFTMAX: E}, {SOFTMAX: "blocked:"}, review=True, needs=("net-namespace",)),
    "persist_pth_sitecustomize.py": Expect({SOFTMAX: E}, {SOFTMAX: "blocked:"}, needs=("mount-allowlist",)),
    "notebook_shell_magics.ipynb": Expect({SOFTMAX: P}, {}, earns={SOFTMAX: 2}),
}


def test_every_attack_has_an_expectation_and_a_docstring() -> None:
    files = sorted(p.name for p in ATTACKS.iterdir() if p.suffix in (".py", ".ipynb"))
    assert files == sorted(EXPECT), "attack files and the EXPECT table differ"
    assert len(files) >= 30
    for name in files:
        text = (ATTACKS / name).read_text()
        if name.endswith(".py"):
            assert text.startswith('"""Attack'), f"{name}: its docstring must say the attack"
            assert "Must get" in text or "What holds" in text, f"{name}: its docstring must say the behaviour"


# ----------------------------------------------------------------------------- the world around


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as e:
        return f"unreadable: {e.strerror}"


def _tree(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """relative path -> content hash (files) or "dir" (folders), for everything under root."""
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for path, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in skip)
        for d in dirs:
            out[os.path.relpath(os.path.join(path, d), root)] = "dir"
        for f in sorted(files):
            full = Path(path) / f
            out[os.path.relpath(full, root)] = _digest(full) if not full.is_symlink() else "link"
    return out


def _suspicious_names(root: Path, skip: tuple[str, ...]) -> set[str]:
    """Files an attack could plant to persist or to mark success, anywhere under root."""
    hits = set()
    for path, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in files + dirs:
            if (
                "imgclass-attack" in name
                or name in ("sitecustomize.py", "usercustomize.py")
                or name.endswith(".pth")
            ):
                hits.add(os.path.join(path, name))
    return hits


@dataclass
class World:
    """Everything outside the worker an attack might change, with a way to snapshot it."""

    course: Path
    site_packages: list[Path]

    def snapshot(self) -> dict[str, Any]:
        home = Path(os.path.expanduser("~"))
        return {
            "course": _tree(self.course),
            "repo solutions": _tree(ROOT / "solutions"),
            "repo exercises": _tree(ROOT / "exercises"),
            "repo planted": _suspicious_names(ROOT, (".git", ".venv", "node_modules", ".mypy_cache")),
            "site-packages": {str(p): sorted(os.listdir(p)) for p in self.site_packages if p.is_dir()},
            "pth files": {
                str(f): _digest(f) for p in self.site_packages if p.is_dir() for f in p.glob("*.pth")
            },
            "home": sorted(
                n for n in os.listdir(home) if "imgclass" in n or n.endswith((".pth", "customize.py"))
            ),
            "/tmp": sorted(
                n
                for n in os.listdir("/tmp")
                if "imgclass-attack" in n or n.endswith((".pth", "customize.py"))
            ),
        }


def _processes() -> Iterator[tuple[int, str]]:
    """(pid, cmdline + thread names) of every process on the machine."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        text = []
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                text.append(f.read().replace(b"\0", b" ").decode(errors="replace"))
            for tid in os.listdir(f"/proc/{entry}/task"):
                with open(f"/proc/{entry}/task/{tid}/comm", "rb") as f:
                    text.append(f.read().decode(errors="replace").strip())
        except OSError:
            continue
        yield int(entry), " ".join(text)


def _children(pid: int) -> set[int]:
    kids: set[int] = set()
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids.update(int(p) for p in f.read().split())
    except OSError:
        pass
    return kids


def _marked_processes() -> list[tuple[int, str]]:
    return [(pid, text) for pid, text in _processes() if any(m in text for m in PROCESS_MARKS)]


def _leftovers(grader: Any) -> tuple[set[int], list[tuple[int, str]]]:
    """Processes the fork-server still has (it adopts orphans, so that is every leftover of a
    worker) and processes carrying an attack's marker; waits a little for dying ones."""
    deadline = time.monotonic() + 10
    while True:
        grader.zygote.request({"op": "ping"})  # the fork-server reaps strays after every request
        kids, marked = _children(grader.zygote.pid), _marked_processes()
        if (not kids and not marked) or time.monotonic() > deadline:
            return kids, marked
        time.sleep(0.1)


class Listener:
    """TCP listeners on the ports network_connect.py tries; records every connection."""

    def __init__(self) -> None:
        self.accepted: list[int] = []
        self._socks = []
        for port in LISTENER_PORTS:
            s = socket.socket()
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", port))
                s.listen(8)
                s.settimeout(0.2)
                self._socks.append((port, s))
            except OSError:
                s.close()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for port, s in self._socks:
                try:
                    conn, _ = s.accept()
                    self.accepted.append(port)
                    conn.close()
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for _, s in self._socks:
            s.close()


# ----------------------------------------------------------------------------- fixtures


def _make_course(root: Path) -> Path:
    """A fake course: config with the hidden seed, reference solutions, a gradebook, report output,
    and another student's submission, each with a marker no report may ever contain."""
    course = root / "course"
    (course / "solutions").mkdir(parents=True)
    for f in (ROOT / "solutions").glob("*.py"):
        (course / "solutions" / f.name).write_text(f"# IMGCLASS-SECRET-SOLUTION\n{f.read_text()}")
    (course / "course.toml").write_text(
        f"# IMGCLASS-SECRET-COURSE\n[grading]\nhidden_seed = {HIDDEN_SEED}\ntimeout = 5\nimport_timeout = 20\n"
        "submission_timeout = 20\n"
    )
    (course / "gradebook.sqlite").write_bytes(b"SQLite format 3\0 IMGCLASS-SECRET-GRADEBOOK")
    (course / "out").mkdir()
    (course / "out" / "report.json").write_text('{"score": 1, "note": "IMGCLASS-SECRET-GRADEBOOK"}')
    other = course / "submissions" / "zoe" / "exercises"
    other.mkdir(parents=True)
    (other / "losses.py").write_text(
        f"# IMGCLASS-SECRET-OTHER-STUDENT\n{(ROOT / 'solutions' / 'losses.py').read_text()}"
    )
    return course


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    course = _make_course(tmp_path_factory.mktemp("attacks"))
    import site

    packages = [Path(p) for p in {*site.getsitepackages(), site.getusersitepackages()}]
    return World(course, packages)


@pytest.fixture(scope="module")
def grader(world: World) -> Iterator[Any]:
    """One Grader for every attack: the course's hidden seed, and the seed exported in the
    environment too (so the attacks that read environments have something to look for)."""
    from grader.api import Grader
    from grader.settings import load_course

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMGCLASS_HIDDEN_SEED", str(HIDDEN_SEED))
        mp.chdir(world.course)  # the grader's working directory: the course folder
        settings = load_course(world.course / "course.toml")
        assert settings.hidden_seed == HIDDEN_SEED and settings.timeout == 5
        with Grader(settings) as g:
            assert g.zygote.mode == "spawn", "a parent holding a secret must not fork its fork-server"
            yield g


@pytest.fixture(scope="module")
def baseline(grader: Any) -> Report:
    report: Report = grader.grade_path(HONEST)
    assert report.score == report.max_score > 0, [
        (e.id, e.message) for e in report.exercises if e.score < e.max_score
    ]
    assert report.crash is None and not report.warnings
    return report


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def _comparable(report: Report) -> list[tuple[Any, ...]]:
    """What must not change between two gradings of the same honest file."""
    return [
        (e.id, e.status, e.score, e.message, tuple((c.id, c.status, c.message) for c in e.cases))
        for e in report.exercises
    ]


def _message(e: Any) -> str:
    return " | ".join([e.message, *(c.message for c in e.cases if c.status is not Status.PASSED)])


# ----------------------------------------------------------------------------- the tests


def test_layers_in_force(baseline: Report) -> None:
    """Which isolation layers were active (printed for the record; CI machines run as root)."""
    print("isolation layers:", ", ".join(baseline.isolation))
    assert baseline.isolation[:2] == ("process", "rlimits")


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_attack(name: str, grader: Any, baseline: Report, world: World, listener: Listener) -> None:
    expect = EXPECT[name]
    before = world.snapshot()
    assert not _marked_processes(), "a process with an attack's marker exists before the attack"

    report = grader.grade_path(ATTACKS / name)
    layers = report.isolation
    missing = [layer for layer in expect.needs if layer not in layers]
    if missing:
        pytest.skip(f"this machine lacks {', '.join(missing)} (layers in force: {', '.join(layers)})")

    # the grader survived and said what happened
    assert report.crash is None, report.crash
    for e in report.exercises:
        want = expect.status.get(e.id, expect.others)
        want = want if isinstance(want, Status) else want(layers)
        assert e.status is want, f"{e.id}: {e.status.value}, expected {want.value}: {e.message}"
        if e.id in expect.message:
            text = expect.message[e.id]
            text = text if isinstance(text, str) else text(layers)
            assert text in _message(e), f"{e.id}: {_message(e)!r}"
        if expect.held:
            assert e.score <= expect.earned(layers).get(e.id, 0.0), f"{e.id} earned {e.score}"
        if e.id in expect.earned(layers):
            assert e.score == expect.earned(layers)[e.id] == e.max_score, (
                f"{e.id}: the honest part lost points"
            )
        if e.status is Status.FORBIDDEN:
            assert e.score == 0
    reviews = [w for w in report.warnings if w.startswith("review:")]
    assert bool(reviews) == expect.review, reviews

    # nothing secret reached the report, in any field
    text = json.dumps(report.to_dict())
    for mark in SECRET_MARKS:
        assert mark not in text, f"the report contains {mark!r}"

    # nothing survived, nothing changed, nothing connected
    kids, marked = _leftovers(grader)
    assert not kids, f"the fork-server still has processes {sorted(kids)} after the grade"
    assert not marked, f"processes left behind: {marked}"
    after = world.snapshot()
    for key in before:
        assert after[key] == before[key], f"{key} changed: {before[key]} -> {after[key]}"
    assert not listener.accepted, f"a connection reached the test's listener on {listener.accepted}"

    # the next student is graded exactly as before the attack
    honest = grader.grade_path(HONEST)
    assert _comparable(honest) == _comparable(baseline)


def test_honest_debugging_is_never_flagged(grader: Any) -> None:
    """The tamper checks and the review scan do not fire on ordinary code that prints and warns."""
    report = grader.grade_path(CONTROLS / "honest_debugging.py")
    graded = {e.id: e for e in report.exercises if e.status is not Status.NOT_ATTEMPTED}
    assert set(graded) == {SOFTMAX, LOG_SOFTMAX, NLL}
    for e in graded.values():
        assert e.status is Status.PASSED and e.score == e.max_score, (e.id, e.message)
    assert not [w for w in report.warnings if w.startswith("review:")]
    assert "softmax input" in report.output.text


def test_flood_is_capped_and_counted(grader: Any) -> None:
    report = grader.grade_path(ATTACKS / "stdout_flood.py")
    assert report.output.truncated
    assert len(report.output.text.encode()) <= 64 * 1024
    assert report.output.total_bytes >= 110_000_000


def test_fake_scores_are_only_output(grader: Any) -> None:
    report = grader.grade_path(ATTACKS / "fake_scores_on_stdout.py")
    assert '"score": 20' in report.output.text and "PASSED  2 / 2" in report.output.text
    assert report.score == 0


def test_the_reduce_payload_never_ran() -> None:
    assert not os.path.exists("/tmp/imgclass-attack-reduce-payload")


def test_notebook_magics_were_skipped_not_run(grader: Any, tmp_path: Path) -> None:
    report = grader.grade_path(ATTACKS / "notebook_shell_magics.ipynb")
    notes = "\n".join(report.warnings)
    assert "!rm -rf ~" in notes and "%%bash" in notes and "%system" in notes
    assert "skipped" in notes and "exploration code" in notes
    assert report.exercise(LOG_SOFTMAX).status is Status.NOT_ATTEMPTED  # a raw cell is not code
    assert not os.path.exists("/tmp/imgclass-attack-notebook")


def test_a_symlink_to_the_solutions_is_refused(tmp_path: Path) -> None:
    """A submission folder whose module is a symlink to the reference solutions is not read."""
    from grader.errors import SubmissionError
    from grader.submission import read_submission

    folder = tmp_path / "exercises"
    folder.mkdir()
    (folder / "losses.py").symlink_to(ROOT / "solutions" / "losses.py")
    with pytest.raises(SubmissionError, match="points outside the submission"):
        read_submission(tmp_path, ["losses"])


# ----------------------------------------------------------------------------- without namespaces


FALLBACK = {
    # attack -> (exercise, status, message): on a laptop without namespaces or seccomp
    "infinite_loop.py": (SOFTMAX, T, "took longer than"),
    "sleep_past_limit.py": (SOFTMAX, T, "took longer than"),
    "os_exit_in_function.py": (SOFTMAX, E, "exited with code 0"),
    "segfault_ctypes.py": (SOFTMAX, E, "SIGSEGV"),
    "stop_itself.py": (SOFTMAX, T, "took longer than"),
    "disk_bomb.py": (SOFTMAX, E, "File too large"),
    "memory_bomb.py": (SOFTMAX, E, "can't allocate memory"),
    "non_daemon_thread.py": (SOFTMAX, X, "another thread was running"),
    "forbidden_trace_switched_off.py": (SOFTMAX, X, "switched off the op trace"),
}


@pytest.fixture(scope="module")
def laptop() -> Iterator[Any]:
    """A Grader with only the process boundary, limits and timeouts (isolation = "minimal")."""
    from grader.api import Grader
    from grader.settings import Settings

    with Grader(Settings(timeout=5, import_timeout=20, isolation="minimal"), zygote_mode="spawn") as g:
        yield g


@pytest.mark.parametrize("name", sorted(FALLBACK))
def test_fallback_without_namespaces(name: str, laptop: Any) -> None:
    exercise, status, message = FALLBACK[name]
    report = laptop.grade_path(ATTACKS / name)
    assert report.isolation == ("process", "rlimits")
    result = report.exercise(exercise)
    assert result.status is status, result.message
    assert message in _message(result)
    assert result.score == 0
    kids, marked = _leftovers(laptop)
    assert not kids and not marked


def test_fallback_kills_a_detached_daemon(laptop: Any, tmp_path: Path) -> None:
    """Without a pid namespace, a process that left the worker's session (setsid, double fork)
    is adopted by the fork-server (a subreaper) and killed when the grade ends."""
    marker = f"imgclass-attack-daemon-{os.getpid()}"
    daemon = tmp_path / "daemon.py"
    daemon.write_text(
        '"""A daemon: double fork, setsid, sleep with a marker in its command line."""\n'
        "import os, torch\n\n\n"
        "def softmax(acts, dim=-1):\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        if os.fork() == 0:\n"
        f"            os.execv('/bin/sleep', ['sleep', '300', '{marker}'])\n"
        "        os._exit(0)\n"
        "    os.wait()\n"
        "    e = (acts - acts.amax(dim=dim, keepdim=True)).exp()\n"
        "    return e / e.sum(dim=dim, keepdim=True)\n"
    )
    report = laptop.grade_path(daemon)
    assert report.exercise(SOFTMAX).status is Status.PASSED
    kids, marked = _leftovers(laptop)
    assert not kids
    assert not [p for p in marked if marker in p[1]], marked
    for pid, text in _processes():
        if marker in text:  # pragma: no cover - only on failure: do not leave it running
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"the daemon survived: {pid} {text}")


def test_minimal_mode_scrubs_the_environment_block(laptop: Any, tmp_path: Path, monkeypatch: Any) -> None:
    """Even without namespaces the worker cannot read the fork-server's environment block."""
    probe = tmp_path / "environ.py"
    probe.write_text(
        "def softmax(acts, dim=-1):\n"
        "    with open('/proc/self/environ', 'rb') as f:\n"
        "        raise RuntimeError(repr(f.read()))\n"
    )
    report = laptop.grade_path(probe)
    message = report.exercise(SOFTMAX).cases[0].message
    assert "RuntimeError" in message and "PATH" not in message and "HOME" not in message


# ----------------------------------------------------------------------------- one batch

HONEST_STUDENTS = {
    "honest-ana.py": ZOO / "all_correct.py",
    "honest-bob.py": ZOO / "softmax_no_max_subtraction.py",
    "honest-carl.ipynb": ZOO / "notebook_all.ipynb",
    "honest-dora.py": CONTROLS / "honest_debugging.py",
}


def _statuses_as_expected(name: str, report: Report) -> list[str]:
    expect, problems = EXPECT[name], []
    if any(layer not in report.isolation for layer in expect.needs):
        return problems
    for e in report.exercises:
        want = expect.status.get(e.id, expect.others)
        want = want if isinstance(want, Status) else want(report.isolation)
        if e.status is not want:
            problems.append(f"{name} {e.id}: {e.status.value}, expected {want.value}")
        if expect.held and e.score > expect.earned(report.isolation).get(e.id, 0.0):
            problems.append(f"{name} {e.id}: earned {e.score}")
    return problems


@pytest.mark.parametrize("scheduler", [None, "local"], ids=["local-pool", "dask"])
def test_one_batch_of_every_attack_and_honest_students(
    grader: Any, world: World, tmp_path: Path, scheduler: str | None
) -> None:
    """Every attack and four honest students in ONE `grade batch` run (two grading processes, or
    a Dask LocalCluster of two workers): the batch completes, every honest student's result equals
    what they get graded alone, every attack gets its expected statuses, and nothing is left
    running."""
    if scheduler is not None:
        pytest.importorskip("distributed")
    from grader.batch.discover import student_id
    from grader.batch.gradebook import FILENAME, Gradebook
    from grader.batch.run import BatchOptions, run_batch

    source = tmp_path / "class"
    source.mkdir()
    for name in EXPECT:
        (source / name).write_bytes((ATTACKS / name).read_bytes())
    for name, path in HONEST_STUDENTS.items():
        (source / name).write_bytes(path.read_bytes())
    before = world.snapshot()
    policy = os.sched_getscheduler(0) if hasattr(os, "sched_getscheduler") else None
    out = tmp_path / "out"
    summary = run_batch(
        BatchOptions(
            source=source,
            out=out,
            config=world.course / "course.toml",
            jobs=2,
            progress="none",
            scheduler=scheduler,
        ),
        stream=open(os.devnull, "w"),  # noqa: SIM115 - closed with the process
    )
    assert summary.graded == len(EXPECT) + len(HONEST_STUDENTS), summary
    assert not summary.unusable and not summary.grader_errors, summary
    print("batch isolation layers:", ", ".join(summary.layers))
    if policy is not None:  # the batch ran as a batch job and gave the caller its policy back
        assert os.sched_getscheduler(0) == policy

    with Gradebook(out / FILENAME, create=False) as book:
        reports = {student: Report.from_dict(json.loads(text)) for student, text in book.current_reports()}
    assert len(reports) == len(EXPECT) + len(HONEST_STUDENTS)
    for name in HONEST_STUDENTS:
        alone = grader.grade_path(source / name)
        in_batch = reports[student_id(Path(name).stem)]
        assert _comparable(in_batch) == _comparable(alone), name
        assert in_batch.score == alone.score
    problems = [
        p for name in EXPECT for p in _statuses_as_expected(name, reports[student_id(Path(name).stem)])
    ]
    assert not problems, problems
    for report in reports.values():
        text = json.dumps(report.to_dict())
        assert not [mark for mark in SECRET_MARKS if mark in text]
    deadline = time.monotonic() + 10
    while _marked_processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _marked_processes()
    after = world.snapshot()
    assert {k: v for k, v in after.items() if k != "course"} == {
        k: v for k, v in before.items() if k != "course"
    }
    assert after["course"] == before["course"]
