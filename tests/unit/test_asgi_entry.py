"""The server entry point keeps the garbage collector out of the way of requests in flight."""

import json
import os
import subprocess
import sys


def test_server_entry_freezes_startup_objects_and_collects_young_generations_less_often(tmp_path):
    probe = ("import gc, json, guahao.asgi; "
             "print(json.dumps({'frozen': gc.get_freeze_count(), 'threshold': gc.get_threshold()}))")
    env = dict(os.environ, GUAHAO_DATABASE_URL=f"sqlite:///{tmp_path / 'entry.db'}")
    env.pop("GUAHAO_REDIS_URL", None)
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    # The whole application (FastAPI, SQLAlchemy, every router) is out of the collector's view …
    assert seen["frozen"] > 50_000
    # … and the young generations are collected at least ten times less often than by default (700, 10, 10).
    gen0, gen1, gen2 = seen["threshold"]
    assert gen0 * gen1 * gen2 >= 10 * 700 * 10 * 10
