"""Isolation layers for the worker process that runs untrusted student code.

The grader's fork-server ("zygote") forks one worker per submission; the worker calls
:func:`enter` once, and afterwards loads and runs the student's code in the same process.
:func:`enter` applies every layer this machine supports, in this order, and returns the names
of the layers now in force:

1. ``"rlimits"``: CPU time, address space (current VmSize + headroom), file size, open files,
   no core files, and processes (only counted for a non-root uid).
2. Namespaces. As root (with ``CAP_SYS_ADMIN``) the worker unshares its mount, pid, network,
   IPC and UTS namespaces; without root it does the same inside a new user namespace
   (``"user-namespace"``). It then forks: the worker itself becomes a supervisor that closes
   every fd, waits, and exits exactly as its child does (same exit code, or the same signal),
   and never returns from :func:`enter`. The child is pid 1 of the new pid namespace
   (``"pid-namespace"``), dies with the supervisor (``PR_SET_PDEATHSIG``), sees no network
   interface (``"net-namespace"``), and gets a new root (``"mount-allowlist"``): a read-only
   view of only ``/usr`` and friends, a few ``/etc`` files, the Python prefixes and
   ``sys.path`` (never the grader's repository, the current directory or a folder holding a
   ``solutions/`` directory), ``Policy.readable``, a fresh ``/proc`` (detached again once the
   root is built: no ``/proc/self/mem``, see :func:`_hide_proc`), four ``/dev`` nodes and a
   small writable ``/tmp`` whose ``/tmp/work`` becomes the working directory. As root, the
   fork-server saves that second fork: it forks the worker straight into a new pid namespace
   (:func:`fork_into_pid_namespace`), :func:`enter` (``pid1=True``) unshares the other
   namespaces in place, and the fork-server does the supervisor's waiting and reporting. Such a
   worker starts in an empty network namespace the fork-server made once, and keeps it when it
   can neither use nor change it (seccomp filter and uid change to come) instead of making one.
3. Privileges: as root, ``setgroups([])``/``setgid``/``setuid`` to ``Policy.drop_uid``
   (``"uid-65534"``); inside a user namespace, every capability is dropped
   (``"no-capabilities"``).
4. ``"seccomp"``: a deny-list filter (fork/exec/sockets/signals to others/ptrace/mount/...).

Whatever the machine cannot do is skipped silently and left out of the returned names, so a
laptop without root or namespaces still gets rlimits; the caller decides whether what it got is
enough. Before any layer, the worker's copy of the zygote's original environment block is wiped
(see :func:`enter`). Linux-only parts are imported lazily, so importing this module works on
macOS and Windows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Any, NoReturn

__all__ = [
    "Capabilities",
    "IsolationError",
    "Limits",
    "Policy",
    "enter",
    "fork_into_pid_namespace",
    "prepare",
    "probe",
    "reported_signal",
]

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True)
class Limits:
    """Resource limits (``setrlimit``) for one worker; soft and hard limits are set alike."""

    cpu_seconds: int = 60
    """CPU seconds (user + system, all threads). The soft limit sends SIGXCPU; the hard limit,
    one second later, SIGKILL. Inside a pid namespace the worker is pid 1, which ignores
    SIGXCPU, so it dies at the hard limit; the supervisor (or the fork-server, for a worker it
    forked as pid 1) then reports SIGXCPU all the same."""

    memory_bytes: int = 2 * GiB
    """Address-space headroom: ``RLIMIT_AS`` is set to the worker's current VmSize plus this,
    because the address space inherited from the zygote (torch: ~0.8 GiB) counts too."""

    file_size_bytes: int = 16 * MiB
    """Largest file the worker may write (``RLIMIT_FSIZE``); Python ignores SIGXFSZ, so a larger
    write fails with ``OSError(EFBIG)``. It also caps stdout/stderr when they go to a file."""

    open_files: int = 256
    """Highest file descriptor number + 1 the worker may open (``RLIMIT_NOFILE``)."""

    processes: int = 64
    """``RLIMIT_NPROC``: processes and threads of the worker's uid, counted machine-wide. Root
    ignores it, so it only applies when the worker runs (or is dropped to) a non-root uid;
    give each concurrent worker slot its own uid if they must not share the budget."""


@dataclass(frozen=True)
class Policy:
    """What :func:`enter` should apply; layers the machine cannot provide are skipped."""

    limits: Limits = field(default_factory=Limits)
    """Resource limits, always applied (where the platform has them)."""

    namespaces: bool = True
    """Unshare mount/pid/net/IPC/UTS namespaces and pivot into an allow-listed root."""

    drop_uid: int | None = 65534
    """When running as root, switch to this uid (and the same gid, no supplementary groups)
    after the namespaces are built; ``None`` keeps root. Ignored when not root."""

    seccomp: bool = True
    """Install the seccomp deny-list (no fork, exec, sockets, signals to others, mount, ...)."""

    readable: tuple[str, ...] = ()
    """Extra absolute paths to bind read-only into the worker's root (e.g. the data it needs).
    Paths that do not exist are skipped."""

    tmp_size_bytes: int = 64 * MiB
    """Size of the worker's private writable ``/tmp`` (a tmpfs, counted as shared memory)."""


