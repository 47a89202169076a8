"""Shared set-up for the visit-day and money tests: a hospital with sessions, staff logins, paying."""

from datetime import date, timedelta

from sqlalchemy import select

from guahao.billing.models import PriceItem
from guahao.catalog.models import Hospital
from guahao.staff.service import create_staff
from tests import factories as f

NOW = f.local_dt(2026, 12, 1, 14, 0)  # a Tuesday; bookings for 12-02 open; tokens last 24 h
D1 = date(2026, 12, 2)


def make_world(db, prepay=False, capacity=8, **hospital_kw):
    with db.transaction() as s:
        h = f.hospital(s, requires_prepayment=prepay, **hospital_kw)
        d = f.department(s, h)
        doc = f.doctor(s, d)
        am = f.session(s, doc, D1, "AM", capacity=capacity, fee=5000)
        pm = f.session(s, doc, D1, "PM", capacity=capacity, fee=5000)
        special = f.session(s, doc, D1 + timedelta(days=1), "AM", capacity=3, number_type="特需号", fee=30000)
        for code, name, cat, price, lp, nlp in [
            ("CT-HEAD", "头颅CT", "exam", 30000, 80, 60), ("BLOOD", "血常规", "exam", 2500, 80, 60),
            ("DRUG-A", "阿莫西林胶囊", "drug", 1999, 70, 50), ("VIP-CARE", "特需护理", "special", 10000, 80, 80)]:
            s.add(PriceItem(hospital_id=h.id, code=code, name=name, category=cat, unit_price=price,
                            local_pct=lp, non_local_pct=nlp))
        for role, name, doctor_id in (("clerk", "clerk", None), ("doctor", "doctor", doc.id),
                                      ("hospital_admin", "admin", None)):
            create_staff(s, NOW, f"{name}{h.id}", "staff1234", role, name, h.id, doctor_id)
        s.flush()
        items = {p.code: p.id for p in s.scalars(select(PriceItem).where(PriceItem.hospital_id == h.id))}
        return dict(h=h.id, d=d.id, doc=doc.id, am=am.id, pm=pm.id, special=special.id,
                    am_slots=f.slot_ids(s, am), pm_slots=f.slot_ids(s, pm), special_slots=f.slot_ids(s, special),
                    items=items)


def staff_headers(client, w, name, at=NOW):
    import time_machine

    with time_machine.travel(at, tick=False):  # tokens last 24 h from `at`
        r = client.post("/api/v1/staff/token", data=dict(username=f"{name}{w['h']}", password="staff1234"))
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def book(client, headers, slot_id, patient_id, insurance="self_pay"):
    r = client.post("/api/v1/appointments", headers=headers,
                    json=dict(slot_id=slot_id, patient_id=patient_id, insurance_type=insurance))
    assert r.status_code == 201, r.text
    return r.json()


def pay_via_sandbox(client, headers, booking_id):
    """Start the payment and play the payer on the sandbox page; returns the payment JSON."""
    r = client.post(f"/api/v1/appointments/{booking_id}/pay", headers=headers)
    assert r.status_code == 201, r.text
    pay = r.json()
    r = client.post(f"{pay['pay_url']}/confirm", data={"action": "pay"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return pay


def ledger_ok(db):
    from guahao.billing.ledger import check

    with db.reading() as s:
        rep = check(s)
    assert rep.problems == [] and rep.ok, rep.problems
    return rep


def set_hospital(db, hid, **kw):
    with db.transaction() as s:
        h = s.get(Hospital, hid)
        for k, v in kw.items():
            setattr(h, k, v)
