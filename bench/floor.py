"""What one answer costs the server below the application, measured side by side.

    .venv/bin/python bench/floor.py [--seconds 6] [--rounds 2] [--out floor.json]

Each server answers every request with the same canned 409 (a sold-out refusal's size), in N worker
processes on SO_REUSEPORT sockets, hammered with a booking request by the compiled load generator
(bench/burstgen.c) over 256 connections:

- `raw`: a bare asyncio protocol on uvloop, finding the request's end itself;
- `httptools`: the same with httptools' parser and its callbacks;
- `uvicorn`: uvicorn's httptools protocol and a trivial ASGI app (scope, task, send messages);
- `guahao`: guahao serve's protocol (guahao/serving.py) with the same trivial app.

It prints answers/s and the server's CPU per answer (from /proc, user + system), rounds alternated. The
release burst's sold-out answers cost ~210 µs of server CPU through the whole application, where these
floors are ~8 / 8 / 30 µs (2026-11-30): what release/inline.py was built on.
"""

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BODY = '{"error":{"code":"SESSION_FULL","message":"该出诊已约满"}}'.encode()
ANSWER = (b"HTTP/1.1 409 Conflict\r\ncontent-length: %d\r\ncontent-type: application/json\r\n\r\n"
          % len(BODY)) + BODY
KINDS = ("raw", "httptools", "uvicorn", "guahao")


class Raw(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""

    def data_received(self, data):
        buf = self.buffer + data if self.buffer else data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15:head.find(b"\r\n", at)]) if at >= 0 else 0
            if len(buf) < end + 4 + length:
                break
            buf = buf[end + 4 + length:]
            self.transport.write(ANSWER)
        self.buffer = buf


class Parsed(asyncio.Protocol):
    def connection_made(self, transport):
        import httptools

        self.transport, self.parser, self.headers = transport, httptools.HttpRequestParser(self), []

    def on_url(self, url):
        self.url = url

    def on_header(self, name, value):
        self.headers.append((name.lower(), value))

    def on_message_complete(self):
        self.headers = []
        self.transport.write(ANSWER)

    def data_received(self, data):
        self.parser.feed_data(data)


async def trivial(scope, receive, send):
    if scope["type"] != "http":
        return
    await receive()
    await send({"type": "http.response.start", "status": 409,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]})
    await send({"type": "http.response.body", "body": BODY})


def serve(kind: str, port: int) -> None:
    from guahao.serving import reuse_port_socket

    sock = reuse_port_socket(("127.0.0.1", port))
    if kind in ("uvicorn", "guahao"):
        import uvicorn

        from guahao.serving import http_protocol

        http = http_protocol() if kind == "guahao" else "httptools"
        config = uvicorn.Config(trivial, loop="uvloop", http=http, access_log=False, log_level="warning",
                                lifespan="off")
        uvicorn.Server(config).run(sockets=[sock])
        return
    import uvloop

    loop = uvloop.new_event_loop()
    sock.listen(1024)
    loop.run_until_complete(loop.create_server(Raw if kind == "raw" else Parsed, sock=sock))
    loop.run_forever()


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def request() -> bytes:
    body = b'{"slot_id": 12345, "patient_id": 678, "insurance_type": "self_pay"}'
    return (b"POST /api/v1/appointments HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + b"x" * 180
            + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


def measure(kind: str, port: int, workers: int, seconds: float, connections: int) -> dict:
    from bench import burstgen

    pids = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            try:
                serve(kind, port)
            finally:
                os._exit(0)
        pids.append(pid)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(1.0)
        before = cpu_seconds(pids)
        r = burstgen.hammer(f"http://127.0.0.1:{port}", [request()], seconds, connections)
        used = cpu_seconds(pids) - before
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    if set(r["codes"]) != {"SESSION_FULL"}:
        raise RuntimeError(f"{kind}: unexpected answers {r['codes']}")
    return dict(kind=kind, answers_per_s=r["rate"], server_cpu_us_per_answer=round(used / r["requests"] * 1e6, 1),
                latency_ms=r["latency_ms"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--connections", type=int, default=256)
    p.add_argument("--port", type=int, default=8390)
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--out")
    args = p.parse_args(argv)
    kinds = args.kinds.split(",")
    rows = []
    for rnd in range(args.rounds):
        for i, kind in enumerate(kinds):
            row = measure(kind, args.port + i + rnd * len(kinds), args.workers, args.seconds, args.connections)
            rows.append(row | dict(round=rnd))
            print(f"{kind:10s} {row['answers_per_s']:9.0f} answers/s  server CPU {row['server_cpu_us_per_answer']:6.1f}"
                  f" µs/answer  p50/p99 {row['latency_ms']['p50']}/{row['latency_ms']['p99']} ms", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(dict(workers=args.workers, connections=args.connections,
                                                  seconds=args.seconds, rows=rows), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
