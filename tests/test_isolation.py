"""Tests of grader/isolation.py, the layers around the worker that runs student code.

Each test starts one fresh ``python tests/isolation_probe.py`` subprocess (a miniature zygote:
torch imported with one thread, pyseccomp imported) which forks a worker, calls
``isolation.enter()`` there and runs one probe. pytest's own process never forks after torch.
Tests skip only where probe() says the machine lacks a capability; as root on Linux with user
namespaces and libseccomp, every test runs.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import stat
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from grader import isolation

DRIVER = Path(__file__).with_name("isolation_probe.py")
REPO = Path(__file__).resolve().parents[1]
CAPS = isolation.probe()
WHY = "; ".join(CAPS.missing) or "not available here"

linux = pytest.mark.skipif(not CAPS.linux, reason=f"Linux only: {WHY}")
namespaces = pytest.mark.skipif(not CAPS.namespaces, reason=f"no namespaces: {WHY}")
seccomp = pytest.mark.skipif(not CAPS.seccomp, reason=f"no seccomp: {WHY}")
root = pytest.mark.skipif(
    not (CAPS.root and CAPS.cap_sys_admin), reason="needs root with CAP_SYS_ADMIN (uid drop, full layers)"
)
userns = pytest.mark.skipif(not CAPS.user_namespaces, reason=f"no user namespaces: {WHY}")

FULL_LAYERS = ["rlimits", "pid-namespace", "net-namespace", "mount-allowlist", "uid-65534", "seccomp"]
NO_SANDBOX: dict[str, Any] = {"namespaces": False, "seccomp": False, "drop_uid": None}


def run_probe(probe: str, policy: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    """Run one probe in a fresh zygote subprocess; return the driver's JSON, with shortcuts."""
    spec = {"probe": probe, "policy": policy or {}, **spec}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HIDDEN_SEED": "31337"}
    proc = subprocess.run(
        [sys.executable, str(DRIVER), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0, f"driver failed:\n{proc.stdout}\n{proc.stderr}"
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    messages = out["messages"]
    out["layers"] = next((m["layers"] for m in messages if "layers" in m), None)
    out["result"] = next((m["result"] for m in messages if "result" in m), None)
    out["error"] = next((m["error"] for m in messages if "error" in m), None)
    return out


def result_of(out: dict[str, Any]) -> dict[str, Any]:
    """The probe's result, failing with the worker's traceback and log if it has none."""
    assert out["error"] is None, f"{out['error']}\nworker log:\n{out['worker_log']}"
    assert out["result"] is not None, f"no result: {out}"
    result: dict[str, Any] = out["result"]
    return result


def denied(attempt: dict[str, Any], *errnos: int) -> bool:
    """The attempt failed with one of ``errnos`` (any error if none given)."""
    if attempt["ok"]:
        return False
    error = attempt["error"]
    if error["type"] == "ValueError" and error["text"] == "not allowed to raise maximum limit":
        return errno.EPERM in errnos or not errnos  # resource.setrlimit's spelling of EPERM
    return not errnos or error["errno"] in errnos


# --------------------------------------------------------------------------------------------


@root
@namespaces
@seccomp
def test_full_policy_layers_and_a_working_python() -> None:
    out = run_probe("basics")
    assert out["layers"] == FULL_LAYERS
    r = result_of(out)
    assert (r["uid"], r["euid"], r["gid"], r["groups"]) == (65534, 65534, 65534, [])
    assert r["cap_eff"] == 0
    assert r["pid"] == 1, "pid 1 of its own pid namespace"
    assert r["proc_entries"] == [], "no /proc once set up (no /proc/self/mem)"
    assert r["cwd"] == "/tmp/work"
    assert r["hostname"] == "sandbox"
    assert r["matmul"] == 3920.0
    assert r["stdlib_module"]["file"].startswith(sys.base_prefix), r["stdlib_module"]
    assert r["c_extension"]["ok"], r["c_extension"]
    assert r["torch_two_threads"] == {"ok": True, "value": 300.0 * 300 * 300}, "threads survive seccomp"
    assert r["python_thread"]
    assert r["raise_signal"]["ok"] and r["raise_signal_handled"], "signals to itself still work"
    assert r["write_cwd_and_tmp"] == {"ok": True, "value": "hello"}
    assert r["dev_null"]["ok"] and r["urandom"] == {"ok": True, "value": 16}


@linux
def test_without_namespaces_or_seccomp_only_rlimits_apply() -> None:
    out = run_probe("basics", NO_SANDBOX)
    assert out["layers"] == ["rlimits"]
    r = result_of(out)
    assert r["pid"] != 1 and r["matmul"] == 3920.0


@linux
def test_non_linux_path_applies_only_rlimits() -> None:
    caps = {"linux": False, "user_namespaces": False, "seccomp": False, "pivot_root": False}
    out = run_probe("basics", {}, capabilities=caps)
    assert out["layers"] == ["rlimits"]
    assert result_of(out)["pid"] != 1


@pytest.mark.parametrize(
    ("policy", "errnos"),
    [
        pytest.param({}, (errno.EPERM,), marks=[root, namespaces, seccomp], id="full"),
        pytest.param({"seccomp": False}, (errno.ENETUNREACH,), marks=[namespaces], id="net-namespace"),
        pytest.param(
            {"namespaces": False, "drop_uid": None}, (errno.EPERM,), marks=[seccomp], id="seccomp-only"
        ),
    ],
)
def test_loopback_listener_is_unreachable(policy: dict[str, Any], errnos: tuple[int, ...]) -> None:
    out = run_probe("network", policy, listen=True)
    assert denied(result_of(out)["connect"], *errnos), result_of(out)


@pytest.mark.parametrize(
    ("policy", "errnos"),
    [
        pytest.param({}, (errno.EPERM,), marks=[seccomp], id="full"),
        pytest.param({"seccomp": False}, (errno.ENETUNREACH,), id="net-namespace"),
    ],
)
@root
@namespaces
def test_loopback_listener_is_unreachable_from_a_pid1_worker(
    policy: dict[str, Any], errnos: tuple[int, ...]
) -> None:
    """The fork-server's path: the worker forked by fork_into_pid_namespace, enter(pid1=True)."""
    out = run_probe("network", policy, listen=True, pid1=True)
    assert "net-namespace" in out["layers"]
    assert denied(result_of(out)["connect"], *errnos), result_of(out)


@root
@namespaces
@seccomp
def test_pid1_workers_share_an_empty_net_namespace_only_when_they_cannot_use_it() -> None:
    """Workers forked as pid 1 start in one network namespace the fork-server made once (only
    ``lo``, down: no route) and keep it only with the seccomp filter (no socket()) and a dropped
    uid; any other worker gets one of its own. The fork-server stays in its own."""
    out = run_probe("hold", {}, pid1=True)
    assert out["layers"] == FULL_LAYERS
    assert out["worker_interfaces"] == ["lo"] and out["worker_routes"] == []
    assert out["worker_net"] == out["next_worker_net"] != out["driver_net"]
    assert out["driver_net"] == os.stat("/proc/self/ns/net").st_ino
    for policy in ({"seccomp": False}, {"drop_uid": None}):
        out = run_probe("hold", policy, pid1=True)
        assert "net-namespace" in out["layers"], policy
        assert out["worker_interfaces"] == ["lo"] and out["worker_routes"] == [], policy
        assert out["worker_net"] not in (out["next_worker_net"], out["driver_net"]), policy
        assert out["next_worker_net"] != out["driver_net"]


@linux
def test_loopback_listener_is_reachable_without_sandbox() -> None:
    """Control: the network probe does reach the listener when nothing isolates the worker."""
    out = run_probe("network", NO_SANDBOX, listen=True)
    assert result_of(out)["connect"]["ok"], out


def _course_tree(tmp_path: Path) -> dict[str, Path]:
    """Files the worker must not see, and some it must see, under the test's own tmp dir."""
    course = tmp_path / "course"
    (course / "solutions").mkdir(parents=True)
    (course / "solutions" / "answers.py").write_text("SECRET = 31337\n")
    (course / "notes.txt").write_text("notes\n")
    lib = tmp_path / "lib_ok"
    lib.mkdir()
    (lib / "helper.py").write_text("HELPER = 1\n")
    public = tmp_path / "public"
    public.mkdir()
    (public / "data.txt").write_text("public data\n")
    (tmp_path / "private.txt").write_text("private\n")
    return {"course": course, "lib": lib, "public": public}


@pytest.mark.parametrize(
    "drop_uid",
    [pytest.param(65534, id="uid-65534"), pytest.param(None, id="stays-root")],
)
@root
@namespaces
def test_filesystem_is_an_allow_list(tmp_path: Path, drop_uid: int | None) -> None:
    """Only allow-listed paths are visible, all read-only; even root cannot write outside /tmp."""
    tree = _course_tree(tmp_path)
    policy = {"seccomp": False, "drop_uid": drop_uid, "readable": [str(tree["public"])]}
    secret_reads = [
        tree["course"] / "solutions" / "answers.py",  # a sys.path entry holding solutions/
        tree["course"] / "notes.txt",
        tmp_path / "private.txt",
        REPO / "grader" / "isolation.py",
        REPO / "pyproject.toml",
        Path("/root/.bashrc"),
        Path("/etc/shadow"),
    ]
    visible_reads = [tree["lib"] / "helper.py", tree["public"] / "data.txt"]
    writes = [
        Path("/escape.txt"),
        Path("/etc/escape.txt"),
        Path("/usr/escape.txt"),
        Path(sys.prefix) / "escape.txt",
        tree["lib"] / "escape.txt",
        tree["public"] / "escape.txt",
        Path("/proc/sys/kernel/hostname"),
    ]
    args = {
        "read": [str(p) for p in [*secret_reads, *visible_reads]],
        "exists": [str(REPO / "solutions"), str(REPO / "grader"), str(REPO / ".venv"), "/work/main/.git"],
        "write": [str(p) for p in writes],
    }
    out = run_probe("files", policy, args=args, sys_path=[str(tree["course"]), str(tree["lib"])])
    assert "mount-allowlist" in out["layers"]
    r = result_of(out)
    for path in secret_reads:
        assert denied(r["read"][str(path)], errno.ENOENT, errno.EACCES), (path, r["read"][str(path)])
    for path in visible_reads:
        assert r["read"][str(path)]["ok"], (path, r["read"][str(path)])
    assert r["exists"] == {
        str(REPO / "solutions"): False,
        str(REPO / "grader"): False,
        str(REPO / ".venv"): (REPO / ".venv").is_dir() and sys.prefix.startswith(str(REPO)),
        "/work/main/.git": False,
    }
    for path in writes:
        assert denied(r["write"][str(path)], errno.EROFS, errno.EACCES, errno.ENOENT), (path, r["write"])
    if drop_uid is None:  # root: only the read-only mounts stop it
        assert denied(r["write"]["/usr/escape.txt"], errno.EROFS)
        assert denied(r["write"]["/escape.txt"], errno.EROFS)
    assert "solutions" not in r["root_listing"]


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param({}, marks=[root, namespaces], id="full"),
        pytest.param({"namespaces": False, "drop_uid": None}, id="seccomp-only-as-root"),
    ],
)
@seccomp
def test_seccomp_denies_processes_exec_sessions_and_limits(policy: dict[str, Any]) -> None:
    out = run_probe("processes", policy)
    assert "seccomp" in out["layers"]
    r = result_of(out)
    for name in (
        "fork",
        "subprocess",
        "posix_spawn",
        "execv",
        "setsid",
        "kill_group",
        "clear_pdeathsig",
        "setrlimit",
        "socketpair",
    ):
        assert denied(r[name], errno.EPERM), (name, r[name])
    assert r["getrlimit"] == {"ok": True, "value": 60}


