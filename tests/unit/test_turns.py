"""Turns at the database: never more than `size` at once, and waiters leave with a refusal when the gate has one."""

import asyncio

from guahao.release.turns import Turns


def test_never_more_than_size_and_everyone_gets_a_turn():
    async def main():
        turns, inside, most = Turns(3), 0, 0

        async def one():
            nonlocal inside, most
            assert await turns.take(lambda: None) is None
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.001)
            inside -= 1
            await turns.give_back(False)
        await asyncio.gather(*(one() for _ in range(50)))
        return most, turns.free
    assert asyncio.run(main()) == (3, 3)


def test_waiters_leave_with_the_refusal_the_gate_learns_meanwhile():
    async def main():
        turns, full = Turns(1), set()
        assert await turns.take(lambda: None) is None  # the one booking at the database
        waiting = [asyncio.create_task(turns.take(lambda s=s: "SESSION_FULL" if s in full else None))
                   for s in (1, 1, 1, 2)]
        await asyncio.sleep(0.01)
        assert not any(t.done() for t in waiting)
        full.add(1)  # the booking filled session 1
        await turns.give_back(True)
        answers = await asyncio.gather(*waiting)
        return answers, turns.free
    answers, free = asyncio.run(main())
    # The three waiting for session 1 are refused; the one for session 2 gets the turn.
    assert answers == ["SESSION_FULL", "SESSION_FULL", "SESSION_FULL", None] and free == 0


def test_a_turn_is_not_lost_when_its_waiter_is_cancelled():
    async def main():
        turns = Turns(1)
        await turns.take(lambda: None)
        first = asyncio.create_task(turns.take(lambda: None))
        second = asyncio.create_task(turns.take(lambda: None))
        await asyncio.sleep(0.01)
        await turns.give_back(False)  # wakes `first`
        first.cancel()
        await asyncio.sleep(0.01)
        if not first.cancelled():  # the wake-up won the race: `first` holds the turn and returns it
            assert first.result() is None
            await turns.give_back(False)
        return await asyncio.wait_for(second, 2)
    assert asyncio.run(main()) is None
