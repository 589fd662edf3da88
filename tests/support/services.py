"""Real services for tests on loopback: redis-server, mosquitto and a moto S3 server."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """End a server this test started (by its pid), waiting for it; None to store back."""
    if process is not None:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class RedisServer:
    """A real ``redis-server`` that a test can stop and start again on the same port."""

    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `make test` (it installs it)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        self.process = stop_process(self.process)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class MotoServer:
    """moto's S3 emulator in server mode, spoken to over real HTTP."""

    port: int = field(default_factory=free_port)
    _server: object | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        server.start()
        self._server = server
        wait_for_port(self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()  # type: ignore[attr-defined]
            self._server = None


@dataclass
class MosquittoServer:
    """A real ``mosquitto`` broker on loopback (persistent sessions; optional password file),
    which a test may stop and start again on the same port."""

    workdir: Path
    port: int = field(default_factory=free_port)
    users: dict[str, str] = field(default_factory=dict)  # empty: anonymous clients allowed
    tls: tuple[Path, Path, Path] | None = None  # (ca, server cert, server key): TLS only
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise RuntimeError("mosquitto is not installed: run scripts/ensure-services.sh")
        self.workdir.mkdir(parents=True, exist_ok=True)
        lines = [
            # As root mosquitto would switch to its own user, who cannot read the test's files.
            f"user {getpass.getuser()}",
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {self.workdir}/",
            "autosave_interval 1",
        ]
        if self.tls is not None:
            ca, cert, key = self.tls
            lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
        if self.users:
            passwords = self.workdir / "passwords"
            passwords.write_text("")
            for user, password in self.users.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(passwords), user, password],
                    check=True,
                    capture_output=True,
                )
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        config = self.workdir / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen(
            [binary, "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "mosquitto.log").open("ab"),
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        self.process = stop_process(self.process)
