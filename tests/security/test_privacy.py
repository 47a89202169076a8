"""Privacy (A6): ID numbers and phones encrypted at rest with a keyed look-up hash, masked in every
output, never in logs; settings refuse default secrets outside development."""

import logging

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from guahao.config import DEV_DATA_KEY, DEV_SECRET, Settings
from guahao.db import Base
from guahao.security.logmask import mask_text
from tests import factories as f


def _all_raw_rows(db) -> str:
    """Every stored value of every table, as the database holds it (no ORM decryption)."""
    out = []
    with db.engine.connect() as c:
        for table in Base.metadata.sorted_tables:
            for row in c.execute(text(f'SELECT * FROM "{table.name}"')):
                out.append(" ".join(str(v) for v in row))
    return "\n".join(out)


def test_raw_rows_never_hold_plain_id_numbers_or_phones(client, world):
    extra_id, extra_phone = f.id_number(), f.phone()
    r = client.post("/api/v1/patients", headers=world["a"], json=dict(
        name="欧阳小", id_number=extra_id, phone=extra_phone, relation="子女"))
    assert r.status_code == 201
    raw = _all_raw_rows(client.app.state.db)
    assert "欧阳秘密" in raw  # the dump is real
    for plain in (world["a_phone"], world["a_id_number"], extra_id, extra_phone):
        assert plain not in raw
        assert plain[-8:] not in raw  # not even a long fragment
    # Yet the application reads them back, and finds people by the keyed hash.
    from guahao.accounts.models import Person
    from guahao.accounts.repository import person_by_id_number

    with client.app.state.db.reading() as s:
        assert person_by_id_number(s, extra_id).id_number == extra_id
        assert s.query(Person).count() == 3


def test_lookup_hash_is_keyed(monkeypatch):
    from guahao import privacy

    a = privacy.lookup_hash("11010519491231002X")
    assert a == privacy.lookup_hash("11010519491231002X") and len(a) == 64
    monkeypatch.setenv("GUAHAO_DATA_KEY", "another-key-of-enough-length-0123456789")
    from guahao.config import get_settings

    get_settings.cache_clear()
    try:
        assert privacy.lookup_hash("11010519491231002X") != a  # an attacker without the key cannot
        token = privacy.encrypt("13800138000")                 # precompute hashes of all ID numbers
        assert "13800138000" not in token and privacy.decrypt(token) == "13800138000"
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize("env", ["production", "staging"])
def test_settings_refuse_default_or_weak_secrets_outside_development(env):
    strong = dict(secret_key="s" * 40, data_key="d" * 40)
    with pytest.raises(ValidationError):
        Settings(environment=env)
    with pytest.raises(ValidationError):
        Settings(environment=env, secret_key=DEV_SECRET, data_key="d" * 40)
    with pytest.raises(ValidationError):
        Settings(environment=env, secret_key="s" * 40, data_key=DEV_DATA_KEY)
    with pytest.raises(ValidationError):
        Settings(environment=env, secret_key="short", data_key="d" * 40)
    assert Settings(environment=env, **strong).secret_key == "s" * 40
    assert Settings(environment="development").secret_key == DEV_SECRET


def test_outputs_are_masked(client, world):
    a = world["a"]
    plain = (world["a_phone"], world["a_id_number"])
    for url in ("/api/v1/patients", f"/api/v1/patients/{world['a_patient']}", "/api/v1/appointments",
                f"/api/v1/appointments/{world['booking']}"):
        body = client.get(url, headers=a).text
        assert not any(p in body for p in plain), url
    p = client.get(f"/api/v1/patients/{world['a_patient']}", headers=a).json()
    assert p["phone"] == world["a_phone"][:3] + "****" + world["a_phone"][-4:]
    assert p["id_number"] == world["a_id_number"][:6] + "********" + world["a_id_number"][-4:]


def test_mask_text_patterns():
    assert mask_text("id 11010519491231002X phone 13800138000.") == "id 110105********002X phone 138****8000."
    assert mask_text("/api?p=13912345678&x=1") == "/api?p=139****5678&x=1"
    # Serial numbers, timestamps and ports are left alone.
    assert mask_text("serial 2612020123456789 ts 1733030400 port 8520") == \
        "serial 2612020123456789 ts 1733030400 port 8520"


def test_log_records_are_masked_even_in_exceptions(caplog):
    from guahao.security import logmask

    logmask.install()
    log = logging.getLogger("guahao.test")
    with caplog.at_level(logging.DEBUG):
        log.info("login for %s", "13800138000")
        log.warning("person %s", 110105199001011234)  # a non-string argument
        try:
            raise ValueError("bad id 11010519491231002X for 13900001111")
        except ValueError:
            log.exception("failed")
    text_out = caplog.text
    assert "13800138000" not in text_out and "11010519491231002X" not in text_out
    assert "13900001111" not in text_out and "110105199001011234" not in text_out and "138****8000" in text_out and "110105********002X" in text_out