@dataclass(frozen=True)
class Capabilities:
    """What this machine and process can do, as found by :func:`probe` (no forks, no writes)."""

    linux: bool
    """Running on Linux."""
    root: bool
    """Effective uid 0."""
    cap_sys_admin: bool
    """``CAP_SYS_ADMIN`` is in the effective set (root in a container may lack it)."""
    user_namespaces: bool
    """An unprivileged process may create user namespaces (sysctls allow it)."""
    seccomp: bool
    """The kernel supports seccomp filters and ``pyseccomp`` (libseccomp) imports."""
    pivot_root: bool
    """The ``pivot_root`` syscall number is known for this CPU architecture."""
    missing: tuple[str, ...] = ()
    """One sentence per unavailable layer, saying why (for logs and test skip reasons)."""

    @property
    def namespaces(self) -> bool:
        """Namespaces and the allow-listed root can be set up (as root or in a user namespace)."""
        return self.linux and self.pivot_root and ((self.root and self.cap_sys_admin) or self.user_namespaces)


class IsolationError(RuntimeError):
    """A layer failed half-way, leaving the process in a state where student code must not run."""


# Linux constants (include/uapi/linux/sched.h, mount.h, prctl.h).
_CLONE_THREAD = 0x00010000
_CLONE_NEWNS = 0x00020000
_CLONE_NEWUTS = 0x04000000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
_MS_RDONLY = 1
_MS_NOSUID = 2
_MS_NODEV = 4
_MS_NOEXEC = 8
_MS_REMOUNT = 32
_MS_NOATIME = 1024
_MS_NODIRATIME = 2048
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
_MS_RELATIME = 1 << 21
_MNT_DETACH = 2
_PR_SET_PDEATHSIG = 1
_PR_GET_DUMPABLE = 3
_PR_SET_DUMPABLE = 4
_PR_SET_SECCOMP = 22
_PR_SET_NO_NEW_PRIVS = 38
_SECCOMP_MODE_FILTER = 2
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41}
_CAP_SYS_ADMIN = 21

#: Files from /etc the interpreter and its libraries read (dynamic loader, users, time zone).
_ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/hosts",
)
_SYSTEM_DIRS = ("/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin")
_DEV_NODES = ("null", "zero", "full", "random", "urandom")
_WORKDIR = "/tmp/work"
#: Where the new root is assembled, in the private mount namespace (first usable one wins).
_STAGING_CANDIDATES = ("/mnt", "/media", "/srv", "/opt", "/var/tmp", "/tmp", "/home")