@pytest.mark.parametrize(
    "drop_uid",
    [pytest.param(65534, id="uid-65534"), pytest.param(None, id="stays-root")],
)
@namespaces
@root
def test_zygote_environment_is_unreachable(drop_uid: int | None) -> None:
    out = run_probe("environ", {"drop_uid": drop_uid})
    assert out["zygote_has_seed"], "the secret must really be in the zygote's environment"
    r = result_of(out)
    assert r["proc_environ_with_secret"] == []
    assert not r["os_environ"] and not r["posix_environ"]
    assert r["env_block_checked"] > 0 and not r["env_block"], "the inherited env block is wiped"
    assert r["c_getenv_path"] == "/usr/bin:/bin", "allowed variables survive the wipe"
    assert r["proc_environ_readable"] == [], "no /proc in the worker"


@linux
def test_six_gib_allocation_raises_memory_error() -> None:
    r = result_of(run_probe("memory"))
    assert r["bytearray"]["error"]["type"] == "MemoryError"
    assert not r["torch_empty"]["ok"]
    assert r["small_after"] == {"ok": True, "value": 10 * 1024 * 1024}


@linux
def test_file_size_limit_stops_a_100_mb_write() -> None:
    policy = {"tmp_size_bytes": 256 * 1024 * 1024}
    r = result_of(run_probe("fsize", policy))
    limit = isolation.Limits().file_size_bytes
    assert r["error"] is not None and r["error"]["errno"] == errno.EFBIG, r
    assert r["written"] == limit and r["size_on_disk"] == limit


