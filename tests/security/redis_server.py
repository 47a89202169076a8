"""A private redis-server on a port of this branch's range (never the shared one)."""

import shutil
import socket
import subprocess
import time
from contextlib import contextmanager


def _wait(port: int, up: bool, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise TimeoutError(f"redis on {port} did not {'start' if up else 'stop'}")


class PrivateRedis:
    def __init__(self, port: int):
        self.port = port
        self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/2"

    def start(self) -> "PrivateRedis":
        self.proc = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(self.port, up=True)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        _wait(self.port, up=False)


@contextmanager
def private_redis(port: int):
    if not shutil.which("redis-server"):
        import pytest

        pytest.skip("redis-server not installed")
    r = PrivateRedis(port).start()
    try:
        yield r
    finally:
        r.stop()
