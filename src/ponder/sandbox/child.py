"""The sandbox's child process: it fences itself in, then runs the candidate program.

Run as `python -I -B child.py` by `ponder.sandbox.Sandbox`, in a fresh session, a temporary
working folder and a clean environment. It reads its job (JSON) on stdin and writes one JSON
status line to the descriptor the job names (never to stdout: the candidate owns stdout).
Standard library only, and nothing here imports ponder: the candidate must not find it.

The fences, each where the machine allows it (the status says which it got):

1. namespaces (`unshare`): a new network namespace (no interface is up, so nothing can be
   reached, not even the host's loopback) and a new PID namespace (the candidate is its
   init: when it exits, the kernel kills every process it left behind). As root directly;
   otherwise inside a new user namespace.
2. resource limits: CPU seconds, address space, file size, open files, no core files, and
   processes (which bound a fork bomb: the kernel enforces RLIMIT_NPROC only for a
   process that is not root, so root drops to an unprivileged user id of its own, `uid`,
   keeping only the capability to read and search folders, so that an interpreter installed
   in root's home still loads its modules).
3. Landlock (Linux 5.13+): the process and its descendants may read only the interpreter's
   folders and the system libraries, and read and write only the working folder; TCP bind
   and connect are refused (ABI 4+), as are signals to processes outside the sandbox and
   abstract unix sockets (ABI 6+).
4. a Python audit hook (`guard`): refuses sockets, subprocesses and exec, and opening,
   changing or removing files outside those folders; fork too when no process limit could
   be set. Python code can be stopped this way; C code (ctypes) cannot, which is what the
   kernel's fences are for.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import sys
from typing import Any

CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
PR_SET_KEEPCAPS = 8
PR_SET_NO_NEW_PRIVS = 38
CAP_DAC_READ_SEARCH = 2
CAPABILITY_VERSION_3 = 0x20080522
SYS_LANDLOCK_CREATE_RULESET = 444  # the same number on every architecture
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_RULE_PATH_BENEATH = 1
LANDLOCK_CREATE_RULESET_VERSION = 1
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1, 2, 4, 8
FS_TRUNCATE, FS_IOCTL_DEV = 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1, 2
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1, 2
DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")


class CpuLimit(Exception):
    """The CPU-time limit was reached (SIGXCPU, turned into an exception)."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


_libc = ctypes.CDLL(None, use_errno=True)


def _fail(what: str) -> str:
    return f"{what}: {os.strerror(ctypes.get_errno())}"


def unshare(root: bool) -> tuple[list[str], str | None]:
    """New network and PID namespaces (in a new user namespace unless root)."""
    flags = CLONE_NEWNET | CLONE_NEWPID | (0 if root else CLONE_NEWUSER)
    if _libc.unshare(flags) != 0:
        return [], _fail("unshare")
    return ["network namespace", "pid namespace"], None


def limit(job: dict[str, Any], dropping: bool) -> list[str]:
    """Resource limits; processes only where the kernel enforces them (not for root)."""
    limits = job["limits"]
    cpu = max(1, int(limits["cpu_seconds"] + 0.999))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["open_files"],) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    layers = ["cpu, memory, file-size and open-file limits"]
    if dropping or os.geteuid() != 0:
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"],) * 2)
        layers.append("process limit")
    return layers


def landlock(read: list[str], write: str) -> tuple[list[str], str | None]:
    """Restrict the file system (and, where the kernel can, TCP and signals) for good."""
    syscall = _libc.syscall
    syscall.restype = ctypes.c_long
    abi = syscall(SYS_LANDLOCK_CREATE_RULESET, None, 0, LANDLOCK_CREATE_RULESET_VERSION)
    if abi < 1:
        return [], _fail("landlock")
    fs = (1 << 13) - 1  # the rights of ABI 1
    fs |= (1 << 13) if abi >= 2 else 0  # refer
    fs |= FS_TRUNCATE if abi >= 3 else 0
    fs |= FS_IOCTL_DEV if abi >= 5 else 0
    attr = _RulesetAttr(fs, NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0, 0)
    if abi >= 6:
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), size, 0)
    if ruleset < 0:
        return [], _fail("landlock ruleset")
    file_rights = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | (fs & (FS_TRUNCATE | FS_IOCTL_DEV))
    rules = [(p, FS_EXECUTE | FS_READ_FILE | FS_READ_DIR) for p in read]
    rules += [(p, FS_READ_FILE | FS_WRITE_FILE) for p in DEVICES]
    rules.append((write, fs))
    for path, rights in rules:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue  # a folder this machine does not have
        if not os.path.isdir(path):
            rights &= file_rights
        rule = _PathBeneath(rights, fd)
        added = syscall(
            SYS_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH, ctypes.byref(rule), 0
        )
        os.close(fd)
        if added != 0:
            return [], _fail(f"landlock rule for {path}")
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return [], _fail("no_new_privs")
    if syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
        return [], _fail("landlock restrict")
    os.close(ruleset)
    layers = ["landlock file system"]
    if abi >= 4:
        layers.append("landlock tcp")
    if abi >= 6:
        layers.append("landlock signals")
    return layers, None


