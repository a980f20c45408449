"""Start the real `python -m llama_cpp.server` with the small model on a free loopback port (and,
with `service`, any other server process: the benchmarks start their peers' with it)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import httpx

from ponder.backends.models import resolve


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def service(
    command: Sequence[str],
    ready_url: str,
    *,
    name: str,
    timeout: float = 120.0,
    env: Mapping[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` until the block ends; ready once `ready_url` answers 200."""
    # a file, not a pipe: servers log a lot, and a full pipe would block them
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    process = subprocess.Popen(
        list(command),
        stdout=subprocess.DEVNULL,
        stderr=log,
        env={**os.environ, **env} if env else None,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"{name} exited: {log.read()[-2000:]!r}")
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start within {timeout:g} s")
            time.sleep(0.5)
        yield process
    finally:
        process.terminate()
        try:
            # a server finishing a request it was given ignores the first signal for a while
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


@contextmanager
def llama_server(
    timeout: float = 120.0, *, n_ctx: int = 2048, threads: int | None = None
) -> Iterator[str]:
    """The server's base URL (`.../v1`); its model is called `small`."""
    path, _ = resolve("small")
    port = free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--n_ctx", str(n_ctx),
        "--host", "127.0.0.1", "--port", str(port), "--model_alias", "small",
    ]  # fmt: skip
    if threads is not None:
        command += ["--n_threads", str(threads), "--n_threads_batch", str(threads)]
    base_url = f"http://127.0.0.1:{port}/v1"
    with service(command, base_url + "/models", name="llama_cpp.server", timeout=timeout):
        yield base_url
