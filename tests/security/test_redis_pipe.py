"""The rate limiter's own Redis connection (security/redispipe.py): exact counts, the connection's setup
(password, database), and every way Redis can fail — each waiting caller gets an error, never a hang, and
the limiter counts in memory meanwhile."""

import asyncio
import shutil
import socket
import subprocess
import threading
import time

import pytest

from guahao.security.ratelimit import WAITED_FOR_BATCH, RateLimiter, RedisBackend, _PipeBatches
from guahao.security.redispipe import RedisGone, RedisPipe, _Conn, command, pipe_address
from tests.security.conftest import port
from tests.security.redis_server import _wait, private_redis


def test_only_plain_redis_urls_get_the_pipe():
    assert pipe_address("redis://127.0.0.1:6379/1") == ("127.0.0.1", 6379, 1, None, None)
    assert pipe_address("redis://localhost") == ("localhost", 6379, 0, None, None)
    assert pipe_address("redis://bob:p%40ss@h:7000/3") == ("h", 7000, 3, "bob", "p@ss")
    assert pipe_address("redis://:secret@h/0") == ("h", 6379, 0, None, "secret")
    for other in ("rediss://h:6380/0", "unix:///tmp/redis.sock", "redis://h/0?socket_timeout=1", "redis://h/x"):
        assert pipe_address(other) is None
    assert RedisBackend("rediss://127.0.0.1:1/0")._pipe is None  # redis-py's client serves those


def test_command_is_resp():
    assert command("EVAL", "return 1", 0) == b"*3\r\n$4\r\nEVAL\r\n$8\r\nreturn 1\r\n$1\r\n0\r\n"
    assert command("SET", "k", "中") == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\n\xe4\xb8\xad\r\n"


def test_counts_gathered_or_sent_at_once_are_each_callers_own_and_in_its_database():
    with private_redis(port(51)) as r:  # its URL selects database 2
        backend = RedisBackend(r.url)
        assert isinstance(backend._pipe, RedisPipe)

        async def main():
            await backend.warm()
            batches = backend._batches()
            assert isinstance(batches, _PipeBatches)
            sent = []
            send = batches.pipe.send
            batches.pipe.send = lambda payload, answer: (sent.append(payload), send(payload, answer))[1]
            soon = [backend.hit_many_soon(["a", f"own{i}"], [60, 60]) for i in range(150)]
            waited = await asyncio.gather(*(backend.hit_many_async(["a", f"mine{i}"], [60, 60]) for i in range(50)))
            return await asyncio.gather(*soon), waited, sent
        soon, waited, sent = asyncio.run(main())
        import redis

        db2 = redis.Redis(port=r.port, db=2)
        assert int(db2.get(next(iter(db2.scan_iter("a"))))) == 200
        assert redis.Redis(port=r.port, db=0).dbsize() == 0
    shared = sorted([int(s[0]) for s in soon] + [n for (n, _), _ in waited])
    assert shared == list(range(1, 201))  # "a" counted 200 times, each caller saw its own count
    assert all(int(s[2]) == 1 for s in soon) and all(own == 1 for _, (own, _) in waited)
    # The 150 counted soon went together; each waited one at once (with whatever was gathered then).
    assert 0 < len(sent) <= 51


def test_a_password_and_a_database_are_set_up_before_the_first_count():
    if not shutil.which("redis-server"):
        pytest.skip("redis-server not installed")
    p = port(52)
    proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(p), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--requirepass", "s3cret"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(p, up=True)

        async def count(url):
            return await RedisBackend(url).hit_many_async(["k"], [60])
        assert asyncio.run(count(f"redis://:s3cret@127.0.0.1:{p}/4")) == [(1, 60.0)]
        with pytest.raises(Exception) as refused:  # Redis's own error for the count, then the pipe breaks
            asyncio.run(count(f"redis://:wrong@127.0.0.1:{p}/4"))
        assert "NOAUTH" in str(refused.value) or "WRONGPASS" in str(refused.value) or isinstance(refused.value, RedisGone)
        import redis

        assert redis.Redis(port=p, db=4, password="s3cret").get("k") == b"1"
    finally:
        proc.kill()
        proc.wait(5)


class _Silent:
    """A server that accepts and reads, and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self):
        for c in self.conns:
            c.close()
        self.sock.close()


def test_a_redis_that_does_not_answer_fails_every_waiting_caller_within_the_timeout():
    silent = _Silent()
    try:
        pipe = RedisPipe(("127.0.0.1", silent.port, 0, None, None), timeout=0.2)

        async def main():
            loop = asyncio.get_running_loop()
            started = loop.time()
            calls = [pipe.call(command("PING")) for _ in range(3)]
            results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 2)
            return results, loop.time() - started
        results, took = asyncio.run(main())
    finally:
        silent.close()
    assert all(isinstance(r, RedisGone) for r in results)
    assert 0.15 <= took < 1.0


def test_a_lost_connection_fails_its_callers_and_the_next_call_connects_again():
    with private_redis(port(53)) as r:
        pipe = RedisPipe(pipe_address(r.url))

        async def main():
            assert await pipe.call(command("PING")) == b"PONG"
            import redis

            redis.Redis(port=r.port).client_kill_filter(_type="normal")  # as when Redis restarts
            await asyncio.sleep(0.05)
            assert pipe.conn is None
            return await pipe.call(command("INCR", "n"))
        assert asyncio.run(main()) == 1


def test_the_limiter_falls_back_to_memory_when_redis_stops_answering():
    silent = _Silent()
    try:
        limiter = RateLimiter(f"redis://127.0.0.1:{silent.port}/0")

        async def main():
            # 3/60 allowed: counted in memory once Redis is found silent; the fourth is refused there.
            for _ in range(3):
                await limiter.hit_all_async([("k", "3/60")])
            with pytest.raises(Exception) as e:
                await limiter.hit_all_async([("k", "3/60")])
            return e.value
        error = asyncio.run(main())
    finally:
        silent.close()
    assert getattr(error, "code", None) == "RATE_LIMITED"


def test_a_redis_error_reply_goes_to_its_caller_only():
    with private_redis(port(54)) as r:
        pipe = RedisPipe(pipe_address(r.url))

        async def main():
            bad = pipe.call(command("NOSUCHCOMMAND"))
            good = pipe.call(command("INCR", "n"))
            return await asyncio.gather(bad, good, return_exceptions=True)
        bad, good = asyncio.run(main())
    assert isinstance(bad, Exception) and "unknown command" in str(bad).lower()
    assert good == 1


def test_a_caller_failing_on_its_reply_does_not_break_the_connection():
    """Replies are handed to their callers where they are read (release/direct.py continues a booking
    there): one caller's failure must not cost the others their connection."""
    with private_redis(port(56)) as r:
        pipe = RedisPipe(pipe_address(r.url))

        async def main():
            await pipe.call(command("PING"))
            connection = pipe.conn

            def fails(reply):
                raise RuntimeError("a caller's bug")
            pipe.send(command("INCR", "n"), fails)
            after = await pipe.call(command("INCR", "n"))
            return after, pipe.conn is connection
        assert asyncio.run(main()) == (2, True)


def test_counts_waited_for_go_eight_at_a_time_and_the_rest_at_the_end_of_the_round():
    """A booking attempt's count (`hit_many_then`) is not a write to Redis of its own: it goes once eight
    are gathered, without waiting for the loop, and fewer go when the loop's current round ends."""
    with private_redis(port(59)) as r:
        backend = RedisBackend(r.url)

        async def main():
            await backend.warm()
            batches = backend._batches()
            sent = []
            send = batches.pipe.send
            batches.pipe.send = lambda payload, answer: (sent.append(payload), send(payload, answer))[1]
            got = []
            for i in range(WAITED_FOR_BATCH * 2 + 3):  # one round of the loop: no await in between
                backend.hit_many_then([f"k{i}", "all"], [60, 60], got.append)
            within_round = len(sent)
            deadline = time.monotonic() + 2
            while len(got) < WAITED_FOR_BATCH * 2 + 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.001)
            return within_round, len(sent), got
        within_round, sent, got = asyncio.run(main())
    assert WAITED_FOR_BATCH > 1
    assert within_round == 2  # two full batches went at once; the three left wait for the round's end
    assert sent == 3
    alls = sorted(int(flat[2]) for flat in got)
    assert alls == list(range(1, WAITED_FOR_BATCH * 2 + 4))  # each caller its own count, none lost
    assert all(int(flat[0]) == 1 for flat in got)


def test_a_reply_is_taken_up_by_a_poll_between_two_reads_without_a_loop_turn():
    """guahao serve's protocol polls the pipe between two requests' reads (serving.py): a busy loop would
    take the reply up a turn later."""
    with private_redis(port(57)) as r:
        pipe = RedisPipe(pipe_address(r.url))

        async def main():
            await pipe.call(command("PING"))  # connected
            got = []
            pipe.send(command("INCR", "n"), got.append)
            due_before = pipe.due
            deadline = time.monotonic() + 2
            while not got and time.monotonic() < deadline:
                time.sleep(0.005)  # the loop does not run meanwhile: only the poll can read the reply
                pipe.poll()
            return due_before, got, pipe.due
        assert asyncio.run(main()) == (True, [1], False)


def test_a_command_larger_than_the_sockets_buffer_is_written_whole():
    with private_redis(port(58)) as r:
        pipe = RedisPipe(pipe_address(r.url), timeout=5)
        big = b"x" * 8_000_000  # more than a socket takes at once: the rest goes when it can

        async def main():
            stored = await pipe.call(command("SET", "big", big))
            return stored, await pipe.call(command("STRLEN", "big")), pipe.conn.out
        writable = _Conn.writable
        resumed = []
        _Conn.writable = lambda conn: (resumed.append(1), writable(conn))[1]
        try:
            assert asyncio.run(main()) == (b"OK", len(big), [])
        finally:
            _Conn.writable = writable
        assert resumed  # the socket took it in more than one go