def drop(uid: int) -> str | None:
    """Become `uid` (no groups), keeping only CAP_DAC_READ_SEARCH (Landlock still decides
    what may be read)."""
    if _libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0:
        return _fail("keepcaps")
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    keep = 1 << CAP_DAC_READ_SEARCH
    header = _CapHeader(CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)(_CapData(keep, keep, 0), _CapData(0, 0, 0))
    if _libc.capset(ctypes.byref(header), data) != 0:
        return _fail("capset")
    return None


def guard(read: list[str], write: str, forks: bool) -> None:
    """The Python-level fence: an audit hook (it cannot be removed once added)."""
    write = os.path.realpath(write)
    readable = tuple(os.path.realpath(p) for p in (*read, *DEVICES))
    refused = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn"}
    refused |= {"pty.spawn", "os.forkpty", "socket.__new__", "socket.socketpair"}
    if not forks:
        refused |= {"os.fork"}
    changes = {
        "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.link",
        "os.symlink", "os.truncate", "os.utime", "shutil.rmtree", "shutil.move", "os.chdir",
        "os.mkfifo", "os.mknod", "os.chflags", "os.setxattr", "os.removexattr",
    }  # fmt: skip
    realpath, isinstance_, str_, bytes_ = os.path.realpath, isinstance, str, bytes

    def inside(path: Any, roots: tuple[str, ...]) -> bool:
        if isinstance_(path, int):
            return True  # a descriptor already open
        if isinstance_(path, bytes_):
            path = path.decode(errors="replace")
        if not isinstance_(path, str_):
            path = str_(path)
        real = realpath(path)
        return any(real == r or real.startswith(r.rstrip("/") + "/") for r in roots)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event in refused:
            raise PermissionError(f"the sandbox refuses {event}")
        if event == "open":
            path, mode = args[0], args[1]
            writing = isinstance_(mode, str_) and any(c in mode for c in "wax+")
            if not writing and isinstance_(args[2], int):
                writing = bool(args[2] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            if path is not None and not inside(path, (write,) if writing else (write, *readable)):
                raise PermissionError(f"the sandbox refuses to open {path!r} outside its folder")
        elif event in changes:
            for path in args[:2]:
                if isinstance_(path, (str_, bytes_)) and not inside(path, (write,)):
                    raise PermissionError(f"the sandbox refuses {event} on {path!r}")
        elif event in ("os.kill", "os.killpg") and args[0] not in (0, os.getpid()):
            raise PermissionError(f"the sandbox refuses {event}")

    sys.addaudithook(hook)


def run(program: str, status: Any) -> None:
    """Run the candidate and write how it ended; what it `report`s is kept. Only the
    candidate's own process writes the status, not what it forked."""
    reports: list[Any] = []
    me = os.getpid()

    def on_cpu(signum: int, frame: Any) -> None:
        raise CpuLimit("CPU time limit reached")

    signal.signal(signal.SIGXCPU, on_cpu)
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    namespace["__ponder_report__"] = reports.append
    record: dict[str, Any]
    try:
        exec(compile(program, "<candidate>", "exec"), namespace)
        record = {"status": "ok"}
    except SystemExit as exc:
        record = {"status": "sys.exit", "code": repr(exc.code)[:200]}
    except MemoryError:
        record = {"status": "memory"}
    except CpuLimit:
        record = {"status": "timeout"}
    except BaseException as exc:  # the candidate's failure is the answer
        record = {"status": "exception", "type": type(exc).__name__, "message": str(exc)[:500]}
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    if os.getpid() != me:
        return
    record["reports"] = reports
    try:
        line = json.dumps(record, default=repr)
    except (TypeError, ValueError, RecursionError):
        line = json.dumps({**record, "reports": None})
    status.write(line + "\n")
    status.flush()


def main() -> None:
    job = json.loads(sys.stdin.read())
    sys.stdin.close()
    status = os.fdopen(job["status_fd"], "w")
    root = os.geteuid() == 0
    uid = job.get("uid") if root else None
    layers, problems = [], []
    if job["namespaces"]:
        got, problem = unshare(root)
        layers += got
        problems += [problem] if problem else []
        if got:  # the next process is the namespace's init
            child = os.fork()
            if child:
                status.close()
                code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
                os._exit(code if code >= 0 else 128 - code)  # a signal as a shell says it
    layers += limit(job, uid is not None)
    read, write = job["read"], os.getcwd()
    if job["landlock"]:
        got, problem = landlock(read, write)
        layers += got
        problems += [problem] if problem else []
    if uid is not None:
        problem = drop(uid)
        if problem:
            status.write(json.dumps({"status": "setup", "message": problem}) + "\n")
            status.flush()
            os._exit(70)
        layers.append("unprivileged user")
    if job["guard"]:
        guard(read, write, forks="process limit" in layers)
        layers.append("python audit hook")
    if job.get("describe"):
        status.write(json.dumps({"status": "ok", "layers": layers, "problems": problems}) + "\n")
        status.flush()
        return
    run(job["program"], status)


if __name__ == "__main__":
    main()
