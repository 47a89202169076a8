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

import hashlib
import logging
import math
import threading
import time
from dataclasses import dataclass

from guahao.errors import DomainError

log = logging.getLogger("guahao.ratelimit")
PREFIX = "guahao:rl:"

# KEYS[1] counter; ARGV[1] window ms. Returns {count, ttl ms}.
_LUA = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
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

        self._redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._script = self._redis.register_script(_LUA)

    def hit(self, key: str, window: float) -> tuple[int, float]:
        n, ttl = self._script(keys=[key], args=[max(1, int(window * 1000))])
        return int(n), int(ttl) / 1000


class RateLimiter:
    def __init__(self, url: str | None = None, enabled: bool = True, cooldown: float = 5.0):
        self.enabled = enabled
        self.memory = MemoryBackend()
        self.redis = RedisBackend(url) if url else None
        self._cooldown = cooldown
        self._redis_down_until = 0.0

    def _hit(self, key: str, window: float) -> tuple[int, float]:
        if self.redis is not None and time.monotonic() >= self._redis_down_until:
            try:
                return self.redis.hit(key, window)
            except Exception as e:  # any Redis failure: degrade, never fail the request
                self._redis_down_until = time.monotonic() + self._cooldown
                log.warning("rate limiter: Redis unavailable (%s); using process memory for %.0fs",
                            type(e).__name__, self._cooldown)
        return self.memory.hit(key, window)

    def hit(self, key: str, rate: "str | Rate") -> None:
        """Count one attempt under `key`; raise RATE_LIMITED once the rate is exceeded."""
        if not self.enabled:
            return
        rate = Rate.parse(rate)
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        scope = key.split(":", 1)[0]
        n, remaining = self._hit(f"{PREFIX}{scope}:{int(rate.seconds)}:{digest}", rate.seconds)
        if n > rate.count:
            retry = max(1, math.ceil(remaining))
            raise DomainError("RATE_LIMITED", f"操作过于频繁，请{retry}秒后再试", retry_after=retry)


def limiter_of(request) -> RateLimiter:
    return request.app.state.limiter


def limit(request, key: str, rate: "str | Rate") -> None:
    limiter_of(request).hit(key, rate)
