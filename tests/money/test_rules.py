"""Pure rules of the visit day and money (V1, V2, X2, M2, M3), no database."""

from datetime import date, time, timedelta

import pytest

from guahao.billing import rules as br
from guahao.errors import DomainError
from guahao.visits import rules as vr
from tests.factories import local_dt

D = date(2026, 12, 2)


def test_checkin_window_edges():
    w = vr.checkin_window(D, time(9, 0), time(12, 0), 60)
    assert (w.opens, w.closes) == (local_dt(2026, 12, 2, 8, 0), local_dt(2026, 12, 2, 12, 0))
    vr.check_checkin_time(local_dt(2026, 12, 2, 8, 0), D, w)
    vr.check_checkin_time(local_dt(2026, 12, 2, 11, 59, 59), D, w)
    for at, code in [(local_dt(2026, 12, 2, 7, 59, 59), "CHECKIN_NOT_OPEN"),
                     (local_dt(2026, 12, 2, 12, 0), "CHECKIN_CLOSED"),
                     (local_dt(2026, 12, 3, 8, 30), "CHECKIN_WRONG_DAY")]:
        with pytest.raises(DomainError) as e:
            vr.check_checkin_time(at, D, w)
        assert e.value.code == code


def test_pass_goes_behind_the_next_three():
    keys = [vr.initial_key(s) for s in (2, 3, 4, 5)]
    k = vr.pass_key(keys)
    assert keys[2] < k < keys[3]
    assert vr.pass_key(keys[:2]) > keys[1]  # fewer than 3 waiting: to the end
    assert vr.pass_key([]) > 0
    assert vr.pass_key([1, 2, 3, 4]) is None  # no gap: the caller renumbers


def test_wait_estimate_never_negative_and_sane_without_history():
    assert vr.estimated_wait_minutes(0, False, []) == 0
    assert vr.estimated_wait_minutes(3, False, []) == 30
    assert vr.estimated_wait_minutes(2, True, [300, 420]) == 15  # 2.5 × 6 min
    assert vr.estimated_wait_minutes(-5, False, [-100]) == 0
    assert vr.average_minutes([10 * 3600]) == 60  # a forgotten "complete" is clamped


@pytest.mark.parametrize("at, refund, kept, tier", [
    (local_dt(2026, 11, 20, 9, 0), 5000, 0, "full"),
    (local_dt(2026, 12, 1, 23, 59, 59), 5000, 0, "full"),
    (local_dt(2026, 12, 2, 0, 0), 4500, 500, "partial"),
    (local_dt(2026, 12, 2, 7, 0), 4500, 500, "partial"),
    (local_dt(2026, 12, 2, 7, 0, 1), 0, 5000, "none"),
    (local_dt(2026, 12, 2, 9, 0), 0, 5000, "none"),
])
def test_default_refund_tiers(at, refund, kept, tier):
    q = br.refund_quote(5000, at, D, time(8, 0))
    assert (q.refund, q.kept, q.tier) == (refund, kept, tier)


def test_hospital_tiers_and_rounding_in_the_patients_favour():
    p = br.RefundPolicy.from_json({"day_before_keep_pct": 5, "same_day_min_minutes": 120,
                                   "same_day_keep_pct": 50, "unknown": 1})
    assert br.refund_quote(999, local_dt(2026, 12, 1, 9, 0), D, time(8, 0), p).kept == 49  # 49.95 → 49
    assert br.refund_quote(1000, local_dt(2026, 12, 2, 6, 0), D, time(8, 0), p).refund == 500
    assert br.refund_quote(1000, local_dt(2026, 12, 2, 6, 0, 1), D, time(8, 0), p).refund == 0


def test_insurance_split():
    assert br.split(10000, "exam", "local", 80, 60) == (8000, 2000)
    assert br.split(10000, "exam", "non_local", 80, 60) == (6000, 4000)
    assert br.split(10000, "exam", "self_pay", 80, 60) == (0, 10000)
    assert br.split(10000, "special", "local", 80, 60) == (0, 10000)
    assert br.split(30000, "registration", "local", 90, 90, "特需号") == (0, 30000)
    assert br.split(1999, "drug", "local", 70, 0) == (1399, 600)  # insurance rounded down


def test_signatures():
    f = {"out_trade_no": "P1", "total_fee": "5000", "trade_status": "SUCCESS"}
    f["sign"] = br.sign("k", f)
    assert br.verify("k", f)
    assert not br.verify("other", f)
    assert not br.verify("k", {**f, "total_fee": "1"})
    assert not br.verify("k", {k: v for k, v in f.items() if k != "sign"})
    assert br.payment_deadline(local_dt(2026, 12, 1, 14, 0)) - local_dt(2026, 12, 1, 14, 0) == timedelta(minutes=15)