#: Syscalls that fail with EPERM under the seccomp filter. clone (without CLONE_THREAD), clone3,
#: kill/tgkill/rt_*sigqueueinfo (to another process), prctl(PR_SET_PDEATHSIG) and prlimit64
#: (setting) get argument-specific rules in _install_seccomp.
_DENIED_SYSCALLS = (
    # new processes and programs
    "fork", "vfork", "execve", "execveat",
    # networking (inherited sockets keep working: send/recv/read/write are allowed)
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4",
    # other processes
    "tkill", "pidfd_open", "pidfd_getfd", "pidfd_send_signal", "ptrace", "process_vm_readv",
    "process_vm_writev", "process_madvise", "process_mrelease", "kcmp", "move_pages",
    "migrate_pages",
    # sessions, namespaces, mounts
    "setsid", "setpgid", "unshare", "setns", "mount", "umount2", "pivot_root", "chroot",
    "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "open_by_handle_at", "name_to_handle_at", "mknod", "mknodat",
    # kernel attack surface
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "keyctl", "add_key", "request_key", "fanotify_init", "personality",
    "lookup_dcookie", "syslog", "vhangup", "iopl", "ioperm", "quotactl",
    # the machine itself
    "reboot", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "acct", "swapon", "swapoff", "sethostname", "setdomainname", "settimeofday",
    "clock_settime", "clock_adjtime", "adjtimex",
    # limits can only be lowered by a non-root uid, but root could raise them
    "setrlimit",
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# probe


_capabilities: Capabilities | None = None


def probe() -> Capabilities:
    """Find out, once per process, which layers this machine supports.

    It only reads ``/proc`` and imports ``pyseccomp`` (which runs ``ldconfig -p`` once to find
    libseccomp); call it, or :func:`prepare`, in the zygote so every worker inherits the answer.
    """
    global _capabilities
    if _capabilities is None:
        _capabilities = _probe()
    return _capabilities


def _probe() -> Capabilities:
    if not sys.platform.startswith("linux"):
        return Capabilities(
            linux=False,
            root=False,
            cap_sys_admin=False,
            user_namespaces=False,
            seccomp=False,
            pivot_root=False,
            missing=(f"namespaces and seccomp need Linux; this is {sys.platform}",),
        )
    missing: list[str] = []
    root = os.geteuid() == 0
    status = _read_text("/proc/self/status")
    cap_eff = 0
    seccomp_kernel = False
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            cap_eff = int(line.split()[1], 16)
        elif line.startswith("Seccomp:"):
            seccomp_kernel = True
    cap_sys_admin = bool(cap_eff >> _CAP_SYS_ADMIN & 1)

    userns = _read_int("/proc/sys/user/max_user_namespaces", 0) > 0
    if not userns:
        missing.append("user namespaces are disabled (user.max_user_namespaces = 0)")
    elif _read_int("/proc/sys/kernel/unprivileged_userns_clone", 1) == 0:
        userns = False
        missing.append("unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)")
    elif _read_int("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", 0) == 1:
        userns = False
        missing.append("AppArmor restricts unprivileged user namespaces")

    machine = os.uname().machine
    pivot = machine in _SYS_PIVOT_ROOT
    if not pivot:
        missing.append(f"pivot_root's syscall number is not known for {machine}")
    if not (root and cap_sys_admin) and not userns:
        missing.append("namespaces need root with CAP_SYS_ADMIN or unprivileged user namespaces")

    seccomp = seccomp_kernel
    if not seccomp_kernel:
        missing.append("the kernel has no seccomp support")
    else:
        try:
            import pyseccomp  # noqa: F401  (loads libseccomp while ldconfig is still reachable)
        except (ImportError, RuntimeError, OSError) as exc:
            seccomp = False
            missing.append(f"pyseccomp/libseccomp cannot be loaded: {exc}")
    return Capabilities(
        linux=True,
        root=root,
        cap_sys_admin=cap_sys_admin,
        user_namespaces=userns,
        seccomp=seccomp,
        pivot_root=pivot,
        missing=tuple(missing),
    )


def prepare() -> Capabilities:
    """Warm everything :func:`enter` needs; call it once in the zygote, before forking workers.

    Probes the machine, loads libc and libseccomp, and imports the modules used after the
    filesystem has been replaced, so a worker's :func:`enter` does no imports or lookups. It
    also compiles the seccomp filter of a worker that is pid 1 (of its own pid namespace), so
    that such a worker only loads it.
    """
    caps = probe()
    if caps.linux:
        _libc()
        import ctypes.util  # noqa: F401
        import resource  # noqa: F401
    if caps.seccomp:
        _compile_seccomp(1)
    return caps


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _read_int(path: str, default: int) -> int:
    try:
        return int(_read_text(path).strip())
    except ValueError:
        return default


# --------------------------------------------------------------------------------------------
# enter


def enter(
    policy: Policy, *, capabilities: Capabilities | None = None, pid1: bool = False, alive_fd: int = -1
) -> tuple[str, ...]:
    """Apply every layer of ``policy`` this machine supports; return the names of those in force.

    Call it in the forked worker, after it has called ``setsid()``, redirected stdout/stderr,
    closed the fds it does not need, cleaned ``os.environ`` and changed to a fresh directory.
    With namespaces, the calling process becomes a supervisor that never returns: :func:`enter`
    returns in its child, which keeps every inherited fd, ``os.environ`` and the loaded modules.
    Its cwd becomes ``/tmp/work`` (empty): read what you need from the old cwd before calling.

    ``capabilities`` replaces :func:`probe`'s answer (tests use it to take the unprivileged
    path as root). Raises :class:`IsolationError` only when a layer failed half-way; a layer
    that cannot start is skipped instead.

    ``pid1`` says the caller is already pid 1 of a pid namespace made for it (its parent forked
    it with :func:`fork_into_pid_namespace`): then the other namespaces are unshared in place,
    with no second fork and no supervisor, and :func:`enter` returns in the calling process.
    ``alive_fd`` is then the read end of a pipe whose write end only the parent holds: after the
    uid change re-arms the parent-death signal, EOF there means the parent already died.
    """
    caps = capabilities if capabilities is not None else probe()
    layers: list[str] = []
    if not caps.linux:
        if _apply_rlimits(policy.limits, linux=False):
            layers.append("rlimits")
        return tuple(layers)

    _scrub_environ()
    # rlimits first: the supervisor and pid 1 both inherit them. NPROC waits until after the
    # fork, so a crowded uid cannot make the fork itself fail.
    if _apply_rlimits(policy.limits, linux=True):
        layers.append("rlimits")

    # The zygote's cached probe() may predate a uid change in the worker: check again.
    is_root = caps.root and os.geteuid() == 0
    root_path = is_root and caps.cap_sys_admin
    if pid1 and not root_path:
        pid1 = False  # only the root path unshares in place; the other one nests a new pid namespace
    if not pid1 and alive_fd >= 0:
        os.close(alive_fd)
        alive_fd = -1
    if pid1:
        # Already pid 1 of its own pid namespace, whatever happens to the other namespaces.
        layers.append("pid-namespace")
        if policy.namespaces and caps.namespaces:
            layers += _enter_namespaces_in_place(policy, seccomp=policy.seccomp and caps.seccomp)
    elif policy.namespaces and caps.namespaces:
        ns_layers, alive_fd = _enter_namespaces(policy, userns=not root_path)
        layers += ns_layers
    in_userns = "user-namespace" in layers

    if in_userns:
        _drop_capabilities()
        layers.append("no-capabilities")
    elif is_root and policy.drop_uid is not None:
        _drop_uid(policy.drop_uid)
        layers.append(f"uid-{policy.drop_uid}")
    if not is_root or (policy.drop_uid not in (None, 0) and not in_userns):
        _set_rlimit("RLIMIT_NPROC", policy.limits.processes)

    if alive_fd >= 0:
        # A change of uid clears the parent-death signal: arm it again, then check the
        # supervisor did not die before it was armed.
        _arm_parent_death(alive_fd)
        os.close(alive_fd)

    if policy.seccomp and caps.seccomp:
        _install_seccomp(os.getpid())
        layers.append("seccomp")
    return tuple(layers)


# --------------------------------------------------------------------------------------------
# environment and rlimits


def _scrub_environ() -> None:
    """Make the zygote's original environment unreachable from the worker.

    Clearing ``os.environ`` leaves two copies: ``posix.environ`` (a dict snapshot taken at
    start-up) and the exec-time environment block on the stack, which ``/proc/<pid>/environ``
    shows and which ctypes can read. Re-export what ``os.environ`` keeps (so the C-level
    ``environ`` no longer points into the block), sync ``posix.environ``, and zero the block.
    """
    import ctypes
    import posix

    for key, value in os.environ.items():
        os.putenv(key, value)  # setenv(3) copies the string into the heap
    posix.environ.clear()
    posix.environ.update({os.fsencode(k): os.fsencode(v) for k, v in os.environ.items()})
    stat = _read_text("/proc/self/stat")
    try:
        fields = stat[stat.rindex(")") + 2 :].split()
        env_start, env_end = int(fields[47]), int(fields[48])  # fields 50 and 51 of proc(5)
    except (ValueError, IndexError):
        return
    if 0 < env_start < env_end:
        ctypes.memset(env_start, 0, env_end - env_start)


def _set_rlimit(name: str, value: int, hard: int | None = None) -> bool:
    try:
        import resource
    except ImportError:  # Windows
        return False
    which = getattr(resource, name, None)
    if which is None:
        return False
    hard = value if hard is None else hard
    try:
        _, old_hard = resource.getrlimit(which)
        if old_hard != resource.RLIM_INFINITY:
            hard = min(hard, old_hard)
            value = min(value, hard)
        resource.setrlimit(which, (value, hard))
    except (ValueError, OSError):
        return False
    return True


def _vm_size_bytes() -> int | None:
    for line in _read_text("/proc/self/status").splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return None


def _apply_rlimits(limits: Limits, *, linux: bool) -> bool:
    """Set CPU, AS (Linux), FSIZE, NOFILE and CORE limits; True if the essential ones took."""
    ok = _set_rlimit("RLIMIT_CPU", limits.cpu_seconds, limits.cpu_seconds + 1)
    ok = _set_rlimit("RLIMIT_FSIZE", limits.file_size_bytes) and ok
    ok = _set_rlimit("RLIMIT_NOFILE", limits.open_files) and ok
    _set_rlimit("RLIMIT_CORE", 0)
    if linux:  # macOS documents RLIMIT_AS as not enforced
        vm = _vm_size_bytes()
        ok = vm is not None and _set_rlimit("RLIMIT_AS", vm + limits.memory_bytes) and ok
    return ok


# --------------------------------------------------------------------------------------------
# namespaces


class _Libc:
    """The few libc functions the namespace and privilege steps call, typed for ctypes."""

    def __init__(self) -> None:
        import ctypes

        lib = ctypes.CDLL(None, use_errno=True)
        self.ctypes = ctypes
        self.unshare = lib.unshare
        self.unshare.argtypes = [ctypes.c_int]
        self.mount = lib.mount
        self.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
        self.umount2 = lib.umount2
        self.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        self.prctl = lib.prctl
        self.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
        self.syscall = lib.syscall
        self.sethostname = lib.sethostname
        self.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        self.capset = lib.capset
        self.capset.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self.setns = lib.setns
        self.setns.argtypes = [ctypes.c_int, ctypes.c_int]

    def check(self, result: int, what: str) -> None:
        """Raise ``OSError`` with the C errno when a libc call returned -1."""
        if result != 0:
            err = self.ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")


_libc_cache: _Libc | None = None


def _libc() -> _Libc:
    global _libc_cache
    if _libc_cache is None:
        _libc_cache = _Libc()
    return _libc_cache


def _enter_namespaces(policy: Policy, *, userns: bool) -> tuple[list[str], int]:
    """Unshare, fork, and return (layer names, alive fd) in pid 1 of the new namespace.

    The calling process becomes the supervisor and never returns. If the namespaces cannot be
    created at all, nothing changes and ``([], -1)`` is returned.
    """
    libc = _libc()
    uid, gid = os.getuid(), os.getgid()
    flags = _CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWNET | _CLONE_NEWIPC | _CLONE_NEWUTS
    if userns:
        flags |= _CLONE_NEWUSER
    if libc.unshare(flags) != 0:
        return [], -1
    layers = ["pid-namespace", "net-namespace"]
    if userns:
        # Map our own uid/gid onto themselves: allowed without privileges in the parent. A
        # process that was root and called setuid() is not dumpable, which makes its /proc/self
        # files root's: become dumpable just long enough to write the maps.
        dumpable = libc.prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0)
        try:
            if dumpable != 1:
                libc.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0)
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"{uid} {uid} 1")
            _write("/proc/self/gid_map", f"{gid} {gid} 1")
        except OSError as exc:
            raise IsolationError(f"cannot map ids in the new user namespace: {exc}") from exc
        finally:
            if dumpable == 0:
                libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
        layers.insert(0, "user-namespace")

    # The supervisor keeps the write end of this pipe and nothing else: when it dies, the read
    # end reports EOF, which tells pid 1 whether it died before PR_SET_PDEATHSIG was armed.
    alive_r, alive_w = os.pipe()
    try:
        pid = os.fork()
    except OSError as exc:  # EAGAIN/ENOMEM: the namespaces exist but nothing can live in them
        raise IsolationError(f"cannot fork pid 1 of the new pid namespace: {exc}") from exc
    if pid != 0:
        _supervise(pid, keep_fd=alive_w, cpu_seconds=policy.limits.cpu_seconds)
    os.close(alive_w)
    _arm_parent_death(alive_r)
    libc.sethostname(b"sandbox", 7)  # cosmetic; ignore failure
    if _build_root(policy, drop_uid=None if userns else policy.drop_uid):
        layers.append("mount-allowlist")
    return layers, alive_r


