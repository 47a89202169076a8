"""The CLI answers bad input with a message and a non-zero exit, never a traceback."""

import os
import subprocess
import sys


def run(*args, **env):
    e = {**os.environ, **env}
    return subprocess.run([sys.executable, "-m", "guahao.cli", *args], capture_output=True, text=True,
                          env=e, timeout=120)


def test_db_upgrade_and_demo_on_a_fresh_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    r = run("db", "upgrade", GUAHAO_DATABASE_URL=url)
    assert r.returncode == 0, r.stderr
    r = run("demo", GUAHAO_DATABASE_URL=url, GUAHAO_NOW="2026-12-01T06:00:00+08:00")
    assert r.returncode == 0, r.stderr
    assert "49 hospitals created" in r.stdout and "13800138000" in r.stdout and "h1-clerk" in r.stdout


def test_production_refuses_default_secrets(tmp_path):
    r = run("db", "upgrade", GUAHAO_ENVIRONMENT="production", GUAHAO_DATABASE_URL=f"sqlite:///{tmp_path}/y.db")
    assert r.returncode == 2
    assert "GUAHAO_SECRET_KEY" in r.stderr and "Traceback" not in r.stderr


def test_unreachable_database_is_a_clear_error():
    r = run("db", "upgrade", GUAHAO_DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and "数据库" in r.stderr
