"""A real ``redis-server`` on loopback for fleet drills: start, pause, kill, restart.

:class:`RedisServer` runs the system's ``redis-server`` (Debian's package;
``REGIONPROXY_REDIS_SERVER`` names another binary) on a free loopback port
in a directory of its own, with no persistence unless asked. The faults a
fleet must survive are real ones: :meth:`RedisServer.pause` stops the
process (SIGSTOP: connections stay open, nothing answers),
:meth:`RedisServer.kill` ends it (SIGKILL: connections reset), and
:meth:`RedisServer.restart` starts it again on the same port, so clients
that know the URL find it back.

It speaks to the server only through raw sockets (``PING``), so the test
harness does not need redis-py.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from regionproxy.errors import ConfigError

START_TIMEOUT = 10.0


class RedisServer:
    """One ``redis-server`` process on loopback.

    :param password: require this password (``requirepass``); the URL carries it.
    :param persist: keep the data across :meth:`kill` and :meth:`restart`
        (an append-only file, fsync'd on every write).
    :param directory: where its files go; a temporary directory by default,
        removed by :meth:`stop`.
    :param binary: the ``redis-server`` to run.
    :param tls: serve TLS only (``rediss://``), with a certificate of a CA
        made for this server (:class:`~regionproxy.testing.tls.LabCertificates`);
        :attr:`url` tells clients to trust it (``ssl_ca_certs=``).
    """

    def __init__(
        self,
        *,
        password: str | None = None,
        persist: bool = False,
        directory: str | os.PathLike[str] | None = None,
        binary: str | None = None,
        host: str = "127.0.0.1",
        tls: bool = False,
    ) -> None:
        self.binary = (
            binary or os.environ.get("REGIONPROXY_REDIS_SERVER") or shutil.which("redis-server") or "/usr/bin/redis-server"
        )
        if not Path(self.binary).exists():
            raise ConfigError(f"no redis-server at {self.binary} (Debian: apt-get install redis-server)", setting="binary")
        self.password = password
        self.persist = persist
        self.host = host
        self.port = 0
        self._own_directory = directory is None
        self.directory = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="regionproxy-redis-"))
        self._process: subprocess.Popen[bytes] | None = None
        self._paused = False
        self.certificates = None
        if tls:
            from regionproxy.testing.tls import LabCertificates

            self.certificates = LabCertificates(host)

    def __repr__(self) -> str:
        state = "paused" if self._paused else "running" if self.running else "stopped"
        return f"RedisServer(port={self.port}, {state})"

    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:port/0``, or with ``tls``
        ``rediss://...?ssl_ca_certs=<the CA>``."""
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        if self.certificates is not None:
            return f"rediss://{auth}{self.host}:{self.port}/0?ssl_ca_certs={quote(self.certificates.ca_bundle, safe='')}"
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> RedisServer:
        """Start it, on a free port the first time, on the same port after."""
        if self.running:
            return self
        if not self.port:
            self.port = _free_port(self.host)
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.persist else "no",
            "--appendfsync", "always",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str(self.directory / "redis.log"),
            "--protected-mode", "no",
        ]  # fmt: skip
        if self.password:
            command += ["--requirepass", self.password]
        if self.certificates is not None:
            command[command.index("--port") + 1] = "0"
            command += [
                "--tls-port", str(self.port),
                "--tls-cert-file", self.certificates.certificate,
                "--tls-key-file", self.certificates.key,
                "--tls-ca-cert-file", self.certificates.ca_bundle,
                "--tls-auth-clients", "no",
            ]  # fmt: skip
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._paused = False
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._process.returncode}; see {self.directory / 'redis.log'}")
            if self.ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {START_TIMEOUT:.0f} s")

    def ping(self, timeout: float = 0.5) -> bool:
        """Whether it answers PING now (authenticated if it has a password)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout) as plain:
                connection = plain
                if self.certificates is not None:
                    context = ssl.create_default_context(cafile=self.certificates.ca_bundle)
                    connection = context.wrap_socket(plain, server_hostname=self.host)
                if self.password:
                    connection.sendall(_command("AUTH", self.password))
                    if not _reply(connection).startswith(b"+OK"):
                        return False
                connection.sendall(_command("PING"))
                return _reply(connection).startswith(b"+PONG")
        except OSError:
            return False

    def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing answers, until :meth:`resume`."""
        assert self._process is not None and self.running, "not running"
        os.kill(self._process.pid, signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        assert self._process is not None, "not running"
        os.kill(self._process.pid, signal.SIGCONT)
        self._paused = False

    def kill(self) -> None:
        """SIGKILL: the process is gone, its connections reset; the port is free."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait(timeout=10)
        self._paused = False

    def restart(self) -> RedisServer:
        """Kill it (if running) and start it again on the same port."""
        self.kill()
        return self.start()

    def stop(self) -> None:
        """End it and remove its directory (if it made it)."""
        if self._paused:
            self.resume()
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)
        if self.certificates is not None:
            self.certificates.remove()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _command(*words: str) -> bytes:
    encoded = [word.encode() for word in words]
    return b"*%d\r\n" % len(encoded) + b"".join(b"$%d\r\n%s\r\n" % (len(word), word) for word in encoded)


def _reply(connection: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = connection.recv(256)
        if not chunk:
            break
        data += chunk
    return data


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