def _enter_namespaces_in_place(policy: Policy, *, seccomp: bool = False) -> list[str]:
    """In pid 1 of a fresh pid namespace (root path): unshare the others and build the new root.

    The network namespace is the empty one every child of :func:`fork_into_pid_namespace` starts
    in, kept when the worker can neither use nor change it (``seccomp``: the filter will deny
    ``socket()``; and a ``drop_uid``): then only mount, IPC and UTS are unshared.
    """
    libc = _libc()
    flags = _CLONE_NEWNS | _CLONE_NEWIPC | _CLONE_NEWUTS
    if not (seccomp and policy.drop_uid not in (None, 0) and _in_shared_net_namespace()):
        flags |= _CLONE_NEWNET
    if libc.unshare(flags) != 0:
        return []
    layers = ["net-namespace"]
    libc.sethostname(b"sandbox", 7)  # cosmetic; ignore failure
    if _build_root(policy, drop_uid=policy.drop_uid):
        layers.append("mount-allowlist")
    return layers


_shared_net_namespace: int | None = None
"""An fd of the empty network namespace :func:`fork_into_pid_namespace` puts its children in,
made at its first call (-1: it cannot be made)."""
_shared_net_id: tuple[int, int] | None = None
"""(st_dev, st_ino) of that namespace."""


