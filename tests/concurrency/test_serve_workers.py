"""`guahao serve --workers N`: each worker listens on a socket of its own (SO_REUSEPORT), so the kernel
spreads connections over the workers instead of the first idle one taking them (guahao/serving.py)."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sockets(port: int, state: str) -> set[str]:
    """Inodes of the IPv4 sockets on local `port` in `state` ('0A' listening, '01' established)."""
    out = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if int(f[1].split(":")[1], 16) == port and f[3] == state:
            out.add(f[9])
    return out


def _socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[8:-1])
    return out


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _serve(tmp_path, port: int, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, GUAHAO_DATABASE_URL=f"sqlite:///{tmp_path}/serve.db")
    env.pop("GUAHAO_REDIS_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "guahao.cli", "serve", "--workers", "2", "--port", str(port), "--log-level",
         "warning", "--no-access-log", *extra],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def _up(proc: subprocess.Popen, port: int, workers: int = 2) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode(errors="replace")
        try:
            # Every worker answers once it is up; with one socket each, both are listening by then.
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200 and \
                    len(_children(proc.pid)) >= workers:
                time.sleep(1.0)
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not come up")


def _stop(proc: subprocess.Popen) -> None:
    import signal

    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_each_worker_listens_on_its_own_socket_and_gets_connections(tmp_path):
    port = _free_port()
    proc = _serve(tmp_path, port)
    try:
        _up(proc, port)
        assert len(_sockets(port, "0A")) == 2
        clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}") for _ in range(64)]
        try:
            for c in clients:
                assert c.get("/healthz").status_code == 200  # keeps its connection open
            established = _sockets(port, "01")
            held = [len(_socket_inodes(w) & established) for w in _children(proc.pid)]
            held = [n for n in held if n]
            # Spread by a hash of the client's port: each worker holds a share (binomial, 64 draws).
            assert len(held) == 2 and sum(held) == 64 and min(held) >= 12, held
        finally:
            for c in clients:
                c.close()
    finally:
        _stop(proc)


def test_no_reuse_port_is_uvicorns_single_shared_socket(tmp_path):
    port = _free_port()
    proc = _serve(tmp_path, port, "--no-reuse-port")
    try:
        _up(proc, port)
        assert len(_sockets(port, "0A")) == 1
    finally:
        _stop(proc)


def test_a_taken_port_is_a_clear_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _serve(tmp_path, port)
        try:
            assert proc.wait(60) == 1
        finally:
            if proc.poll() is None:
                _stop(proc)
        err = proc.stderr.read().decode()
        assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err
