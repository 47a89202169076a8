"""Availability pages under the refresh storm: rendered once, served many times.

A page is the JSON of one availability query, kept at most `ttl` seconds (0.5 s) from the moment its
database read began, and dropped at once when a booking or cancel of one of its sessions is seen here or
announced by another process (the gate's Redis channel). Remaining counts are therefore never shown higher
than the truth was `ttl` seconds earlier, even with Redis down. Any other write committed by this process
(staff changing a schedule, say) empties the cache of this process; other processes see such changes
within `ttl`. One request per page and process renders
it; the others wait for that rendering instead of each reading the database — on the event loop
(`Renderings`), not each in a thread of its own, and in the fast lane, not through the framework.
"""

import asyncio
import hashlib
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Page:
    body: bytes
    etag: str
    session_ids: frozenset
    born: float  # monotonic time at which its database read began
    now: object  # the request clock's instant it was rendered for (tests travel in time)


class AvailabilityCache:
    def __init__(self, ttl: float = 0.5, max_pages: int = 5000):
        self.ttl = ttl
        self.max_pages = max_pages
        self._pages: dict = {}
        self._locks: dict = {}
        self._changed_at: dict[int, float] = {}  # session id -> monotonic time of its last change
        self._cleared_at = 0.0
        self._guard = threading.Lock()

    def get(self, key, now, render: Callable[[], tuple[bytes, frozenset]]) -> Page:
        page = self._fresh(key, now)
        if page is not None:
            return page
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            page = self._fresh(key, now)
            if page is not None:
                return page
            born = time.monotonic()
            body, session_ids = render()
            page = Page(body, '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"',
                        frozenset(session_ids), born, now)
            with self._guard:
                # A change seen while rendering may not be in this page: serve it once, keep it not.
                if self._cleared_at < born and all(self._changed_at.get(sid, 0.0) < born for sid in session_ids):
                    if len(self._pages) >= self.max_pages:
                        self._pages.clear()
                    self._pages[key] = page
            return page

    def peek(self, key, now) -> Page | None:
        """The page if it is fresh, without waiting (callable on an event loop)."""
        return self._fresh(key, now)

    def invalidate(self, session_id: int) -> None:
        with self._guard:
            if len(self._changed_at) > 100_000:
                self._changed_at.clear()
                self._pages.clear()
            self._changed_at[session_id] = time.monotonic()
            for key in [k for k, p in self._pages.items() if session_id in p.session_ids]:
                del self._pages[key]

    def clear(self) -> None:
        with self._guard:
            self._cleared_at = time.monotonic()
            self._pages.clear()

    def _fresh(self, key, now) -> Page | None:
        page = self._pages.get(key)
        return page if page is not None and self.is_fresh(page, now) else None

    def is_fresh(self, page: Page, now) -> bool:
        """Within `ttl` of its database read: also asked of a page awaited from a rendering in progress."""
        return time.monotonic() - page.born < self.ttl and 0 <= (now - page.now).total_seconds() < self.ttl


class Renderings:
    """The page renderings in progress on this process's event loop, by page key.

    When a page expires under the refresh storm, every refresh that arrives before its new rendering is
    done misses the cache: each used to go through the framework's route and hold a worker thread waiting
    on the cache's lock (hundreds per expiry at T, measured in bench/release_burst.py). They await the one
    rendering instead."""

    def __init__(self):
        self._loop = None
        self._tasks: dict = {}

    async def page(self, key, start: Callable[[], Awaitable[Page]]) -> Page:
        """The rendering of `key` in progress, or one started with `start()`."""
        tasks = self._here()
        task = tasks.get(key)
        if task is None:
            task = tasks[key] = asyncio.ensure_future(start())
            task.add_done_callback(lambda t: tasks.pop(key) if tasks.get(key) is t else None)
        # A waiter that goes away (its client disconnected) does not cancel the others' rendering.
        return await asyncio.shield(task)

    def in_progress(self, key) -> asyncio.Future | None:
        return self._here().get(key)

    def _here(self) -> dict:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # one loop per server process; tests may start several
            self._loop, self._tasks = loop, {}
        return self._tasks


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return etag in tags or "*" in tags
