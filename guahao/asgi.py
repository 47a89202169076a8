"""ASGI entry point for servers: `uvicorn guahao.asgi:app`."""

import gc
import sys

from guahao.app import create_app

# The bookings' thread waits on the database and then needs the GIL back while the event loop is busy
# answering the storm. 2 ms: against 1 ms (stop 12, when booking threads held row locks across those
# waits) two alternated pairs were clearly better and two a draw once the loop took the thread's outcomes
# up between reads (stop 19); against the default 5 ms, two pairs were a draw (README, Production).
sys.setswitchinterval(0.002)

app = create_app()

# A full collection walks every object the imports and the app created (~155,000 here, 80–240 ms measured,
# with every request in flight on the worker stopped meanwhile), about once every few seconds under load;
# those objects live as long as the process. Freeze them out of the collector's view and collect the
# young generations less often: sold-out answers' p99 at 256 connections 188 → 64–73 ms, booking p99 in
# the release burst 393–458 → 333–339 ms (bench/release_burst.py, alternated runs; README, Production).
gc.collect()
gc.freeze()
gc.set_threshold(7000, 20, 20)
