"""Run untrusted Python (a model's program) in a fenced subprocess, one per candidate.

    sandbox = Sandbox(Limits(wall_seconds=5))
    outcome = sandbox.run("print(6 * 7)")       # Outcome(passed=True, stdout='42\\n', ...)
    outcomes = sandbox.run_many(programs)       # a bounded pool of workers

Each program runs in its own process (`child.py`), in a new session, a fresh temporary
folder as its working directory (removed afterwards) and a clean environment (`python -I`:
no PYTHON* variables, no user site folder). It fences itself in before the program runs:
network and PID namespaces, CPU-time, memory, file-size, open-file and process limits (as an
unprivileged user of its own when ponder runs as root), Landlock on the file system, and a
Python audit hook; `Sandbox.isolation()` says which of these the machine allowed. From
outside, the sandbox kills the whole process group at the wall-time limit or when the
program prints more than `output_bytes`.

A program passes when it runs to its end. It fails with a reason: "timeout" (CPU or wall
time), "memory", "output too large", "sys.exit" (a program that exits early has not passed
its tests, even with status 0), "exit code N" (it ended the process itself, `os._exit`),
"signal NAME", or "exception: Type: message". What it hands to `__ponder_report__(value)`
(a function in its globals) comes back in `Outcome.reports`: test harnesses report results
there, not on stdout, which the program owns.

Outcomes are cached by a hash of the program and the limits (a task's program is the
candidate's code with its tests): the same candidate on the same tests runs once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import queue
import random
import selectors
import shutil
import signal
import site
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ponder.errors import ConfigError, PonderError

CHILD = Path(__file__).with_name("child.py")
MIB = 1 << 20
SYSTEM_READ = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/etc/ld.so.cache", "/etc/localtime")
"""Besides the interpreter's own folders, what a program may read: the shared libraries
that extension modules load, and the time zone."""
SETUP_EXIT = 70
"""The child's exit status when it could not fence itself in."""


class SandboxError(PonderError):
    """The sandbox itself failed (not the program it ran)."""


