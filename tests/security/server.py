"""Real server processes (uvicorn) for tests that need logs, several processes or killed connections."""

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def base_env(database_url: str, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUAHAO_")}
    env.update(GUAHAO_ENVIRONMENT="test", GUAHAO_DATABASE_URL=database_url, GUAHAO_ARGON2_TIME_COST="1",
               GUAHAO_ARGON2_MEMORY_KIB="1024", PYTHONPATH=str(ROOT))
    env.update({k: str(v) for k, v in extra.items()})
    return env


def migrate(env: dict) -> None:
    subprocess.run([sys.executable, "-m", "guahao.cli", "db", "upgrade"], env=env, cwd=ROOT, check=True,
                   capture_output=True, timeout=120)


def _start(port: int, env: dict, out, workers: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "uvicorn", "guahao.asgi:app", "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "debug", "--access-log", "--workers", str(workers)]
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def _wait_up(port: int, proc: subprocess.Popen) -> None:
    end = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > end:
            raise RuntimeError(f"server on {port} did not start (exit {proc.poll()})")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@contextmanager
def serve_many(ports: list[int], env: dict, log_path: Path | None = None, workers: int = 1):
    """Run one `uvicorn guahao.asgi:app` per port (started together) until the block ends."""
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    procs = [_start(p, env, out, workers) for p in ports]
    try:
        for p, proc in zip(ports, procs):
            _wait_up(p, proc)
        yield [f"http://127.0.0.1:{p}" for p in ports]
    finally:
        for proc in procs:
            _stop(proc)
        if log_path:
            out.close()


@contextmanager
def serve(port: int, env: dict, log_path: Path | None = None, workers: int = 1):
    with serve_many([port], env, log_path, workers) as (base,):
        yield base


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0
