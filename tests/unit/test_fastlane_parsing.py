"""The fast lane takes only requests it can read exactly as the route would; anything else falls through."""

from datetime import date

from guahao.release.fastlane import _ids_of, _slots_key


def test_booking_body():
    assert _ids_of(b'{"slot_id": 5, "patient_id": 7}') == (5, 7, "self_pay")
    assert _ids_of(b'{"slot_id": 5, "patient_id": 7, "insurance_type": "local"}') == (5, 7, "local")
    for bad in (b'{"slot_id": 5}', b'{"slot_id": "5", "patient_id": 7}', b'{"slot_id": 5.0, "patient_id": 7}',
                b'{"slot_id": true, "patient_id": 7}', b'{"slot_id": 0, "patient_id": 7}',
                b'{"slot_id": 5, "patient_id": 7, "x": 1}', b'{"slot_id": 5, "patient_id": 7, "insurance_type": "?"}',
                b'[5, 7]', b'not json', b'{"slot_id": 2147483648, "patient_id": 7}'):
        assert _ids_of(bad) is None, bad


def test_slots_query():
    assert _slots_key(b"department_id=3&date=2026-12-02") == (3, None, date(2026, 12, 2), None)
    assert _slots_key(b"doctor_id=4&_=1700000000") == (None, 4, None, None)
    assert _slots_key(b"department_id=3&date=2026-12-02&date_to=2026-12-09") == (
        3, None, date(2026, 12, 2), date(2026, 12, 9))
    for bad in (b"", b"date=2026-12-02", b"department_id=03", b"department_id=x", b"department_id=1&department_id=2",
                b"department_id=3&date=20261202", b"department_id=3&date_to=2026-12-09",
                b"department_id=3&date=2026-12-09&date_to=2026-12-02", b"department_id=%FF"):
        assert _slots_key(bad) is None, bad
