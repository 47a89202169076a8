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


@contextmanager
def serve(port: int, env: dict, log_path: Path | None = None, workers: int = 1):
    """Run `uvicorn guahao.asgi:app` until the block ends; its output goes to log_path."""
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    cmd = [sys.executable, "-m", "uvicorn", "guahao.asgi:app", "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "debug", "--access-log", "--workers", str(workers)]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        end = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"server on {port} did not start (exit {proc.poll()})")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if log_path:
            out.close()


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0