def _make_shared_net_namespace() -> int:
    """An fd of a new, empty network namespace, made without leaving this process's own; -1 if
    that is not possible (then every worker unshares its own, as before)."""
    global _shared_net_id
    libc = _libc()
    try:
        own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return -1
    fd = -1
    try:
        if libc.unshare(_CLONE_NEWNET) != 0:
            return -1
        try:
            fd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            st = os.fstat(fd)
            _shared_net_id = (st.st_dev, st.st_ino)
        finally:
            if libc.setns(own, _CLONE_NEWNET) != 0:
                err = libc.ctypes.get_errno()
                raise IsolationError(f"cannot return to this process's network namespace: {os.strerror(err)}")
    finally:
        os.close(own)
    return fd


def _in_shared_net_namespace() -> bool:
    """This process is in the network namespace :func:`_make_shared_net_namespace` made."""
    if _shared_net_id is None:
        return False
    try:
        st = os.stat("/proc/self/ns/net")
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == _shared_net_id


_own_pid_namespace: int | None = None
"""An fd of this process's own pid namespace, opened at the first :func:`fork_into_pid_namespace`
(-1: it cannot be opened)."""


def fork_into_pid_namespace() -> int | None:
    """``os.fork()`` whose child is pid 1 of a new pid namespace; None, and no fork, where not possible.

    The fork-server (root with ``CAP_SYS_ADMIN``) forks each worker this way, and the worker calls
    :func:`enter` with ``pid1=True``: one fork per worker instead of two. ``unshare(CLONE_NEWPID)``
    only decides where the *next* child goes, so right after the fork this process points its
    children back at its own pid namespace (``setns``), and the next call makes a new one again.
    Elsewhere (no root, or the user-namespace path) it returns None: fork as usual and let
    :func:`enter` build the namespaces behind a supervisor.

    The child also starts in a network namespace this process made once, at its first call, and
    kept (an empty one: its only interface, ``lo``, is down), so that :func:`enter` need not make
    one per worker, the costliest namespace to make and to tear down (see
    :func:`_enter_namespaces_in_place` for when it keeps it). This process stays in its own.
    """
    global _own_pid_namespace, _shared_net_namespace
    caps = probe()
    if not (caps.linux and caps.root and caps.cap_sys_admin and caps.pivot_root and os.geteuid() == 0):
        return None
    if _own_pid_namespace is None:
        try:
            _own_pid_namespace = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            _own_pid_namespace = -1
    if _own_pid_namespace < 0:
        return None
    if _shared_net_namespace is None:
        _shared_net_namespace = _make_shared_net_namespace()
    libc = _libc()
    if libc.unshare(_CLONE_NEWPID) != 0:
        return None
    pid = -1
    try:
        pid = os.fork()
    finally:
        if pid != 0 and libc.setns(_own_pid_namespace, _CLONE_NEWPID) != 0:
            err = libc.ctypes.get_errno()
            raise IsolationError(f"cannot return to this process's pid namespace: {os.strerror(err)}")
    if pid == 0 and _shared_net_namespace >= 0:
        libc.setns(_shared_net_namespace, _CLONE_NEWNET)  # if it fails, enter() unshares its own
        os.close(_shared_net_namespace)
        _shared_net_namespace = -1
    return pid


def reported_signal(sig: int, cpu_seconds_used: float, cpu_limit: int) -> int:
    """The signal to report for pid 1 of a pid namespace that ended by ``sig``.

    pid 1 ignores SIGXCPU, so RLIMIT_CPU ends it with the hard limit's SIGKILL: report SIGXCPU
    then, as the process would have died of it anywhere else.
    """
    if sig == signal.SIGKILL and cpu_seconds_used >= cpu_limit - 0.25:
        return int(signal.SIGXCPU)
    return sig


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _supervise(pid: int, *, keep_fd: int, cpu_seconds: int) -> NoReturn:
    """Be the intermediate process: wait for pid 1, then end exactly the way it ended.

    It closes every fd but the liveness pipe, so the grader's socket and pipes see EOF as soon
    as pid 1 and its descendants are gone. Killing this process (the worker pid the grader
    knows) kills pid 1 through PR_SET_PDEATHSIG, and with it the whole pid namespace.
    """
    code = 255
    try:
        os.closerange(0, keep_fd)
        os.closerange(keep_fd + 1, 1 << 30)
        while True:
            try:
                _, status, usage = os.wait4(pid, 0)
                break
            except InterruptedError:
                continue
        if os.WIFSIGNALED(status):
            sig = reported_signal(os.WTERMSIG(status), usage.ru_utime + usage.ru_stime, cpu_seconds)
            if sig not in (signal.SIGKILL, signal.SIGSTOP):
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
            os.kill(os.getpid(), sig)
            code = 128 + sig  # only reached for signals whose default action is to ignore
        else:
            code = os.waitstatus_to_exitcode(status)
    except BaseException:
        code = 255
    finally:
        os._exit(code)


