"""A refund's provider call runs after the transaction that records it has committed (billing/outbox.py),
on SQLite and PostgreSQL: never for a transaction that rolls back, and a refund never sent is sent by the
retry once it is stale."""

from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from guahao.billing import outbox
from guahao.billing.models import Refund, SandboxRefund
from guahao.billing.service import UNSENT_AFTER, cancel_booking, retry_refunds
from guahao.booking.models import Booking
from tests import factories as f
from tests.money.helpers import NOW, book, ledger_ok, make_world, pay_via_sandbox


@pytest.fixture
def world(db):
    return make_world(db, prepay=True)


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as t:
        yield t


class Spy:
    """The sandbox provider, noting for each refund call whether its refund was committed at that moment."""

    def __init__(self, real, db):
        self.real, self.db, self.calls = real, db, []

    def refund(self, s, now, out_trade_no, out_refund_no, amount):
        with self.db.reading() as other:  # another connection sees only what was committed
            seen = other.scalar(select(Refund.status).where(Refund.out_refund_no == out_refund_no))
        self.calls.append((out_refund_no, seen))
        self.real.refund(s, now, out_trade_no, out_refund_no, amount)


@pytest.fixture
def paid(client, world, db, frozen):
    """A prepaid booking, paid: (booking id, account id)."""
    h, pid, _ = f.signup(client)
    b = book(client, h, world["am_slots"][0], pid)
    pay_via_sandbox(client, h, b["id"])
    with db.reading() as s:
        return b["id"], s.get(Booking, b["id"]).account_id


def test_a_refund_is_sent_after_its_transaction_commits(client, db, paid):
    booking_id, account_id = paid
    spy = Spy(client.app.state.payment_provider, db)
    with db.transaction() as s:
        cancel_booking(s, NOW, account_id, booking_id, spy)
        assert spy.calls == []  # not while the cancel's transaction is open
    with db.reading() as s:
        r = s.scalar(select(Refund))
        assert (r.status, r.attempts, r.amount) == ("succeeded", 1, 5000)
        assert s.scalar(select(SandboxRefund.amount).where(SandboxRefund.out_refund_no == r.out_refund_no)) == 5000
    assert spy.calls == [(r.out_refund_no, "requested")]  # its number was committed before the call
    rep = ledger_ok(db)
    assert (rep.paid, rep.refunded, rep.retained, rep.refunds_pending) == (5000, 5000, 0, 0)


def test_a_refund_whose_transaction_rolls_back_is_never_sent(client, db, paid):
    booking_id, account_id = paid
    spy = Spy(client.app.state.payment_provider, db)
    with pytest.raises(RuntimeError):
        with db.transaction() as s:
            cancel_booking(s, NOW, account_id, booking_id, spy)
            raise RuntimeError("a later step of the same unit of work fails")
    assert spy.calls == []
    with db.reading() as s:
        assert s.scalar(select(Refund)) is None and s.scalar(select(SandboxRefund)) is None
        assert s.get(Booking, booking_id).status == "booked"
    rep = ledger_ok(db)
    assert (rep.paid, rep.refunded, rep.retained) == (5000, 0, 5000)


def test_a_refund_never_sent_is_sent_by_the_retry_once_stale(client, db, paid, monkeypatch):
    booking_id, account_id = paid
    provider = client.app.state.payment_provider
    with monkeypatch.context() as m:  # the process stops between the commit and the provider call
        m.setattr(outbox, "send_after_commit", lambda *a: None)
        with db.transaction() as s:
            cancel_booking(s, NOW, account_id, booking_id, provider)
    with db.reading() as s:
        assert s.scalar(select(Refund.status)) == "requested"
    assert ledger_ok(db).refunds_pending == 5000
    with db.transaction() as s:  # fresh: it may be on its way; the retry leaves it
        assert retry_refunds(s, NOW + UNSENT_AFTER - timedelta(seconds=1), provider) == (0, 0)
    with db.transaction() as s:
        assert retry_refunds(s, NOW + UNSENT_AFTER + timedelta(seconds=1), provider) == (1, 0)
    with db.transaction() as s:
        assert retry_refunds(s, NOW + 2 * UNSENT_AFTER, provider) == (0, 0)  # settled: not again
    with db.reading() as s:
        assert [(r.status, r.attempts) for r in s.scalars(select(Refund))] == [("succeeded", 1)]
        assert len(s.scalars(select(SandboxRefund)).all()) == 1
    assert ledger_ok(db).refunds_pending == 0


def test_the_worker_retries_a_failed_refund(client, db, paid, monkeypatch):
    """The patient's page promises 退款失败，将自动重试: the worker's job keeps that promise."""
    from guahao.billing import providers
    from guahao.worker.jobs import JOBS, run_job

    booking_id, account_id = paid
    provider = client.app.state.payment_provider
    monkeypatch.setattr(providers, "_default", provider)  # the worker's provider is this process's sandbox
    provider.fail_refunds = 2
    with db.transaction() as s:
        cancel_booking(s, NOW, account_id, booking_id, provider)
    job = next(j for j in JOBS if j.name == "retry_refunds")
    assert run_job(db, job, NOW + timedelta(minutes=5)) == 0  # the provider still fails
    assert run_job(db, job, NOW + timedelta(minutes=10)) == 1
    assert run_job(db, job, NOW + timedelta(minutes=15)) == 0
    with db.reading() as s:
        assert [(r.status, r.attempts) for r in s.scalars(select(Refund))] == [("succeeded", 3)]
    assert ledger_ok(db).refunds_pending == 0
