"""Run localstripe (a stateful fake Stripe from PyPI) for the tests, on 127.0.0.1 only.

localstripe 1.15 is adjusted by a small runner before it starts:
- it listens on every interface ('::'); here it binds the loopback address alone;
- it writes its state to the literal path /tmp/localstripe.pickle, so two instances would share
  it; the state file follows the process's TMPDIR, which each instance gets of its own;
- its Stripe.js stand-in declares `class Element` at the top level of a classic script, which
  shadows the DOM's `Element` for every script of the page and breaks Bootstrap there. Real
  Stripe.js keeps its names to itself; the stand-in is served wrapped in a block to do the same.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STARTUP_SECONDS = 20

_RUNNER = """
import os, pickle, sys, tempfile
from aiohttp import web
from localstripe import resources, server

STATE = os.path.join(tempfile.gettempdir(), "localstripe.pickle")

def dump_to_disk(store):
    with open(STATE, "wb") as state:
        pickle.dump(store, state, protocol=pickle.HIGHEST_PROTOCOL)

resources.Store.dump_to_disk = dump_to_disk

@web.middleware
async def scoped_stand_in(request, handler):
    response = await handler(request)
    if request.path == "/js.stripe.com/v3/" and response.status == 200:
        response.text = "{\\n" + response.text + "\\n}\\n"
    return response

server.app.middlewares.append(scoped_stand_in)
web.run_app(server.app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_localstripe(workdir: Path) -> Iterator[str]:
    """Start a localstripe from scratch in `workdir`; yield its base URL; stop it."""
    state_dir = workdir / "tmp"
    state_dir.mkdir(parents=True, exist_ok=True)
    port = free_loopback_port()
    log_path = workdir / "localstripe.log"
    env = {**os.environ, "TMPDIR": str(state_dir)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", _RUNNER, str(port)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        # Start-up of another process, not a test's timing: wait until it accepts connections.
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"localstripe did not start:\n{log_path.read_text()}")
            try:
                process.wait(timeout=0.05)  # notices a server that died at once
            except subprocess.TimeoutExpired:
                continue
            raise RuntimeError(f"localstripe exited:\n{log_path.read_text()}")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
