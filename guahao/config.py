"""One typed settings object, read from GUAHAO_* environment variables."""

from functools import lru_cache
from pathlib import Path

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-only-secret-change-me-not-for-production"
DEV_DATA_KEY = "dev-only-data-key-change-me-not-for-production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GUAHAO_", extra="ignore")

    environment: str = "development"  # development | test | production
    database_url: str = f"sqlite:///{Path('var/guahao.db').absolute()}"
    redis_url: str | None = None
    # Signs access tokens.
    secret_key: str = DEV_SECRET
    # Encrypts ID numbers and phones at rest and keys their look-up hashes.
    data_key: str = DEV_DATA_KEY
    token_minutes: int = 60 * 24
    # Argon2 cost: production defaults; tests lower it to keep 200-account fixtures fast.
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19 * 1024
    # ISO datetime: the server clock starts there and runs forward (demos, acceptance runs).
    now: str | None = None
    # A1: sign-up demands an SMS code (POST /api/v1/sms-codes) when true; off in development and tests.
    require_sms_code: bool = False
    # Production SMS provider (notifications/senders.py); unset: messages stay in the outbox table.
    sms_endpoint: str | None = None
    sms_access_key: str | None = None
    sms_secret: str | None = None
    # Signs and verifies sandbox payment callbacks (HMAC-SHA256); a real provider has its own keys.
    payment_sandbox_key: str = "dev-only-sandbox-payment-key"
    # Unix time at which the clock reads `now`: every worker process then shows the same instant.
    now_anchor: float | None = None
    # Key and channel prefix in Redis (the release gate's invalidations).
    redis_prefix: str = "guahao:"
    db_pool_size: int = 4
    db_max_overflow: int = 4
    # PostgreSQL: plain bookings run on the event loop through their own pool of db_pool_size +
    # db_max_overflow psycopg async connections (guahao/booking/pg_async.py); false: in worker threads.
    booking_on_loop: bool = True
    # ... and those connections on an event loop of their own thread (guahao/booking/dbthread.py).
    booking_thread: bool = True
    # ... carrying up to this many bookings per transaction (guahao/booking/batch.py); 1: one each. 16: a
    # worker's share of the release instant's first wave (~128) goes out in one round of 8 connections.
    booking_batch: int = 16
    # `guahao serve` answers the release storm's sure refusals and cached pages as their bytes arrive
    # (guahao/release/inline.py); false: every request through the application.
    inline_answers: bool = True

    @property
    def db_connections(self) -> int:
        """Connections a worker's bookings may use at once (its turns at the database, release/turns.py)."""
        return max(1, self.db_pool_size + self.db_max_overflow)

    # Abuse resistance (guahao/security). A rate is "COUNT/SECONDS" per key; limits are shared across
    # processes through Redis when GUAHAO_REDIS_URL is set, else per process. Per-address limits are
    # generous: whole hospitals and mobile carriers sit behind one NAT address.
    rate_limit_enabled: bool = True
    rate_booking_account: str = "10/60"
    rate_booking_person: str = "10/60"
    rate_booking_ip: str = "300/60"
    rate_login_phone: str = "10/300"
    rate_login_ip: str = "60/60"
    rate_sms_phone: str = "1/60"
    rate_sms_phone_day: str = "10/86400"
    rate_sms_ip: str = "20/3600"
    # Peers whose X-Forwarded-For is believed (CIDRs of the reverse proxies), JSON list in the env.
    trusted_proxies: list[str] = []
    # Request bodies above this are refused with 413 before they are read.
    max_body_bytes: int = 64 * 1024

    @model_validator(mode="after")
    def _refuse_dev_secrets(self) -> "Settings":
        from guahao.security.ratelimit import Rate

        for name in type(self).model_fields:
            if name.startswith("rate_") and name != "rate_limit_enabled":
                Rate.parse(getattr(self, name))  # a typo in a limit fails at start, not at 07:00
        from guahao.security.clientip import networks

        networks(tuple(self.trusted_proxies))  # likewise a malformed proxy CIDR
        if self.environment not in ("development", "test"):
            if self.secret_key == DEV_SECRET or self.data_key == DEV_DATA_KEY:
                raise ValueError("GUAHAO_SECRET_KEY and GUAHAO_DATA_KEY must be set outside development")
            if len(self.secret_key) < 32 or len(self.data_key) < 32:
                raise ValueError("GUAHAO_SECRET_KEY and GUAHAO_DATA_KEY need at least 32 characters")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
