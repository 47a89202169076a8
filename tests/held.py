"""Another transaction holding rows, uncommitted, while the code under test runs into them."""

import asyncio
import threading


def behind_open_transaction(db, hold, run):
    """`hold(s)` runs in a transaction of its own on another thread, which stays open until `release` (an
    Event given to `run`) is set, then commits. Returns `asyncio.run(run(release))`, started once the rows
    are held."""
    holding, release = threading.Event(), threading.Event()

    def other():
        with db.sessions() as s:
            hold(s)
            s.flush()
            holding.set()
            release.wait(10)
            s.commit()

    t = threading.Thread(target=other)
    t.start()
    assert holding.wait(10)
    try:
        return asyncio.run(run(release))
    finally:
        release.set()
        t.join()
