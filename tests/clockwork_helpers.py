"""Shared pieces for the clockwork tests: staff logins and reading the outbox."""

from sqlalchemy import select

from guahao.notifications.models import Notification
from guahao.staff.service import create_staff
from tests import factories as f


def staff_headers(client, role="hospital_admin", hospital_id=None, doctor_id=None):
    name = f"u{next(f._seq)}"
    with client.app.state.db.transaction() as s:
        create_staff(s, f.local_dt(2026, 1, 1, 9, 0), name, "staff1234", role, name, hospital_id, doctor_id)
    r = client.post("/api/v1/staff/token", data=dict(username=name, password="staff1234"))
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def outbox(db, kind=None):
    with db.reading() as s:
        q = select(Notification).order_by(Notification.id)
        if kind:
            q = q.where(Notification.kind == kind)
        return list(s.scalars(q))
