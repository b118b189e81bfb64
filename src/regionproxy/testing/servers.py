"""moto servers on loopback, one per region, in this process or in another.

In-process servers start in milliseconds but share moto's module-global
backends (regions stay apart only by region name) and compete with the code
under test for the GIL. Subprocess servers (``moto_server``) keep their own
state and CPU, which is what benchmarks need.

A server in another process is told its port before it binds it
(:func:`free_port`), and every port chosen so is chosen below the kernel's
ephemeral range: a port the kernel hands out (a bind to port 0, every
outgoing connection) may be handed to another process, another pytest-xdist
worker say, before the server binds it.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.request

from regionproxy.errors import ConfigError

MODES = ("thread", "process")


class MotoServer:
    """One moto server on loopback.

    :param mode: ``thread`` (in this process) or ``process`` (``moto_server``).
    :param host: loopback address to bind.
    """

    def __init__(self, mode: str = "thread", host: str = "127.0.0.1") -> None:
        if mode not in MODES:
            raise ConfigError(f"unknown server mode {mode!r}; use one of {MODES}", setting="mode")
        self.mode = mode
        self.host = host
        self.port = 0
        self._server = None
        self._thread: threading.Thread | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> MotoServer:
        if self.mode == "thread":
            self._start_thread()
        else:
            self._start_process()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def reset(self) -> None:
        """Empty every moto backend this server sees (``POST /moto-api/reset``)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def _start_thread(self) -> None:
        # Imported here: moto takes ~0.4 s to import, and only labs need it.
        from moto.moto_server.threaded_moto_server import MotoRequestHandler
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        class QuietHandler(MotoRequestHandler):
            def log_request(self, *args: object, **kwargs: object) -> None:
                """The lab is quiet by default: no request lines on stderr."""

        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(self.host, 0, app, threaded=True, request_handler=QuietHandler)
        self.port = self._server.server_address[1]
        # serve_forever checks for shutdown every poll_interval (0.5 s by
        # default), which stop() waits out: a short poll makes stop fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"moto:{self.port}", daemon=True
        )
        self._thread.start()

    def _start_process(self) -> None:
        self.port = free_port(self.host)
        command = [sys.executable, "-c", "from moto.server import main; main()", "-H", self.host, "-p", str(self.port)]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self._process.returncode} on port {self.port}")
            try:
                with socket.create_connection(self.address, timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"moto_server did not listen on port {self.port} within 30 s")


# The ports the kernel hands out itself (Linux); 32768 and up where unread.
EPHEMERAL_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"
LOWEST_CHOSEN_PORT = 20_000  # free_port() chooses from here to the ephemeral range


def free_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` that nothing is bound to now, for a server that
    binds it later (a ``moto_server``, gunicorn, an example app).

    Chosen at random below the kernel's ephemeral range and checked by
    binding it: ports in that range go to every bind to port 0 and every
    outgoing connection of every process on the machine, so one read from a
    bind to port 0 and released may be taken by another process (another
    pytest-xdist worker, a concurrent run) before the server binds it;
    below the range only another such choice lands, at random among
    thousands. Where the range leaves no room below it, the kernel chooses.
    """
    low = _ephemeral_low()
    choose = random.SystemRandom()  # not the random module, which a test may seed alike in every worker
    if low - LOWEST_CHOSEN_PORT >= 1000:
        for _ in range(50):
            port = choose.randrange(LOWEST_CHOSEN_PORT, low)
            with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
                try:
                    probe.bind((host, port))
                except OSError:  # in use, or in TIME_WAIT: another
                    continue
            return port
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _ephemeral_low() -> int:
    try:
        with open(EPHEMERAL_RANGE) as ports:
            return int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default
