"""The ledger always balances (M, X2): hypothesis drives random pay / replay / cancel / refund failure /
retry / stop / expiry / late-callback sequences through the real services on SQLite."""

from datetime import timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import select

from guahao.accounts import service as accounts
from guahao.billing import ledger, service
from guahao.billing.models import Payment, SandboxTxn
from guahao.billing.providers import SandboxProvider
from guahao.booking import service as booking
from guahao.booking.models import Booking
from guahao.errors import DomainError
from tests import factories as f
from tests.conftest import _wipe
from tests.money.helpers import NOW, make_world, set_hospital


def test_ledger_balances_under_random_operations(sqlite_db):
    db = sqlite_db
    seen = {"paid": 0, "refunded": 0, "pending": 0, "unapplied": 0}

    class Money(RuleBasedStateMachine):
        @initialize()
        def setup(self):
            _wipe(db)
            self.w = make_world(db, prepay=True, capacity=6)
            set_hospital(db, self.w["h"], cancel_minutes_before=0)
            self.provider = SandboxProvider("k")
            self.now = NOW
            with db.transaction() as s:
                for _ in range(3):
                    accounts.register(s, NOW, f.phone(), "secret123", "王小明", f.id_number())
            with db.reading() as s:
                from guahao.accounts.models import Patient

                self.patients = [(p.account_id, p.id) for p in s.scalars(select(Patient).order_by(Patient.id))]
            self.bookings = []

        def _try(self, fn):
            try:
                with db.transaction() as s:
                    return fn(s)
            except DomainError:
                return None

        @rule(who=st.integers(0, 2), slot=st.integers(0, 5), pay_now=st.booleans())
        def book(self, who, slot, pay_now):
            acc, pid = self.patients[who]
            bid = self._try(lambda s: booking.book(s, self.now, acc, self.w["am_slots"][slot], pid, "self_pay"))
            if bid:
                self.bookings.append((acc, bid))
                if pay_now:
                    self._pay(acc, bid)

        @precondition(lambda self: self.bookings)
        @rule(i=st.integers(0, 50))
        def pay(self, i):
            self._pay(*self.bookings[i % len(self.bookings)])

        def _pay(self, acc, bid):
            got = self._try(lambda s: service.pay_booking(s, self.now, self.provider, acc, bid))
            if got and got[0] is not None:
                with db.transaction() as s:
                    note = self.provider.pay(s, self.now, got[0].out_trade_no)
                if note:
                    with db.transaction() as s:
                        service.handle_callback(s, self.now, self.provider, note)
                    with db.transaction() as s:  # providers repeat themselves
                        service.handle_callback(s, self.now, self.provider, note)

        @precondition(lambda self: self.bookings)
        @rule(i=st.integers(0, 50))
        def open_order_and_walk_away(self, i):
            acc, bid = self.bookings[i % len(self.bookings)]
            self._try(lambda s: service.pay_booking(s, self.now, self.provider, acc, bid))

        @precondition(lambda self: self.bookings)
        @rule(i=st.integers(0, 50))
        def cancel(self, i):
            acc, bid = self.bookings[i % len(self.bookings)]
            self._try(lambda s: service.cancel_booking(s, self.now, acc, bid, self.provider))

        @rule(n=st.integers(0, 2))
        def provider_outage(self, n):
            self.provider.fail_refunds = n

        @rule()
        def retry(self):
            with db.transaction() as s:
                service.retry_refunds(s, self.now, self.provider)

        @rule(minutes=st.sampled_from([1, 10, 15, 60, 17 * 60 + 5, 18 * 60]))
        def advance(self, minutes):
            # Stays before 08:00 on the visit day, so every refund tier is reachable.
            if self.now + timedelta(minutes=minutes) < f.local_dt(2026, 12, 2, 8, 0):
                self.now += timedelta(minutes=minutes)

        @rule()
        def expire(self):
            with db.transaction() as s:
                service.expire_unpaid(s, self.now, self.provider)

        @precondition(lambda self: self.bookings)
        @rule(i=st.integers(0, 50))
        def stop(self, i):
            _, bid = self.bookings[i % len(self.bookings)]
            with db.transaction() as s:
                b = s.get(Booking, bid)
                if b.status in ("booked", "pending_payment"):
                    b.status = "stopped"
                    s.flush()
                    service.refund_stopped_booking(s, self.now, bid, self.provider)

        @rule()
        def late_payment_for_a_closed_order(self):
            with db.transaction() as s:
                p = s.scalar(select(Payment).where(Payment.status == "closed").limit(1))
                if p is None:
                    return
                txn = s.get(SandboxTxn, p.out_trade_no)
                txn.status = "paid"  # the payer got through just before the provider closed it
                note = self.provider.notification(txn.out_trade_no, txn.txn_id, txn.amount, self.now)
            with db.transaction() as s:
                service.handle_callback(s, self.now, self.provider, note)

        @invariant()
        def balanced(self):
            if not hasattr(self, "w"):
                return
            with db.reading() as s:
                rep = ledger.check(s)
            assert rep.problems == [] and rep.paid == rep.refunded + rep.retained
            seen["paid"] = max(seen["paid"], rep.paid)
            seen["refunded"] = max(seen["refunded"], rep.refunded)
            seen["pending"] = max(seen["pending"], rep.refunds_pending)
            with db.reading() as s:
                seen["unapplied"] += s.scalar(select(Payment.id).where(Payment.unapplied.is_(True)).limit(1)) or 0

    Money.TestCase.settings = settings(max_examples=30, stateful_step_count=30, deadline=None, derandomize=True, database=None,
                                       suppress_health_check=list(HealthCheck))
    Money.TestCase().runTest()
    # The runs really moved money through every path (not just trivially empty ledgers).
    assert seen["paid"] and seen["refunded"], seen
