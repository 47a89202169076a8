"""One rendering per page on the event loop, however many refreshes miss the cache while it runs."""

import asyncio

import pytest

from guahao.release.availability import Renderings


def test_refreshes_that_miss_together_await_one_rendering():
    async def run():
        renderings, started = Renderings(), []
        gate = asyncio.Event()

        async def render():
            started.append(1)
            await gate.wait()
            return f"page {len(started)}"
        waiters = [asyncio.create_task(renderings.page("k", render)) for _ in range(50)]
        await asyncio.sleep(0)
        assert renderings.in_progress("k") is not None and renderings.in_progress("other") is None
        gate.set()
        pages = await asyncio.gather(*waiters)
        assert pages == ["page 1"] * 50 and len(started) == 1
        assert renderings.in_progress("k") is None  # done: the next miss renders again
        assert await renderings.page("k", render) == "page 2"
    asyncio.run(run())


def test_a_failed_rendering_fails_its_waiters_and_the_next_miss_tries_again():
    async def run():
        renderings = Renderings()

        async def broken():
            await asyncio.sleep(0.01)
            raise RuntimeError("database away")
        waiters = [asyncio.create_task(renderings.page("k", broken)) for _ in range(3)]
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results)

        async def fine():
            return "page"
        assert await renderings.page("k", fine) == "page"
    asyncio.run(run())


def test_a_waiter_that_goes_away_does_not_cancel_the_others_rendering():
    async def run():
        renderings = Renderings()

        async def render():
            await asyncio.sleep(0.05)
            return "page"
        first = asyncio.create_task(renderings.page("k", render))
        second = asyncio.create_task(renderings.page("k", render))
        await asyncio.sleep(0.01)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert await second == "page"
    asyncio.run(run())