@pytest.mark.parametrize(
    "namespaced", [pytest.param(True, marks=[namespaces], id="pid-1"), pytest.param(False, id="plain")]
)
@linux
def test_cpu_limit_kills_an_infinite_loop(namespaced: bool) -> None:
    out = run_probe("cpu", {"limits": {"cpu_seconds": 1}, "namespaces": namespaced})
    assert {"spinning": True} in out["messages"], out
    assert not out["killed_by_driver"]
    assert out["status"] == {"signaled": signal.SIGXCPU}, out


@pytest.mark.parametrize(
    "namespaced", [pytest.param(True, marks=[namespaces], id="pid-1"), pytest.param(False, id="plain")]
)
@linux
def test_segfault_is_reported_as_sigsegv(namespaced: bool) -> None:
    out = run_probe("segfault", {"namespaces": namespaced})
    assert {"about_to_crash": True} in out["messages"], out
    assert out["status"] == {"signaled": signal.SIGSEGV}, out


@namespaces
def test_setsid_daemon_dies_with_the_worker() -> None:
    """Seccomp off so the daemon can start; killing the worker pid must take it down too."""
    out = run_probe("daemon", {"seccomp": False}, args={"daemon_seconds": 60}, eof_timeout=20)
    assert any("daemon" in m for m in out["messages"]), out
    assert out["killed_by_driver"]
    assert out["eof"], "the daemon still holds the socket: it outlived the worker"
    assert out["status"] == {"signaled": signal.SIGKILL}