def _arm_parent_death(alive_fd: int) -> None:
    """Ask for SIGKILL when the supervisor dies; exit now if it already has."""
    _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    os.set_blocking(alive_fd, False)
    try:
        if os.read(alive_fd, 1) == b"":
            os._exit(1)
    except BlockingIOError:
        pass  # the supervisor still holds the write end


def _drop_uid(uid: int) -> None:
    try:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    except OSError as exc:
        raise IsolationError(f"cannot switch to uid {uid}: {exc}") from exc
    if os.getuid() != uid or os.geteuid() != uid:
        raise IsolationError(f"still uid {os.geteuid()} after setresuid({uid})")


def _drop_capabilities() -> None:
    """Empty the effective, permitted and inheritable capability sets (user-namespace path)."""
    libc = _libc()
    ctypes = libc.ctypes
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()  # two {effective, permitted, inheritable} words, all zero
    try:
        libc.check(libc.capset(ctypes.addressof(header), ctypes.addressof(data)), "capset")
    except OSError as exc:
        raise IsolationError(str(exc)) from exc


# --------------------------------------------------------------------------------------------
# the new root


@dataclass
class _Plan:
    """What to create in the new root: bind mounts (real paths), symlinks, and masks."""

    binds: list[str] = dataclasses.field(default_factory=list)
    symlinks: dict[str, str] = dataclasses.field(default_factory=dict)
    masks: list[str] = dataclasses.field(default_factory=list)
    """Hidden directories that a bind would expose anyway (a checkout under /usr/local, say):
    an empty read-only tmpfs goes over each."""
    complete: bool = True
    """False if a Python prefix cannot be reached: then the new root is not built."""


def _walk(path: str, symlinks: dict[str, str]) -> str | None:
    """Resolve ``path`` one component at a time, recording each symlink met on the way.

    Returns the real path, or None if it does not exist. Recreating the recorded symlinks in
    the new root lets the original spelling (``/lib64/ld-linux...``) work there too.
    """
    todo = [p for p in path.split("/") if p]
    current = "/"
    hops = 0
    while todo:
        name = todo.pop(0)
        if name == ".":
            continue
        if name == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, name)
        try:
            is_link = os.path.islink(candidate)
            if not is_link and not os.path.lexists(candidate):
                return None
        except OSError:
            return None
        if is_link:
            hops += 1
            if hops > 40:
                return None
            target = os.readlink(candidate)
            symlinks[candidate] = target
            todo = [p for p in target.split("/") if p] + todo
            if target.startswith("/"):
                current = "/"
        else:
            current = candidate
    return current


def _within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _grader_repo_root() -> str | None:
    """The source checkout this module is imported from (editable install), if any."""
    candidate = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    markers = ("pyproject.toml", ".git")
    if any(os.path.exists(os.path.join(candidate, m)) for m in markers):
        return candidate
    return None


def _plan_root(policy: Policy) -> _Plan:
    """Decide which host paths the worker sees (read-only)."""
    plan = _Plan()
    cwd = os.path.realpath(os.getcwd())
    repo = _grader_repo_root()
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    real_prefixes = [os.path.realpath(p) for p in prefixes]

    # Prefixes outside the checkout; a virtualenv kept inside it (.venv) is still allowed.
    allowed_in_repo = [p for p in real_prefixes if repo is None or not _within(repo, p)]

    secrets = [p for p in (cwd, repo) if p is not None and p != "/"]

    def hidden(real: str) -> bool:
        """True for paths the worker must not see: the grader's checkout, cwd, solutions/."""
        if os.path.isdir(os.path.join(real, "solutions")):
            secrets.append(os.path.join(real, "solutions"))
            return True
        if cwd != "/" and (_within(cwd, real) or _within(real, cwd)):
            return True
        if repo is not None:
            if _within(repo, real):
                return True
            if _within(real, repo):
                return not any(_within(real, p) for p in allowed_in_repo)
        return False

    reals: list[str] = []
    for path in (*_SYSTEM_DIRS, *_ETC_FILES):
        real = _walk(path, plan.symlinks)
        if real is not None:
            reals.append(real)
    for path in sorted(prefixes):
        real = _walk(path, plan.symlinks)
        if real is None:
            plan.complete = False  # the interpreter would break in the new root
        elif not hidden(real):
            reals.append(real)
    for path in sys.path:
        if not path or not os.path.isabs(path):
            continue  # "" and relative entries mean the current directory
        real = _walk(path, plan.symlinks)
        if real is None or not (os.path.isdir(real) or os.path.isfile(real)) or hidden(real):
            continue
        reals.append(real)
    for path in policy.readable:
        real = _walk(os.path.abspath(path), plan.symlinks)
        if real is not None:
            reals.append(real)

    for real in sorted(set(reals), key=lambda p: (p.count("/"), p)):
        if not any(_within(real, kept) for kept in plan.binds):
            plan.binds.append(real)
    plan.symlinks = {
        link: target
        for link, target in plan.symlinks.items()
        if not any(_within(link, kept) for kept in plan.binds)
    }
    plan.masks = sorted({s for s in secrets if any(_within(s, kept) for kept in plan.binds)})
    return plan


