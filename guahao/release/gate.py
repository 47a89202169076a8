"""The release-time gate: answer sure losers without touching the database.

At the release instant most booking requests lose. Each server process remembers, for a short time, what
the database itself answered or committed: this session is full, this number is taken, this session opens
at X. A request that the memory already answers gets the same refusal without a transaction; anything the
memory does not know goes to the database, which stays the only judge of a booking. So the gate can only
be wrong in one direction for a bounded time: a place freed by a cancel may be refused for up to the
flag's TTL if the invalidation is lost; a place is never granted by the gate.

Sharing: a booking publishes, after its commit, the number it took (and whether that filled the session) on
the Redis channel `<prefix>gate`, so every process refuses that number at once and drops that session's
availability pages. Invalidation: a cancel (any status change that frees a place) publishes the session id
after its transaction commits; every process drops its flags for that session. While the subscriber is
connected flags live `ttl_connected` seconds (invalidation is pushed); without Redis they live `ttl_alone`
seconds, which then bounds how stale a refusal can be. Redis down: booking stays correct, only the flags
expire sooner and each process learns on its own.
"""

import asyncio
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from guahao.clock import local
from guahao.errors import DomainError

log = logging.getLogger("guahao.gate")
_FREED = "guahao_gate_freed"
_WROTE = "guahao_gate_wrote"
_MAX_ENTRIES = 200_000
_SEP = ";"  # between the messages one publication carries
# The gate of each database engine, so that a commit anywhere can reach it.
_by_engine: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