@dataclass(frozen=True, slots=True)
class Limits:
    cpu_seconds: float = 5.0
    wall_seconds: float = 10.0
    memory_bytes: int = 1024 * MIB
    """Address space per process (RLIMIT_AS): a program that forks gets this per process."""
    output_bytes: int = 1 * MIB
    """stdout and stderr together; past this the program is killed."""
    processes: int = 16
    """Processes and threads of the program's user (RLIMIT_NPROC): a fork bomb stops here."""
    file_bytes: int = 16 * MIB
    open_files: int = 64

    def __post_init__(self) -> None:
        for name in ("cpu_seconds", "wall_seconds"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 < value <= 3600:
                raise ConfigError(f"sandbox {name} must be in (0, 3600], got {value!r}")
        for name in ("memory_bytes", "output_bytes", "processes", "file_bytes", "open_files"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"sandbox {name} must be a positive integer, got {value!r}")
        if self.memory_bytes < 64 * MIB:
            raise ConfigError("sandbox memory_bytes below 64 MiB cannot start Python")
        if self.open_files < 16:
            raise ConfigError("sandbox open_files below 16 cannot start Python")


@dataclass(frozen=True, slots=True)
class Outcome:
    passed: bool
    """The program ran to its end."""
    reason: str | None = None
    """Why it did not (None when it passed)."""
    stdout: str = ""
    stderr: str = ""
    reports: tuple[Any, ...] = ()
    """What the program handed to `__ponder_report__`, in order (JSON values)."""
    seconds: float = 0.0


@dataclass
class _Slots:
    """Which unprivileged user id each concurrent run gets (root only): one each, so one
    program's processes never count against another's RLIMIT_NPROC."""

    base: int
    free: queue.SimpleQueue[int] = field(default_factory=queue.SimpleQueue)


class Sandbox:
    """Runs programs under `limits`, at most `workers` at a time, caching outcomes.

    `guard=False` leaves out the Python audit hook (to test the kernel's fences alone);
    `namespaces` and `landlock` likewise switch those fences off."""

    def __init__(
        self,
        limits: Limits = Limits(),
        *,
        workers: int | None = None,
        cache_size: int = 4096,
        guard: bool = True,
        namespaces: bool = True,
        landlock: bool = True,
    ) -> None:
        if workers is not None and not 1 <= workers <= 64:
            raise ConfigError(f"sandbox workers must be from 1 to 64, got {workers}")
        self.limits = limits
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        self.guard, self.namespaces, self.landlock = guard, namespaces, landlock
        self._cache: OrderedDict[str, Outcome] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._root = os.geteuid() == 0
        # a random range of user ids, so two ponder processes on one machine never share one
        self._slots = _Slots(random.SystemRandom().randrange(1 << 20, 1 << 30, 64))
        for i in range(self.workers):
            self._slots.free.put(self._slots.base + i)
        self._layers: tuple[str, ...] | None = None
        self.runs = 0
        """Programs actually executed (cache misses)."""

    # -- public API -------------------------------------------------------------------

    def run(self, program: str) -> Outcome:
        return self.run_many([program])[0]

    def run_many(self, programs: Sequence[str]) -> list[Outcome]:
        """Outcomes in order; each distinct uncached program runs once, `workers` at a time."""
        keys = [self.key(p) for p in programs]
        found: dict[str, Outcome] = {}
        missing: dict[str, str] = {}
        with self._lock:
            for key, program in zip(keys, programs, strict=True):
                if key in self._cache:
                    self._cache.move_to_end(key)
                    found[key] = self._cache[key]
                elif key not in found:
                    missing.setdefault(key, program)
        if missing:
            pool = self._executor()
            futures = {key: pool.submit(self._execute, p) for key, p in missing.items()}
            for key, future in futures.items():
                found[key] = future.result()
                self._store(key, found[key])
        return [found[key] for key in keys]

    async def arun_many(self, programs: Sequence[str]) -> list[Outcome]:
        return await asyncio.to_thread(self.run_many, programs)

    def key(self, program: str) -> str:
        blob = json.dumps([program, dataclasses.asdict(self.limits), self._fences()])
        return hashlib.sha256(blob.encode()).hexdigest()

    def cached(self, program: str) -> Outcome | None:
        with self._lock:
            return self._cache.get(self.key(program))

    def isolation(self) -> tuple[str, ...]:
        """The fences this machine allowed (run once, in a child, and remembered)."""
        if self._layers is None:
            record = self._spawn("", describe=True)[0]
            if record is None or record.get("status") != "ok":
                raise SandboxError(f"the sandbox could not start: {record}")
            self._layers = tuple(record["layers"])
        return self._layers

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # -- internals --------------------------------------------------------------------

    def _fences(self) -> list[bool]:
        return [self.guard, self.namespaces, self.landlock]

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="sandbox")
            return self._pool

    def _store(self, key: str, outcome: Outcome) -> None:
        with self._lock:
            self._cache[key] = outcome
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _execute(self, program: str) -> Outcome:
        started = time.perf_counter()
        record, killed, out, err, code = self._spawn(program)
        self.runs += 1
        seconds = time.perf_counter() - started
        stdout = out.decode("utf-8", errors="replace")
        stderr = err.decode("utf-8", errors="replace")
        reports = tuple(record.get("reports") or ()) if record else ()

        def failed(reason: str) -> Outcome:
            return Outcome(False, reason, stdout, stderr, reports, seconds)

        if killed:
            return failed(killed)
        if record is None:
            if code == SETUP_EXIT:
                raise SandboxError(f"the sandbox could not fence a program in: {stderr[-300:]}")
            if code > 128:
                name = signal.Signals(code - 128).name if code - 128 < signal.NSIG else code
                return failed("timeout" if name in ("SIGXCPU", "SIGKILL") else f"signal {name}")
            return failed(f"exit code {code}")
        status = record["status"]
        if status == "setup":
            raise SandboxError(f"the sandbox could not fence a program in: {record['message']}")
        if status == "ok":
            return Outcome(True, None, stdout, stderr, reports, seconds)
        if status == "exception":
            return failed(f"exception: {record['type']}: {record['message']}".rstrip(": "))
        return failed(status)  # timeout, memory, sys.exit

    def _read_roots(self) -> list[str]:
        roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
        roots |= {sysconfig.get_path(name) for name in ("stdlib", "platstdlib", "purelib")}
        roots |= set(site.getsitepackages())
        return sorted({str(Path(r).resolve()) for r in roots if r} | set(SYSTEM_READ))

    def _spawn(
        self, program: str, *, describe: bool = False
    ) -> tuple[dict[str, Any] | None, str | None, bytes, bytes, int]:
        """Run the child once: (status record, why it was killed, stdout, stderr, exit)."""
        limits = self.limits
        uid = self._slots.free.get() if self._root else None
        folder = tempfile.mkdtemp(prefix="ponder-sandbox-")
        status_read, status_write = os.pipe()
        try:
            if uid is not None:
                os.chown(folder, uid, uid)
            job = {
                "program": program, "limits": dataclasses.asdict(limits), "uid": uid,
                "status_fd": status_write, "read": self._read_roots(), "guard": self.guard,
                "namespaces": self.namespaces, "landlock": self.landlock,
                "describe": describe,
            }  # fmt: skip
            env = {"PATH": "/usr/bin:/bin", "HOME": folder, "TMPDIR": folder, "LANG": "C.UTF-8"}
            process = subprocess.Popen(
                [sys.executable, "-I", "-B", str(CHILD)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                cwd=folder, env=env, start_new_session=True, pass_fds=(status_write,),
            )  # fmt: skip
            os.close(status_write)
            status_write = -1
            try:
                killed, out, err, status = self._watch(
                    process, json.dumps(job).encode(), status_read
                )
            finally:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)  # before the reap: the id is ours
                process.wait()
            record = None
            lines = status.decode("utf-8", errors="replace").strip().splitlines()
            if lines:
                with contextlib.suppress(ValueError):
                    record = json.loads(lines[-1])
            return record, killed, out, err, process.returncode
        finally:
            os.close(status_read)
            if status_write >= 0:
                os.close(status_write)
            _remove(folder)
            if uid is not None:
                self._slots.free.put(uid)

    def _watch(
        self, process: subprocess.Popen[bytes], job: bytes, status_fd: int
    ) -> tuple[str | None, bytes, bytes, bytes]:
        """Feed the job, then read stdout, stderr and the status until they close, killing
        the process group at the wall-time or output limit."""
        limits = self.limits
        assert process.stdin and process.stdout and process.stderr
        try:
            process.stdin.write(job)
            process.stdin.close()
        except BrokenPipeError:
            pass
        deadline = time.monotonic() + limits.wall_seconds
        chunks: dict[int, list[bytes]] = {}
        total = 0
        killed = None
        with selectors.DefaultSelector() as selector:
            for stream in (process.stdout.fileno(), process.stderr.fileno(), status_fd):
                selector.register(stream, selectors.EVENT_READ)
                chunks[stream] = []
            while selector.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    killed = "timeout"
                    break
                for key, _ in selector.select(left):
                    data = os.read(key.fd, 65536)
                    if not data:
                        selector.unregister(key.fd)
                        continue
                    chunks[key.fd].append(data)
                    if key.fd != status_fd:
                        total += len(data)
                if total > limits.output_bytes:
                    killed = "output too large"
                    break
        if killed:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        cap = limits.output_bytes
        out = b"".join(chunks[process.stdout.fileno()])[:cap]
        err = b"".join(chunks[process.stderr.fileno()])[:cap]
        return killed, out, err, b"".join(chunks[status_fd])


def _remove(folder: str) -> None:
    """Remove the program's folder, whatever permissions it left on what it made."""

    def retry(function: Any, path: str, _: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(path), 0o700)
            os.chmod(path, 0o700)
            function(path)

    shutil.rmtree(folder, onerror=retry)
