"""ASGI entry point for servers: `uvicorn guahao.asgi:app`."""

import sys

from guahao.app import create_app

# Booking threads wait on the database and then need the GIL back while the event loop is busy answering
# the storm; with the default 5 ms switch interval a thread holding a session's row lock can wait that
# long to send its COMMIT, and every booking of that session waits with it. 1 ms (measured with
# bench/release_burst.py, see the README's Production section).
sys.setswitchinterval(0.001)

app = create_app()