class Gate:
    def __init__(self, redis_url: str | None = None, prefix: str = "guahao:",
                 ttl_connected: float = 30.0, ttl_alone: float = 1.0):
        self.channel = f"{prefix}gate"
        self.redis_url = redis_url
        self.ttl_connected = ttl_connected
        self.ttl_alone = ttl_alone
        self.subscribed = False
        # Bumped by every invalidation: a refusal learned from a read older than the bump is not kept.
        self.generation = 0
        self._full: dict[int, float] = {}  # session id -> expiry (monotonic)
        self._taken: dict[int, tuple[int, float]] = {}  # slot id -> (session id, expiry)
        self._not_before: dict[int, tuple[datetime, float]] = {}  # session id -> (release_at, expiry)
        self._slot_session: dict[int, int] = {}  # never changes: a slot belongs to one session
        self._listeners: list[Callable[[int], None]] = []
        # Called (on the listener's thread) once another process's news has been taken in.
        self.on_heard: Callable[[], None] | None = None
        self._write_listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._pub = None
        self._apub = None  # (event loop, redis.asyncio client)
        self._publishing: set[asyncio.Task] = set()  # the task sending `_outbox`, while it runs
        self._outbox: list[str] = []
        self._pub_down_until = 0.0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        # Who published: a process skips its own messages (it has already acted on them).
        self.origin = uuid.uuid4().hex

    # --- wiring -------------------------------------------------------------------------------------

    def attach(self, engine) -> None:
        _by_engine[engine] = self

    def on_change(self, listener: Callable[[int], None]) -> None:
        """Call `listener(session_id)` whenever a session's bookings change (here or in another process)."""
        self._listeners.append(listener)

    def on_write(self, listener: Callable[[], None]) -> None:
        """Call `listener()` after any write transaction of this process commits."""
        self._write_listeners.append(listener)

    def wrote(self) -> None:
        for listener in self._write_listeners:
            listener()

    def start(self) -> None:
        with self._lock:
            if not self.redis_url or self._thread is not None:
                return
            self._stop = threading.Event()  # its own: a listener stopped a moment ago may still be winding down
            self._thread = threading.Thread(target=self._listen, args=(self._stop,), name="guahao-gate",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread = None

    @property
    def ttl(self) -> float:
        return self.ttl_connected if self.subscribed else self.ttl_alone

    # --- the hot path ---------------------------------------------------------------------------------

    def refusal(self, slot_id: int, now: datetime) -> DomainError | None:
        """The database's answer to booking `slot_id`, if it is already known to be a refusal."""
        if self._thread is None and self.redis_url:
            self.start()  # lazily, in the worker process itself (never before a fork)
        sid = self._slot_session.get(slot_id)
        if sid is None:
            return None
        m = time.monotonic()
        nb = self._not_before.get(sid)
        if nb is not None and nb[1] > m and now < nb[0]:
            return DomainError("NOT_RELEASED", f"该号源将于{local(nb[0]):%Y-%m-%d %H:%M}放号",
                               release_at=nb[0].isoformat())
        if self._full.get(sid, 0.0) > m:
            return DomainError("SESSION_FULL")
        taken = self._taken.get(slot_id)
        if taken is not None and taken[1] > m:
            return DomainError("SLOT_TAKEN")
        return None

    def learn(self, db, slot_id: int, error: DomainError, generation: int) -> None:
        """Remember a refusal the database just gave, unless an invalidation came in meanwhile."""
        if error.code not in ("SESSION_FULL", "SLOT_TAKEN", "NOT_RELEASED"):
            return
        sid = self.session_of(db, slot_id)
        if sid is None:
            return
        with self._lock:
            if generation != self.generation:
                return
            self._prune()
            until = time.monotonic() + self.ttl
            if error.code == "SESSION_FULL":
                self._full[sid] = until
            elif error.code == "SLOT_TAKEN":
                self._taken[slot_id] = (sid, until)
            elif "release_at" in error.details:
                # Staff may move a release earlier without telling the gate: keep this one short.
                self._not_before[sid] = (datetime.fromisoformat(error.details["release_at"]),
                                         time.monotonic() + self.ttl_alone)

    def booked(self, slot_id: int, session_id: int, places_left: int | None, generation: int,
               publish: bool = True) -> None:
        """A booking of `slot_id` committed: that number is taken, and when it took the last place the
        session is full. Every process learns it (and drops its availability pages) through Redis."""
        with self._lock:
            if generation == self.generation:
                self._prune()
                until = time.monotonic() + self.ttl
                self._slot_session[slot_id] = session_id
                self._taken[slot_id] = (session_id, until)
                if places_left == 0:
                    self._full[session_id] = until
        self._changed(session_id)
        if publish:
            self._publish(_booked_message(session_id, slot_id, places_left))

    def publish_booked_soon(self, slot_id: int, session_id: int, places_left: int | None) -> None:
        """Tell the other processes what `booked(..., publish=False)` taught this one, from the event loop
        and without waiting for Redis: the winner's answer does not wait for it. A message that never
        arrives only leaves them to learn from the database (their pages expire on their own)."""
        if not self.redis_url:
            return
        self._outbox.append(_booked_message(session_id, slot_id, places_left))
        if not self._publishing:
            task = asyncio.get_running_loop().create_task(self._send_outbox())
            self._publishing.add(task)  # a task nobody holds may be collected before it runs
            task.add_done_callback(self._publishing.discard)

    async def _send_outbox(self) -> None:
        # One PUBLISH at a time, carrying every booking told meanwhile: at the release instant a task per
        # booking made the client open a connection for each one that overlapped another.
        while self._outbox:
            messages, self._outbox = self._outbox, []
            await self._publish_async(_SEP.join(messages))

    def remember_slots(self, pairs) -> None:
        """(slot id, session id) pairs seen elsewhere (availability pages), so refusals need no lookup."""
        if len(self._slot_session) > _MAX_ENTRIES:
            self._slot_session.clear()
        self._slot_session.update(pairs)

    def remember_slot(self, slot_id: int, session_id: int) -> None:
        self.remember_slots(((slot_id, session_id),))

    def session_of(self, db, slot_id: int) -> int | None:
        sid = self._slot_session.get(slot_id)
        if sid is None:
            from guahao.schedule.models import Slot

            with db.reading() as s:
                sid = s.scalar(select(Slot.session_id).where(Slot.id == slot_id))
            if sid is not None:
                self.remember_slots([(slot_id, sid)])
        return sid

    # --- invalidation -----------------------------------------------------------------------------------

    def freed(self, session_id: int, publish: bool = True) -> None:
        """A place of `session_id` was given back: forget every refusal about that session."""
        with self._lock:
            self.generation += 1
            self._full.pop(session_id, None)
            self._not_before.pop(session_id, None)
            for slot_id in [k for k, v in self._taken.items() if v[0] == session_id]:
                self._taken.pop(slot_id, None)
        self._changed(session_id)
        if publish:
            self._publish(f"f:{session_id}")

    def forget_all(self) -> None:
        with self._lock:
            self.generation += 1
            self._full.clear()
            self._taken.clear()
            self._not_before.clear()

    def _changed(self, session_id: int) -> None:
        for listener in self._listeners:
            listener(session_id)

    def _prune(self) -> None:
        if len(self._taken) + len(self._full) > _MAX_ENTRIES:
            self._taken.clear()
            self._full.clear()
            self._not_before.clear()

    # --- Redis --------------------------------------------------------------------------------------------

    def _publish(self, message: str) -> None:
        if not self.redis_url or time.monotonic() < self._pub_down_until:
            return
        try:
            if self._pub is None:
                import redis

                self._pub = redis.Redis.from_url(self.redis_url, socket_timeout=0.2, socket_connect_timeout=0.2)
            self._pub.publish(self.channel, f"{self.origin}:{message}")
        except Exception as e:
            self._pub = None
            self._publish_failed(e)

    async def warm(self) -> None:
        """Connect the event loop's publisher ahead (the server's start), not at the first booking."""
        if self.redis_url:
            try:
                await self._publisher().ping()
            except Exception as e:
                self._apub = None
                self._publish_failed(e)

    def _publisher(self):
        loop = asyncio.get_running_loop()
        if self._apub is None or self._apub[0] is not loop:  # a client belongs to the loop that made it
            import redis.asyncio as aredis

            self._apub = (loop, aredis.Redis.from_url(self.redis_url, socket_timeout=0.2, socket_connect_timeout=0.2))
        return self._apub[1]

    async def _publish_async(self, message: str) -> None:
        if not self.redis_url or time.monotonic() < self._pub_down_until:
            return
        try:
            await self._publisher().publish(self.channel, f"{self.origin}:{message}")
        except Exception as e:
            self._apub = None
            self._publish_failed(e)

    def _publish_failed(self, e: Exception) -> None:
        # Redis away: others fall back on their TTL; try again in a second.
        log.warning("gate: publish failed (%s); other processes rely on the %.1fs TTL", e, self.ttl_alone)
        self._pub_down_until = time.monotonic() + 1.0

    def _listen(self, stop: threading.Event) -> None:
        import redis

        me = self.origin
        while not stop.is_set():
            try:
                client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=1, health_check_interval=10)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel)
                # Messages may have been missed while unsubscribed: start from a clean memory.
                self.forget_all()
                self.subscribed = True
                while not stop.is_set():
                    msg = pubsub.get_message(timeout=1.0)
                    if msg is None:
                        continue
                    origin, _, messages = msg["data"].decode().partition(":")
                    if origin == me:
                        continue
                    for message in messages.split(_SEP):
                        self._heard(message)
                    if self.on_heard is not None:
                        self.on_heard()
                pubsub.close()
            except Exception as e:  # Redis away: flags fall back to the short TTL until it answers again
                if self.subscribed:
                    log.warning("gate: Redis subscription lost (%s); flags now live %.1fs", e, self.ttl_alone)
                self.subscribed = False
                stop.wait(1.0)
        if stop is self._stop:
            self.subscribed = False

    def _heard(self, message: str) -> None:
        kind, *rest = message.split(":")
        if kind == "f":
            self.freed(int(rest[0]), publish=False)
        elif kind == "b":
            sid, slot_id, left = (int(x) for x in rest)
            self.booked(slot_id, sid, None if left < 0 else left, self.generation, publish=False)


def _booked_message(session_id: int, slot_id: int, places_left: int | None) -> str:
    return f"b:{session_id}:{slot_id}:{-1 if places_left is None else places_left}"


def freed_after_commit(s: Session, session_id: int) -> None:
    """Tell every process, once this transaction commits, that a place of `session_id` is free again."""
    s.info.setdefault(_FREED, set()).add(session_id)


@event.listens_for(Session, "do_orm_execute")
def _on_execute(state) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        state.session.info[_WROTE] = True


@event.listens_for(Session, "after_flush")
def _on_flush(s: Session, _flush_context) -> None:
    s.info[_WROTE] = True


@event.listens_for(Session, "after_commit")
def _after_commit(s: Session) -> None:
    wrote = s.info.pop(_WROTE, False)
    freed = s.info.pop(_FREED, None)
    if not wrote:
        return
    gate = _by_engine.get(s.get_bind())
    if gate is None:
        return
    gate.wrote()
    for sid in freed or ():
        gate.freed(sid)


@event.listens_for(Session, "after_rollback")
def _after_rollback(s: Session) -> None:
    s.info.pop(_FREED, None)
    s.info.pop(_WROTE, None)
