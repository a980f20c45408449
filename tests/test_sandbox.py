"""The sandbox on real subprocesses: a program's result, the cache, the pool, and every kind
of bad program (it fails with a reason, the run goes on, nothing outside its folder changes).

Bad programs run twice where the fence differs: with the Python audit hook, and without it
(`guard=False`), so the kernel's fences (namespaces, rlimits, Landlock, the unprivileged
user) are tested on their own. Limits are small so that each test takes about a second."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from ponder.errors import ConfigError
from ponder.sandbox import MIB, Limits, Sandbox

SMALL = Limits(
    cpu_seconds=1.0, wall_seconds=4.0, memory_bytes=256 * MIB, output_bytes=64 * 1024,
    processes=8, file_bytes=1 * MIB,
)  # fmt: skip
GUARDS = pytest.mark.parametrize("guard", [True, False], ids=["audit-hook", "kernel-only"])


@pytest.fixture(scope="module")
def layers() -> tuple[str, ...]:
    return Sandbox(SMALL, guard=False).isolation()


def _needs(layers: tuple[str, ...], *wanted: str) -> None:
    missing = [w for w in wanted if w not in layers]
    if missing:
        pytest.skip(f"this machine does not allow: {', '.join(missing)}")


def test_a_program_runs_and_reports() -> None:
    sandbox = Sandbox(SMALL)
    outcome = sandbox.run("import math\nprint(math.factorial(5))\n__ponder_report__({'a': [1]})")
    assert outcome.passed and outcome.reason is None
    assert outcome.stdout == "120\n" and outcome.reports == ({"a": [1]},)


def test_the_program_gets_a_clean_environment_and_its_own_folder(tmp_path: Path) -> None:
    os.environ["PONDER_SECRET_FOR_TEST"] = "hunter2"
    try:
        outcome = Sandbox(SMALL).run(
            "import os, sys\nprint(sorted(os.environ))\nprint(os.getcwd())\n"
            "open('mine.txt', 'w').write('x')\nprint(os.listdir('.'))\nprint(sys.flags.isolated)"
        )
    finally:
        del os.environ["PONDER_SECRET_FOR_TEST"]
    lines = outcome.stdout.splitlines()
    assert outcome.passed, outcome
    assert "PONDER_SECRET_FOR_TEST" not in lines[0] and "hunter2" not in outcome.stdout
    assert "ponder-sandbox-" in lines[1] and lines[2] == "['mine.txt']" and lines[3] == "1"
    assert not Path(lines[1]).exists()  # the folder is removed afterwards


def test_outcomes_are_cached_by_program_and_limits() -> None:
    sandbox = Sandbox(SMALL)
    first = sandbox.run("print(1)")
    second = sandbox.run("print(1)")
    assert first == second and sandbox.runs == 1
    sandbox.run_many(["print(1)", "print(2)", "print(2)"])
    assert sandbox.runs == 2
    other = Sandbox(Limits(cpu_seconds=2.0))
    assert other.key("print(1)") != sandbox.key("print(1)")


def test_the_pool_runs_programs_side_by_side() -> None:
    sandbox = Sandbox(SMALL, workers=2)
    started = time.perf_counter()
    outcomes = sandbox.run_many([f"import time\ntime.sleep(0.6)\nprint({i})" for i in range(4)])
    took = time.perf_counter() - started
    assert [o.stdout for o in outcomes] == ["0\n", "1\n", "2\n", "3\n"]
    assert took < 4 * 0.6  # two at a time: about 1.2 s plus start-up, not 2.4 s


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="wall_seconds"):
        Limits(wall_seconds=0)
    with pytest.raises(ConfigError, match="memory_bytes"):
        Limits(memory_bytes=MIB)
    with pytest.raises(ConfigError, match="workers"):
        Sandbox(workers=0)


@GUARDS
def test_an_infinite_loop_times_out(guard: bool) -> None:
    sandbox = Sandbox(SMALL, guard=guard)
    cpu = sandbox.run("while True:\n    pass")
    wall = sandbox.run("import time\ntime.sleep(60)")
    assert (cpu.passed, cpu.reason) == (False, "timeout")
    assert (wall.passed, wall.reason) == (False, "timeout") and wall.seconds < 6
    assert sandbox.run("print('next')").stdout == "next\n"  # the run goes on


def test_a_fork_bomb_is_bounded(layers: tuple[str, ...]) -> None:
    """Safe for the host only under a process limit: checked with a bounded fork first."""
    _needs(layers, "process limit", "pid namespace")
    sandbox = Sandbox(SMALL, guard=False)
    count = sandbox.run(
        "import os, time\nn = 0\nfor _ in range(50):\n    try:\n        pid = os.fork()\n"
        "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(5)\n"
        "        os._exit(0)\n    n += 1\nprint(n)"
    )
    assert count.passed and int(count.stdout) < SMALL.processes  # the limit holds
    bomb = sandbox.run("import os\nwhile True:\n    os.fork()")
    assert not bomb.passed and bomb.reason is not None
    assert bomb.reason.startswith("exception: BlockingIOError") or bomb.reason == "timeout"
    stubborn = sandbox.run(
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    )
    assert (stubborn.passed, stubborn.reason) == (False, "timeout")
    assert sandbox.run("print('next')").stdout == "next\n"


def test_what_a_program_leaves_running_is_killed_with_it(layers: tuple[str, ...]) -> None:
    _needs(layers, "pid namespace")
    if os.geteuid() != 0:
        pytest.skip("processes are told apart by the sandbox's own user id (root only)")
    sandbox = Sandbox(SMALL, guard=False, workers=1)
    outcome = sandbox.run(
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(30)\n"
        "    os._exit(0)\nprint('left one behind')"
    )
    assert outcome.passed
    uid = sandbox._slots.base
    time.sleep(0.2)
    left = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    left.append(entry.name)
            except FileNotFoundError:
                continue
    assert left == []


@GUARDS
def test_unbounded_allocation_fails_with_memory(guard: bool) -> None:
    sandbox = Sandbox(SMALL, guard=guard)
    outcome = sandbox.run("x = []\nwhile True:\n    x.append(bytearray(16 * 2**20))")
    assert (outcome.passed, outcome.reason) == (False, "memory")
    assert sandbox.run("print('next')").passed


@GUARDS
def test_printing_gigabytes_is_cut_off(guard: bool) -> None:
    sandbox = Sandbox(SMALL, guard=guard)
    started = time.perf_counter()
    outcome = sandbox.run("import sys\nwhile True:\n    sys.stdout.write('x' * 2**20)")
    assert (outcome.passed, outcome.reason) == (False, "output too large")
    assert len(outcome.stdout) <= SMALL.output_bytes and time.perf_counter() - started < 3
    err = sandbox.run("import sys\nwhile True:\n    sys.stderr.write('y' * 2**20)")
    assert err.reason == "output too large"


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@GUARDS
def test_files_outside_its_folder_can_be_neither_read_nor_changed(
    guard: bool, layers: tuple[str, ...], tmp_path: Path
) -> None:
    if not guard:
        _needs(layers, "landlock file system")
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    os.chmod(tmp_path, 0o777)
    secret.chmod(0o666)  # readable and writable by anyone: only the sandbox stands in the way
    before = _snapshot(tmp_path)
    sandbox = Sandbox(SMALL, guard=guard)
    attempts = {
        "read": f"print(open({str(secret)!r}).read())",
        "write": f"open({str(secret)!r}, 'w').write('changed')",
        "create": f"open({str(tmp_path / 'new.txt')!r}, 'w').write('x')",
        "remove": f"import os\nos.remove({str(secret)!r})",
        "rename": f"import os\nos.rename({str(secret)!r}, {str(tmp_path / 'moved')!r})",
        "tmp": "open('/tmp/ponder-sandbox-escape.txt', 'w').write('x')",
        "listing": f"import os\nprint(os.listdir({str(tmp_path)!r}))",
        "home": "import os\nprint(os.listdir('/root'))",
        "escape by ..": "open('../ponder-escape.txt', 'w').write('x')",
    }
    for what, program in attempts.items():
        outcome = sandbox.run(program)
        assert not outcome.passed, what
        assert outcome.reason is not None and "PermissionError" in outcome.reason, (what, outcome)
        assert "do not read" not in outcome.stdout
    assert _snapshot(tmp_path) == before
    assert not Path("/tmp/ponder-sandbox-escape.txt").exists()
    assert not (Path(os.environ.get("TMPDIR", "/tmp")) / "ponder-escape.txt").exists()


@GUARDS
def test_sockets_reach_nothing(guard: bool, layers: tuple[str, ...]) -> None:
    if not guard:
        _needs(layers, "network namespace")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted: list[object] = []

    def serve() -> None:
        with contextlib.suppress(OSError):  # nothing came: the timeout
            accepted.append(listener.accept())

    thread = threading.Thread(target=serve)
    thread.start()
    sandbox = Sandbox(SMALL, guard=guard)
    tcp = sandbox.run(
        f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1).send(b'hi')"
    )
    udp = sandbox.run(
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"s.sendto(b'hi', ('127.0.0.1', {port}))"
    )
    thread.join()
    listener.close()
    assert accepted == []
    for outcome in (tcp, udp):
        assert not outcome.passed and outcome.reason is not None
        assert outcome.reason.startswith("exception: "), outcome.reason


@GUARDS
def test_exiting_early_is_no_pass(guard: bool) -> None:
    sandbox = Sandbox(SMALL, guard=guard)
    assert sandbox.run("import sys\nsys.exit(0)").reason == "sys.exit"
    assert sandbox.run("raise SystemExit").reason == "sys.exit"
    assert sandbox.run("import os\nos._exit(0)").reason == "exit code 0"
    assert sandbox.run("import os\nos._exit(3)").reason == "exit code 3"
    raised = sandbox.run("raise ValueError('no good')")
    assert raised.reason == "exception: ValueError: no good"
    assert sandbox.run("print('next')").passed


def test_the_guard_refuses_subprocesses_and_signals() -> None:
    sandbox = Sandbox(SMALL)
    run = sandbox.run("import subprocess\nsubprocess.run(['true'])")
    assert run.reason == "exception: PermissionError: the sandbox refuses subprocess.Popen"
    system = sandbox.run("import os\nos.system('true')")
    assert system.reason == "exception: PermissionError: the sandbox refuses os.system"
    kill = sandbox.run(f"import os, signal\nos.kill({os.getpid()}, signal.SIGTERM)")
    assert not kill.passed  # ponder is still here to check