def _staging_dir(plan: _Plan) -> str | None:
    """An existing directory to mount the new root on, not above anything we bind from it."""
    for candidate in _STAGING_CANDIDATES:
        usable = os.path.isdir(candidate) and not os.path.islink(candidate)
        if usable and not any(_within(real, candidate) for real in plan.binds):
            return candidate
    return None


def _makedirs(root: str, path: str) -> None:
    """Create ``root + path`` and its missing parents, each mode 0755."""
    current = root
    for part in path.strip("/").split("/"):
        if not part:
            continue
        current = os.path.join(current, part)
        if not os.path.lexists(current):
            os.mkdir(current, 0o755)


_ST_TO_MS = (
    (os.ST_NOEXEC if hasattr(os, "ST_NOEXEC") else 8, _MS_NOEXEC),
    (os.ST_NOATIME if hasattr(os, "ST_NOATIME") else 1024, _MS_NOATIME),
    (os.ST_NODIRATIME if hasattr(os, "ST_NODIRATIME") else 2048, _MS_NODIRATIME),
    (os.ST_RELATIME if hasattr(os, "ST_RELATIME") else 4096, _MS_RELATIME),
)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """mount(2), raising ``OSError`` on failure."""
    libc = _libc()
    result = libc.mount(
        None if source is None else os.fsencode(source),
        os.fsencode(target),
        None if fstype is None else fstype.encode(),
        flags,
        None if data is None else data.encode(),
    )
    libc.check(result, f"mount {source} on {target}")


def _bind_readonly(source: str, target: str) -> None:
    """Bind ``source`` on ``target``, then make that mount read-only, nosuid and nodev.

    The remount keeps the source mount's noexec and atime flags: inside a user namespace the
    kernel refuses to change flags it locked when the mount was inherited.
    """
    _mount(source, target, None, _MS_BIND)
    keep = os.statvfs(target).f_flag
    flags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV
    for st_flag, ms_flag in _ST_TO_MS:
        if keep & st_flag:
            flags |= ms_flag
    _mount(None, target, None, flags)


def _touch(path: str, mode: int) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))