@linux
def test_setsid_daemon_survives_without_namespaces() -> None:
    """Control: without a pid namespace the daemon escapes, so the test above can fail."""
    out = run_probe("daemon", NO_SANDBOX, args={"daemon_seconds": 8}, eof_timeout=3)
    assert out["killed_by_driver"]
    assert not out["eof"]


@root
@userns
@seccomp
def test_user_namespace_path_as_if_unprivileged() -> None:
    """Take the non-root code path (user namespace, capabilities dropped) on this root machine."""
    out = run_probe("basics", {}, capabilities={"root": False})
    assert out["layers"] == [
        "rlimits",
        "user-namespace",
        "pid-namespace",
        "net-namespace",
        "mount-allowlist",
        "no-capabilities",
        "seccomp",
    ]
    r = result_of(out)
    assert r["cap_eff"] == 0 and r["pid"] == 1 and r["proc_entries"] == []
    assert r["torch_two_threads"]["ok"] and r["c_extension"]["ok"]


def _reachable_by_others(path: str) -> bool:
    """Every ancestor of ``path`` is searchable by a uid that owns none of them."""
    current = Path(path).resolve()
    return all(directory.stat().st_mode & stat.S_IXOTH for directory in [current, *current.parents])


@root
@userns
@seccomp
def test_really_unprivileged_worker_uses_a_user_namespace() -> None:
    """A worker running as uid 65534 (no root at all) still gets namespaces and seccomp."""
    out = run_probe("network", {}, become_uid=65534, listen=True)
    expected = ["rlimits", "user-namespace", "pid-namespace", "net-namespace"]
    if _reachable_by_others(sys.base_prefix) and _reachable_by_others(sys.prefix):
        expected.append("mount-allowlist")  # not here: the Python lives under /root (0700)
    assert out["layers"] == [*expected, "no-capabilities", "seccomp"]
    assert denied(result_of(out)["connect"], errno.EPERM)


# --------------------------------------------------------------------------------------------
# in-process (no fork, no mounts, nothing loaded)


@seccomp
def test_prepare_compiles_the_pid_1_filter_as_libseccomp_exports_it() -> None:
    """A worker that is pid 1 loads the BPF prepare() compiled: libseccomp's own export of the
    filter it would build (the probes above run such workers, seccomp-only ones build theirs)."""
    isolation.prepare()
    program, fprog = isolation._seccomp_programs[1]
    read_end, write_end = os.pipe()
    try:
        isolation._seccomp_filter(1).export_bpf(isolation._Fd(write_end))
        os.close(write_end)
        write_end = -1
        assert os.read(read_end, 1 << 20) == program.raw
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    length, address = struct.unpack("@HP", fprog.raw)
    assert length * 8 == len(program.raw) > 0 and address == ctypes.addressof(program)
    assert 2 not in isolation._seccomp_programs, "only pid 1's filter is the same in every worker"


# --------------------------------------------------------------------------------------------
# the allow-list plan, in-process (no fork, no mounts)


def test_plan_hides_repo_cwd_and_solutions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = _course_tree(tmp_path)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    entries = [str(REPO), str(REPO / "tests"), str(tree["course"]), str(tree["lib"]), str(cwd), ""]
    monkeypatch.setattr(sys, "path", [*entries, *sys.path])
    plan = isolation._plan_root(isolation.Policy(readable=(str(tree["public"]),)))
    binds = set(plan.binds)
    assert str(tree["lib"]) in binds and str(tree["public"]) in binds
    assert os.path.realpath(sys.base_prefix) in binds
    for hidden in (REPO, REPO / "tests", REPO / "solutions", tree["course"], cwd):
        assert not any(isolation._within(str(hidden), b) for b in binds), hidden
    assert plan.complete


def test_plan_masks_a_checkout_inside_a_bound_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bind of /srv that contains the grader's checkout gets an empty tmpfs over the checkout."""
    share = tmp_path / "share"
    checkout = share / "imgclass-kit"
    (checkout / "solutions").mkdir(parents=True)
    monkeypatch.setattr(isolation, "_grader_repo_root", lambda: str(checkout))
    plan = isolation._plan_root(isolation.Policy(readable=(str(share),)))
    assert str(share) in plan.binds
    assert plan.masks == [str(checkout)]
