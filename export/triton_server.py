"""Start a real Triton Inference Server on 127.0.0.1 for tests, benchmarks and local trials (not for production: see
docs/triton.md for NVIDIA's containers).

The ``tritonserver`` binary comes from the PyPI package ``nvidia-pytriton`` (CPU-capable, with the Python backend).
Its Python-backend stub embeds this interpreter's libpython and finds its site-packages through ``PATH`` (the stub
resolves ``python3`` there, venvs included), so the repository's Python models import this environment's ``runtime``,
``crf`` and numpy. The backend directory (the backend plus the stub for this Python version) is assembled in a
temporary directory; nothing is written into site-packages.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path


class TritonServerError(RuntimeError):
    """The server is not installed, did not start, or died; the message carries the end of its log."""


@dataclass(frozen=True)
class TritonInstall:
    binary: Path
    python_backend: Path  # backends/python: libtriton_python.so + triton_python_backend_utils.py
    stub: Path  # triton_python_backend_stub for this Python version
    libs: Path  # the shared libraries the binary and the stub link against


def find_tritonserver() -> TritonInstall:
    """Locate the ``tritonserver`` that ``nvidia-pytriton`` installs (without importing pytriton)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise TritonServerError("no tritonserver here: pip install nvidia-pytriton (it carries the server binary)")
    root = Path(list(spec.submodule_search_locations)[0])
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    server = root / "tritonserver"
    install = TritonInstall(server / "bin" / "tritonserver", server / "backends" / "python",
                            server / "python_backend_stubs" / version / "triton_python_backend_stub",
                            root.parent / "nvidia_pytriton.libs")
    for what, path in (("server binary", install.binary), ("Python backend", install.python_backend),
                       (f"Python {version} backend stub", install.stub)):
        if not path.exists():
            raise TritonServerError(f"nvidia-pytriton at {root} lacks its {what} ({path})")
    return install


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports free on ``host`` (all held open until all are chosen)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in sockets:
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]


def server_environment(install: TritonInstall, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment under which the stub embeds this interpreter: its libpython and the server's libraries on
    ``LD_LIBRARY_PATH``, and this interpreter's directory first on ``PATH`` (so a venv's site-packages apply)."""
    env = dict(os.environ if base is None else base)
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    paths = (str(install.libs), libdir, env.get("LD_LIBRARY_PATH", ""))
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in paths if p)
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
    env.pop("PYTHONHOME", None)
    return env


class LocalTritonServer:
    """``with LocalTritonServer(repo) as server:`` a tritonserver on free 127.0.0.1 ports, ready on entry, stopped
    (with its Python-backend stubs) on exit, whatever happened in between."""

    def __init__(self, repository: str | os.PathLike[str], *, ready_timeout_s: float = 120.0,
                 log_path: str | os.PathLike[str] | None = None, extra_args: tuple[str, ...] = ()) -> None:
        self.repository = Path(repository)
        self.ready_timeout_s = ready_timeout_s
        self.extra_args = extra_args
        self.http_port = self.grpc_port = self.metrics_port = 0
        self.process: subprocess.Popen | None = None
        self._workdir: Path | None = None
        self._log_path = Path(log_path) if log_path else None

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def url(self, protocol: str) -> str:
        return self.grpc_url if protocol == "grpc" else self.http_url

    def start(self) -> "LocalTritonServer":
        install = find_tritonserver()
        self._workdir = Path(tempfile.mkdtemp(prefix="deeplab-triton-"))
        backends = self._workdir / "backends"
        shutil.copytree(install.python_backend, backends / "python",
                        ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy2(install.stub, backends / "python" / "triton_python_backend_stub")
        log_path = self._log_path or self._workdir / "tritonserver.log"
        self._log_path = log_path
        self.http_port, self.grpc_port, self.metrics_port = free_ports(3)
        cmd = [str(install.binary), "--model-repository", str(self.repository.resolve()),
               "--backend-directory", str(backends), "--http-address", "127.0.0.1", "--http-port", str(self.http_port),
               "--grpc-address", "127.0.0.1", "--grpc-port", str(self.grpc_port),
               "--metrics-address", "127.0.0.1", "--metrics-port", str(self.metrics_port),
               "--allow-gpu-metrics", "false", "--exit-timeout-secs", "5", *self.extra_args]
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env=server_environment(install), start_new_session=True)
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise TritonServerError(f"tritonserver exited (code {self.process.returncode if self.process else '?'})"
                                        f" before it was ready:\n{self.log_tail()}")
            if self.is_ready():
                return
            time.sleep(0.2)
        raise TritonServerError(f"tritonserver not ready after {self.ready_timeout_s:.0f} s:\n{self.log_tail()}")

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=10) as r:
            return r.read().decode()

    def log_tail(self, lines: int = 20) -> str:
        """The server log's error lines (model load failures, with the Python traceback's last line), else its end."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        text = self._log_path.read_text(errors="replace").splitlines()
        errors = [line for line in text if line.startswith("E") or "UNAVAILABLE" in line or "error" in line.lower()]
        return "\n".join((errors or text)[-lines:])

    def kill(self) -> None:
        """SIGKILL the server and its stubs at once (to test clients against a server that dies)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """SIGTERM (Triton drains for up to 5 s), then SIGKILL the whole process group; remove the work directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # stubs left behind, if any
            except ProcessLookupError:
                pass
            self.process.wait()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> "LocalTritonServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
