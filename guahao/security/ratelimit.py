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

        self._redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._script = self._redis.register_script(_LUA)

    def hit_many(self, keys: list[str], windows: list[float]) -> list[tuple[int, float]]:
        flat = self._script(keys=keys, args=[max(1, int(w * 1000)) for w in windows])
        return [(int(flat[i]), int(flat[i + 1]) / 1000) for i in range(0, len(flat), 2)]


class RateLimiter:
    def __init__(self, url: str | None = None, enabled: bool = True, cooldown: float = 5.0):
        self.enabled = enabled
        self.memory = MemoryBackend()
        self.redis = RedisBackend(url) if url else None
        self._cooldown = cooldown
        self._redis_down_until = 0.0

    def _hit(self, keys: list[str], windows: list[float]) -> list[tuple[int, float]]:
        if self.redis is not None and time.monotonic() >= self._redis_down_until:
            try:
                return self.redis.hit_many(keys, windows)
            except Exception as e:  # any Redis failure: degrade, never fail the request
                self._redis_down_until = time.monotonic() + self._cooldown
                log.warning("rate limiter: Redis unavailable (%s); using process memory for %.0fs",
                            type(e).__name__, self._cooldown)
        return [self.memory.hit(k, w) for k, w in zip(keys, windows)]

    def hit(self, key: str, rate: "str | Rate") -> None:
        """Count one attempt under `key`; raise RATE_LIMITED once the rate is exceeded."""
        self.hit_all([(key, rate)])

    def hit_all(self, limits: list[tuple[str, "str | Rate"]]) -> None:
        """Count one attempt under each key (one Redis round trip); raise RATE_LIMITED if any is over."""
        if not self.enabled or not limits:
            return
        rates = [Rate.parse(r) for _, r in limits]
        keys = [f"{PREFIX}{k.split(':', 1)[0]}:{int(r.seconds)}:{hashlib.sha256(k.encode()).hexdigest()[:32]}"
                for (k, _), r in zip(limits, rates)]
        retry = 0
        for (n, remaining), rate in zip(self._hit(keys, [r.seconds for r in rates]), rates):
            if n > rate.count:
                retry = max(retry, math.ceil(remaining), 1)
        if retry:
            raise DomainError("RATE_LIMITED", f"操作过于频繁，请{retry}秒后再试", retry_after=retry)


def limiter_of(request) -> RateLimiter:
    return request.app.state.limiter


def limit(request, key: str, rate: "str | Rate") -> None:
    limiter_of(request).hit(key, rate)


def limit_all(request, limits: list[tuple[str, "str | Rate"]]) -> None:
    limiter_of(request).hit_all(limits)