def _populate(root: str, plan: _Plan, policy: Policy, drop_uid: int | None) -> None:
    """Fill the new root (a tmpfs mounted at ``root``) with everything the worker may see."""
    # /tmp first, so that binds of paths under /tmp land inside the worker's tmpfs.
    os.mkdir(root + "/tmp", 0o755)
    size = max(policy.tmp_size_bytes, 4096)
    _mount("tmpfs", root + "/tmp", "tmpfs", _MS_NOSUID | _MS_NODEV, f"size={size},mode=1777")
    for real in plan.binds:
        _makedirs(root, os.path.dirname(real))
        if os.path.isdir(real):
            os.mkdir(root + real, 0o755)
        else:
            _touch(root + real, 0o644)
    for link, target in plan.symlinks.items():
        _makedirs(root, os.path.dirname(link))
        if not os.path.lexists(root + link):
            os.symlink(target, root + link)
    for real in plan.binds:
        _bind_readonly(real, root + real)
    for secret in plan.masks:
        flags = _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
        _mount("tmpfs", root + secret, "tmpfs", flags, "size=4k,mode=0755")

    # A fresh /proc: this process is pid 1 of its pid namespace, so it shows only the worker.
    _makedirs(root, "/proc")
    _mount("proc", root + "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    _bind_readonly(root + "/proc/sys", root + "/proc/sys")

    _makedirs(root, "/dev")
    for name in _DEV_NODES:
        if os.path.exists("/dev/" + name):
            _touch(f"{root}/dev/{name}", 0o666)
            _mount("/dev/" + name, f"{root}/dev/{name}", None, _MS_BIND)
            flags = _MS_REMOUNT | _MS_BIND | _MS_NOSUID | _MS_NOEXEC
            _mount(None, f"{root}/dev/{name}", None, flags)
    # no /dev/fd, /dev/stdin, ... : they would point into /proc, which _hide_proc detaches

    os.mkdir(root + _WORKDIR, 0o700)
    if drop_uid is not None:
        os.chown(root + _WORKDIR, drop_uid, drop_uid)


def _build_root(policy: Policy, *, drop_uid: int | None) -> bool:
    """Assemble the allow-listed root and pivot into it; False (and no change) if impossible."""
    libc = _libc()
    plan = _plan_root(policy)
    root = _staging_dir(plan)
    if root is None or not plan.complete:
        return False
    old_cwd = os.open(".", os.O_PATH | os.O_DIRECTORY)
    old_umask = os.umask(0o022)
    try:
        _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
        _mount("tmpfs", root, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=1m,mode=0755")
    except OSError:
        os.umask(old_umask)
        os.close(old_cwd)
        return False
    try:
        _populate(root, plan, policy, drop_uid)
        os.chdir(root)
        pivot = _SYS_PIVOT_ROOT[os.uname().machine]
        libc.check(libc.syscall(pivot, b".", b"."), "pivot_root")
    except OSError:
        os.fchdir(old_cwd)
        libc.umount2(os.fsencode(root), _MNT_DETACH)
        return False
    finally:
        os.umask(old_umask)
        os.close(old_cwd)

    # Past pivot_root a failure cannot be undone: raise rather than let student code run.
    try:
        # The old root now sits on top of the new one at "/": detach it and everything below.
        libc.check(libc.umount2(b".", _MNT_DETACH), "detach the old root")
        os.chdir("/")
        _hide_proc(libc)
        _mount(None, "/", None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
        os.chdir(_WORKDIR)
    except OSError as exc:
        raise IsolationError(f"cannot switch to the new root: {exc}") from exc
    return True


NS_LAST_PID_FD = -1
"""In a worker without /proc: an fd of ``/proc/sys/kernel/ns_last_pid`` opened before /proc went
away (the runner notices threads started during a call by it; ``os.pread`` it), else -1."""


def _hide_proc(libc: _Libc) -> None:
    """Detach the new root's /proc, keeping only an fd of ``ns_last_pid``.

    ``/proc/self/mem`` writes even over read-only, sealed code (the kernel forces them through),
    which would let graded code lift the kernel probes' breakpoints (grader.probes).
    """
    global NS_LAST_PID_FD
    with contextlib.suppress(OSError):
        NS_LAST_PID_FD = os.open("/proc/sys/kernel/ns_last_pid", os.O_RDONLY)
    libc.check(libc.umount2(b"/proc", _MNT_DETACH), "detach /proc")


# --------------------------------------------------------------------------------------------
# seccomp


def _install_seccomp(self_pid: int) -> None:
    """Load the deny-list filter; every denied call fails with EPERM (clone3: ENOSYS).

    Threads keep working: ``clone`` is allowed with ``CLONE_THREAD``, and glibc falls back to it
    when ``clone3`` says ENOSYS. Signals may still be sent to the process itself (``raise``,
    ``abort``), never to another one.

    The filter :func:`prepare` compiled for this ``self_pid`` (pid 1) is loaded as it is, the way
    libseccomp loads it (``PR_SET_NO_NEW_PRIVS``, then the BPF program); any other is built here.
    """
    compiled = _seccomp_programs.get(self_pid)
    if compiled is not None:
        libc = _libc()
        try:
            libc.check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")
            address = libc.ctypes.addressof(compiled[1])
            libc.check(libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, address, 0, 0), "PR_SET_SECCOMP")
        except OSError as exc:
            raise IsolationError(f"cannot load the seccomp filter: {exc}") from exc
        return
    try:
        _seccomp_filter(self_pid).load()
    except OSError as exc:
        raise IsolationError(f"cannot load the seccomp filter: {exc}") from exc


def _seccomp_filter(self_pid: int) -> Any:
    """The deny-list filter (a ``pyseccomp.SyscallFilter``) of a process whose pid is ``self_pid``."""
    import errno

    import pyseccomp as sc

    flt = sc.SyscallFilter(sc.ALLOW)
    flt.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)  # no i386/x32 syscall-number tricks
    eperm = sc.ERRNO(errno.EPERM)

    def rule(action: int, name: str, *args: Any) -> None:
        number = sc.resolve_syscall(sc.Arch.NATIVE, name)
        if number >= 0:  # unknown to this libseccomp or absent on this architecture
            flt.add_rule(action, number, *args)

    for name in _DENIED_SYSCALLS:
        rule(eperm, name)
    rule(sc.ERRNO(errno.ENOSYS), "clone3")
    rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, _CLONE_THREAD, 0))
    for name in ("kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo"):
        rule(eperm, name, sc.Arg(0, sc.NE, self_pid))
    rule(eperm, "prctl", sc.Arg(0, sc.EQ, _PR_SET_PDEATHSIG))
    rule(eperm, "prlimit64", sc.Arg(2, sc.NE, 0))
    return flt


_seccomp_programs: dict[int, tuple[Any, Any]] = {}
"""self pid -> (BPF program, its ``struct sock_fprog``) as ctypes buffers (:func:`_compile_seccomp`)."""


def _compile_seccomp(self_pid: int) -> None:
    """Compile :func:`_seccomp_filter` to BPF (libseccomp's own export) for :func:`_install_seccomp`.

    Skipped (the filter is then built at each install) where the export fails, or where
    libseccomp would load it with flags other than no-new-privileges alone.
    """
    if self_pid in _seccomp_programs:
        return
    try:
        import pyseccomp as sc

        flt = _seccomp_filter(self_pid)
        if flt.get_attr(sc.Attr.CTL_NNP) != 1 or any(
            flt.get_attr(attr) for attr in (sc.Attr.CTL_TSYNC, sc.Attr.CTL_LOG, sc.Attr.CTL_SSB)
        ):
            return
        fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
        try:
            flt.export_bpf(_Fd(fd))
            size = os.lseek(fd, 0, os.SEEK_CUR)
            program = os.pread(fd, size, 0)
        finally:
            os.close(fd)
    except (ImportError, RuntimeError, OSError, AttributeError, ValueError):
        return
    if not program or len(program) % 8 or len(program) // 8 > 0xFFFF:
        return
    import struct

    ctypes = _libc().ctypes
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("@HP", len(program) // 8, ctypes.addressof(buffer))  # struct sock_fprog
    _seccomp_programs[self_pid] = (buffer, ctypes.create_string_buffer(fprog, len(fprog)))


class _Fd:
    """A file descriptor with the ``fileno()`` that pyseccomp's export wants."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd
