"""Fixed-window rate limits shared by every server process.

Production: Redis (one atomic Lua script per hit, so N processes share one counter). Embedded default
(no GUAHAO_REDIS_URL): process memory. If Redis is unreachable the limiter falls back to process memory
for a cool-down and retries later: a limiter outage must never fail a request (the database, not Redis,
guards capacity).

Use from a route (or another feature, e.g. SMS codes):

    from guahao.security.ratelimit import limit
    limit(request, f"sms:ip:{ip}", "5/60")          # raises DomainError RATE_LIMITED (429 + Retry-After)

A rate is "COUNT/SECONDS". Keys are hashed before they reach Redis or memory, so a phone or ID number
used as a key is never stored in the clear.
"""

import asyncio
import hashlib
import logging
import math
import threading
import time
from dataclasses import dataclass
from functools import lru_cache

from guahao.errors import DomainError
from guahao.security.redispipe import RedisPipe, command, pipe_address

log = logging.getLogger("guahao.ratelimit")
PREFIX = "guahao:rl:"

# KEYS: counters; ARGV: their windows in ms. Returns {count1, ttl1 ms, count2, ttl2, ...}: several limits
# cost one round trip.
_LUA = """
local out = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('PEXPIRE', key, ARGV[i]) end
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then redis.call('PEXPIRE', key, ARGV[i]); ttl = tonumber(ARGV[i]) end
  out[#out + 1] = n
  out[#out + 1] = ttl
end
return out
"""


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: float

    @classmethod
    def parse(cls, text: "str | Rate") -> "Rate":
        if isinstance(text, Rate):
            return text
        count, _, seconds = str(text).partition("/")
        rate = cls(int(count), float(seconds))
        if rate.count < 1 or rate.seconds <= 0:
            raise ValueError(f"bad rate {text!r}: want COUNT/SECONDS")
        return rate


class MemoryBackend:
    """Per-process counters (embedded default, and the fallback while Redis is down)."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, key: str, window: float) -> tuple[int, float]:
        now = self._clock()
        with self._lock:
            if len(self._windows) > 100_000:
                self._windows = {k: v for k, v in self._windows.items() if v[0] > now}
            ends, n = self._windows.get(key, (0.0, 0))
            if ends <= now:
                ends, n = now + window, 0
            n += 1
            self._windows[key] = (ends, n)
            return n, ends - now


class RedisBackend:
    def __init__(self, url: str, timeout: float = 0.25):
        import redis

        self._url, self._timeout = url, timeout
        self._redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._script = self._redis.register_script(_LUA)
        self._async = None  # (event loop, batches) — an asyncio connection belongs to the loop that made it
        address = pipe_address(url)
        # The event loop's counts go through guahao's own connection (security/redispipe.py) where the URL
        # is a plain redis:// one, otherwise through redis-py's asyncio client.
        self._pipe = RedisPipe(address, timeout) if address is not None else None

    def hit_many(self, keys: list[str], windows: list[float]) -> list[tuple[int, float]]:
        return _pairs(self._script(keys=keys, args=_ms(windows)))

    async def hit_many_async(self, keys: list[str], windows: list[float]) -> list[tuple[int, float]]:
        """The same on the event loop without blocking it: the loop serves other requests meanwhile."""
        return _pairs(await self.hit_many_soon(keys, windows, urgent=True))

    def hit_many_soon(self, keys: list[str], windows: list[float], urgent: bool = False) -> asyncio.Future:
        """Counted with the loop's next batch (`urgent`: sent now, with whatever is gathered); the future
        holds the script's flat answer."""
        return self._batches().hit_soon(keys, _ms(windows), urgent)

    def answers_by_callback(self) -> bool:
        """Whether `hit_many_then` can count here (guahao's own connection; redis-py's client answers
        through futures only)."""
        return isinstance(self._batches(), _PipeBatches)

    def hit_many_then(self, keys: list[str], windows: list[float], then) -> None:
        """Sent with the next few counts (WAITED_FOR_BATCH); `then(flat answer or exception)` is called where
        the reply is read."""
        self._batches().hit_then(keys, _ms(windows), then)

    def counts_pending(self) -> bool:
        """Whether counts of this loop are gathered or sent and not answered yet (bench/hotpath_cost.py waits
        for them: their CPU is the answers')."""
        if self._async is None:
            return False
        batches = self._async[1]
        if isinstance(batches, _PipeBatches):
            return bool(batches.waiting or batches.pipe.waiting)
        return bool(batches.waiting or batches.sending)

    def _batches(self) -> "_Batches | _PipeBatches":
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            if self._pipe is not None:
                self._async = (loop, _PipeBatches(self._pipe))
            else:
                import redis.asyncio as aredis

                # Blocking pool: an exhausted non-blocking one raises instead of waiting for a connection.
                pool = aredis.BlockingConnectionPool.from_url(
                    self._url, max_connections=64, timeout=2.0,
                    socket_timeout=self._timeout, socket_connect_timeout=self._timeout)
                self._async = (loop, _Batches(aredis.Redis(connection_pool=pool).register_script(_LUA)))
        return self._async[1]

    async def warm(self, connections: int = 8) -> None:
        """Connect ahead (the server's start): at the release instant the first attempts of a process
        would otherwise wait for its connection and the script's first load (a worker's first ~100
        attempts waited ~75 ms for that, bench/release_burst.py with timings on both sides)."""
        batches = self._batches()
        if isinstance(batches, _PipeBatches):
            await batches.pipe.call(command("SCRIPT", "LOAD", _LUA))
            return
        script = batches.script
        await script.registered_client.script_load(_LUA)
        await asyncio.gather(*(script.registered_client.ping() for _ in range(connections)))


class _Batches:
    """Counts from one event loop gathered into one script call per loop iteration (redis-py's client).

    At the release instant hundreds of booking attempts arrive within milliseconds, and a round trip
    through redis-py's asyncio client costs more CPU than the counting itself (a quarter of a refused
    attempt's CPU, profiled at T). The script counts its keys one after another, so a batch answers each
    caller exactly as its own call would have. A batch leaves with the loop's next turn, without waiting
    for the one before it to come back (Redis runs scripts one at a time, each atomically): a caller waits
    for one round trip, not for the end of someone else's first."""

    def __init__(self, script):
        self.script = script
        self.waiting: list[tuple[list[str], list[int], asyncio.Future]] = []
        self.gathering = False
        self.sending: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks

    async def hit(self, keys: list[str], windows_ms: list[int]) -> list:
        return await self.hit_soon(keys, windows_ms)

    def hit_soon(self, keys: list[str], windows_ms: list[int], urgent: bool = False) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.waiting.append((keys, windows_ms, future))
        if not self.gathering:
            self.gathering = True
            task = loop.create_task(self._send())
            self.sending.add(task)
            task.add_done_callback(self.sending.discard)
        return future

    async def _send(self) -> None:
        # Runs the loop's turn after the first caller: everyone who arrived meanwhile goes in this batch.
        batch, self.waiting, self.gathering = self.waiting, [], False
        try:
            flat = await self.script(keys=[k for b in batch for k in b[0]], args=[w for b in batch for w in b[1]])
        except Exception as e:  # every caller falls back on its own (RateLimiter._hit_async)
            _fail(batch, e)
            return
        _share(batch, flat)


# A count someone waits for (`hit_then`: a booking attempt on its way to the database) goes out once this
# many counts are gathered, or at the end of the loop's current round of reads, whichever comes first. Sent
# one by one, each of the release instant's first wave (~128 attempts read in one round per worker) was a
# write to Redis of its own: a system call that gives up the interpreter and wakes Redis, 15% of the workers'
# sampled time in the HTTP booking capacity phase (py-spy). Eight at a time, an attempt waits for at most
# seven more requests to be read (~0.5 ms). bench/release_burst.py, four alternated pairs each: p99 119 /
# 213 / 150 / 248 against 174 / 212 / 242 / 222 ms (flat popularity), 121 / 92 / 158 / 134 against 130 / 170
# / 177 / 132 ms (main scenario), on a slow machine (trivial endpoint 1,748–2,933 /s).
WAITED_FOR_BATCH = 8


class _PipeBatches:
    """`_Batches` over guahao's own connection (security/redispipe.py), without a task: the batch is
    written by a callback at the end of the loop's current round of reads, or sooner for callers who wait for
    their counts (see WAITED_FOR_BATCH), and the reply answers the callers as it arrives."""

    def __init__(self, pipe: RedisPipe):
        self.pipe = pipe
        self.waiting: list[tuple[list[str], list[int], asyncio.Future]] = []
        self.flushing = None  # the loop's handle of the next `flush`

    def hit_soon(self, keys: list[str], windows_ms: list[int], urgent: bool = False) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._gathered((keys, windows_ms, future), now=urgent)
        return future

    def hit_then(self, keys: list[str], windows_ms: list[int], then) -> None:
        """Sent with the next few (WAITED_FOR_BATCH); `then(flat answer or exception)` is called where the
        reply is read (no loop turn in between, unlike a future's callbacks)."""
        self._gathered((keys, windows_ms, then), now=len(self.waiting) + 1 >= WAITED_FOR_BATCH)

    def _gathered(self, entry: tuple, now: bool) -> None:
        """Add a caller's count; the batch goes `now`, else at the end of the loop's current round."""
        self.waiting.append(entry)
        if now:
            self.flush()
        elif self.flushing is None:
            self.flushing = asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        if self.flushing is not None:
            self.flushing.cancel()
            self.flushing = None
        batch, self.waiting = self.waiting, []
        if not batch:
            return
        keys = [k for b in batch for k in b[0]]
        payload = command("EVAL", _LUA, len(keys), *keys, *(w for b in batch for w in b[1]))
        try:
            self.pipe.send(payload, lambda reply: _answered(batch, reply))
        except Exception as e:
            _fail(batch, e)


def _answered(batch, reply) -> None:
    if isinstance(reply, BaseException):
        _fail(batch, reply)
    else:
        _share(batch, reply)


def _fail(batch, error: BaseException) -> None:
    for _, _, future in batch:
        if callable(future):  # _PipeBatches.hit_then
            future(error)
        elif not future.done():
            future.set_exception(error)


def _share(batch, flat) -> None:
    """Each caller's part of a batch's flat answer."""
    at = 0
    for keys, _, future in batch:
        mine = flat[at:at + 2 * len(keys)]
        if callable(future):  # _PipeBatches.hit_then
            future(mine)
        elif not future.done():
            future.set_result(mine)
        at += 2 * len(keys)


def _pairs(flat) -> list[tuple[int, float]]:
    return [(int(flat[i]), int(flat[i + 1]) / 1000) for i in range(0, len(flat), 2)]


class RateLimiter:
    def __init__(self, url: str | None = None, enabled: bool = True, cooldown: float = 5.0):
        self.enabled = enabled
        self.memory = MemoryBackend()
        self.redis = RedisBackend(url) if url else None
        self._cooldown = cooldown
        self._redis_down_until = 0.0
        self._over: dict[str, float] = {}  # key -> monotonic end of its window, once seen over its rate

    def _in_memory(self, keys: list[str], windows: list[float]) -> list[tuple[int, float]]:
        return [self.memory.hit(k, w) for k, w in zip(keys, windows)]

    def _redis_usable(self) -> bool:
        return self.redis is not None and time.monotonic() >= self._redis_down_until

    def _redis_failed(self, e: Exception) -> None:  # any Redis failure: degrade, never fail the request
        self._redis_down_until = time.monotonic() + self._cooldown
        log.warning("rate limiter: Redis unavailable (%s); using process memory for %.0fs",
                    type(e).__name__, self._cooldown)

    def _hit(self, keys: list[str], windows: list[float]) -> list[tuple[int, float]]:
        if self._redis_usable():
            try:
                return self.redis.hit_many(keys, windows)
            except Exception as e:
                self._redis_failed(e)
        return self._in_memory(keys, windows)

    async def _hit_async(self, keys: list[str], windows: list[float]) -> list[tuple[int, float]]:
        if self._redis_usable():
            try:
                return await self.redis.hit_many_async(keys, windows)
            except Exception as e:
                self._redis_failed(e)
        return self._in_memory(keys, windows)

    def count_soon(self, limits: list[tuple[str, "str | Rate"]]) -> bool:
        """Count one attempt under each key without waiting for the count, for an attempt whose answer is
        already known to be a refusal that changes nothing (the release gate's sold-out answer): it spends
        its budget all the same, but its answer does not wait for a Redis round trip.

        Returns False when this process has already seen one of the keys over its rate (an earlier count's
        answer, here or on the waiting path) or, without Redis, when this count is over it: the caller
        then answers through `hit_all_async`, which gives the 429. So an attempt answered here gets the
        refusal instead of a 429 only while its own count, or one sent with it, is the first to cross the
        rate in this process."""
        if not self.enabled or not limits:
            return True
        keys, rates = _keys(limits)
        over = self._over
        if over:
            m = time.monotonic()
            for k in keys:
                until = over.get(k)
                if until is not None and until > m:
                    return False
        windows = [r.seconds for r in rates]
        if self._redis_usable():
            try:
                future = self.redis.hit_many_soon(keys, windows)
            except Exception as e:
                self._redis_failed(e)
            else:
                future.add_done_callback(lambda f: self._counted(f, keys, rates, windows))
                return True
        return self._note(keys, rates, self._in_memory(keys, windows))

    def pipe(self) -> RedisPipe | None:
        """guahao's own Redis connection for the event loop's counts, if this limiter has one (guahao serve's
        protocol reads its replies between two requests' reads)."""
        return self.redis._pipe if self.redis is not None else None

    def can_count_then(self) -> bool:
        """Whether `count_then` can answer here: limits off, counted in memory, or over guahao's own Redis
        connection."""
        return not self.enabled or not self._redis_usable() or self.redis.answers_by_callback()

    def count_then(self, limits: list[tuple[str, "str | Rate"]], then) -> None:
        """Count one attempt under each key and call `then(None)`, or `then(RATE_LIMITED error)`, where the
        answer is known: at once without Redis, else where Redis's reply is read (release/direct.py).
        Redis failing: counted in memory, as `hit_all_async` does."""
        if not self.enabled or not limits:
            return then(None)
        keys, rates = _keys(limits)
        windows = [r.seconds for r in rates]

        def counted(counts: list[tuple[int, float]]) -> None:
            self._note(keys, rates, counts)
            then(_limited(counts, rates))

        def replied(flat) -> None:
            if isinstance(flat, BaseException):
                self._redis_failed(flat)
                return counted(self._in_memory(keys, windows))
            counted(_pairs(flat))
        if self._redis_usable() and self.redis.answers_by_callback():
            return self.redis.hit_many_then(keys, windows, replied)
        counted(self._in_memory(keys, windows))

    def _counted(self, future: asyncio.Future, keys: list[str], rates: list[Rate], windows: list[float]) -> None:
        if future.cancelled():
            counts = self._in_memory(keys, windows)
        elif future.exception() is not None:
            self._redis_failed(future.exception())
            counts = self._in_memory(keys, windows)
        else:
            counts = _pairs(future.result())
        self._note(keys, rates, counts)

    def _note(self, keys: list[str], rates: list[Rate], counts: list[tuple[int, float]]) -> bool:
        """Remember the keys these counts put over their rates; False if any is."""
        fine = True
        for k, rate, (n, remaining) in zip(keys, rates, counts):
            if n > rate.count:
                fine = False
                m = time.monotonic()
                if len(self._over) > 100_000:
                    self._over = {key: t for key, t in self._over.items() if t > m}
                self._over[k] = m + remaining
        return fine

    def hit(self, key: str, rate: "str | Rate") -> None:
        """Count one attempt under `key`; raise RATE_LIMITED once the rate is exceeded."""
        self.hit_all([(key, rate)])

    def hit_all(self, limits: list[tuple[str, "str | Rate"]]) -> None:
        """Count one attempt under each key (one Redis round trip); raise RATE_LIMITED if any is over."""
        if self.enabled and limits:
            keys, rates = _keys(limits)
            _verdict(self._hit(keys, [r.seconds for r in rates]), rates)

    async def warm(self) -> None:
        """Open the Redis connections the event loop will count with (see RedisBackend.warm); Redis away:
        nothing to do, the first attempts find out as they would have."""
        if self.enabled and self.redis is not None:
            try:
                await self.redis.warm()
            except Exception as e:
                log.warning("rate limiter: Redis not reachable at start (%s)", type(e).__name__)

    async def hit_all_async(self, limits: list[tuple[str, "str | Rate"]]) -> None:
        """`hit_all` for the event loop: waits for Redis without blocking the loop."""
        if self.enabled and limits:
            keys, rates = _keys(limits)
            counts = await self._hit_async(keys, [r.seconds for r in rates])
            self._note(keys, rates, counts)
            _verdict(counts, rates)


def _keys(limits: list[tuple[str, "str | Rate"]]) -> tuple[list[str], list[Rate]]:
    pairs = [_key(k, r) for k, r in limits]
    return [p[0] for p in pairs], [p[1] for p in pairs]


@lru_cache(maxsize=65536)
def _key(name: str, rate: "str | Rate") -> tuple[str, Rate]:
    """Remembered: at the release instant each patient's next attempts count under the same keys, and
    parsing the rate and hashing the key were a fifth of a refused attempt's CPU (bench/hotpath_cost.py)."""
    r = Rate.parse(rate)
    return f"{PREFIX}{name.split(':', 1)[0]}:{int(r.seconds)}:{hashlib.sha256(name.encode()).hexdigest()[:32]}", r


def _verdict(counts: list[tuple[int, float]], rates: list[Rate]) -> None:
    error = _limited(counts, rates)
    if error is not None:
        raise error


def _limited(counts: list[tuple[int, float]], rates: list[Rate]) -> DomainError | None:
    retry = 0
    for (n, remaining), rate in zip(counts, rates):
        if n > rate.count:
            retry = max(retry, math.ceil(remaining), 1)
    if retry:
        return DomainError("RATE_LIMITED", f"操作过于频繁，请{retry}秒后再试", retry_after=retry)
    return None


def _ms(windows: list[float]) -> list[int]:
    """Windows in the script's milliseconds (at least one)."""
    return [max(1, int(w * 1000)) for w in windows]


def limiter_of(request) -> RateLimiter:
    return request.app.state.limiter


def limit(request, key: str, rate: "str | Rate") -> None:
    limiter_of(request).hit(key, rate)


def limit_all(request, limits: list[tuple[str, "str | Rate"]]) -> None:
    limiter_of(request).hit_all(limits)
