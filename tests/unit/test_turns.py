"""Turns at the database: never more than `size` at once, and waiters leave with a refusal when the gate has one."""

import asyncio

import pytest

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
            turns.give_back(False)
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
        turns.give_back(True)
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
        turns.give_back(False)  # wakes `first`
        first.cancel()
        await asyncio.sleep(0.01)
        if not first.cancelled():  # the wake-up won the race: `first` holds the turn and returns it
            assert first.result() is None
            turns.give_back(False)
        return await asyncio.wait_for(second, 2)
    assert asyncio.run(main()) is None


def test_a_second_attempt_at_a_number_is_answered_busy_at_once():
    async def main():
        turns, taken, at_db = Turns(4), set(), []

        async def attempt(slot):
            refusal = await turns.take(lambda: "SLOT_TAKEN" if slot in taken else None, slot)
            if refusal is not None:
                return getattr(refusal, "code", refusal)
            at_db.append(slot)
            await asyncio.sleep(0.02)
            taken.add(slot)  # booked
            turns.give_back(False, slot)
            return "booked"
        tasks = [asyncio.create_task(attempt(s)) for s in (7, 7, 7, 8)]
        await asyncio.sleep(0.005)
        early = [t.result() if t.done() else "waiting" for t in tasks]
        answers = await asyncio.gather(*tasks)
        late = await attempt(7)  # after the booking: the gate's refusal, not busy
        return early, answers, late, at_db, turns.free
    early, answers, late, at_db, free = asyncio.run(main())
    # Turns were free, yet only one attempt per number went to the database; the others did not wait for it.
    assert early == ["waiting", "SLOT_BUSY", "SLOT_BUSY", "waiting"]
    assert answers == ["booked", "SLOT_BUSY", "SLOT_BUSY", "booked"] and late == "SLOT_TAKEN"
    assert sorted(at_db) == [7, 8] and free == 4


def test_when_the_first_attempt_at_a_number_fails_the_next_one_tries():
    async def main():
        turns, at_db = Turns(4), []
        assert await turns.take(lambda: None, 7) is None
        at_db.append("a")
        busy = await turns.take(lambda: None, 7)
        turns.give_back(False, 7)  # refused for this patient only (a limit): the number is free
        assert await turns.take(lambda: None, 7) is None
        at_db.append("c")
        turns.give_back(False, 7)
        return busy.code, at_db, turns.free
    assert asyncio.run(main()) == ("SLOT_BUSY", ["a", "c"], 4)


def test_an_attempt_queued_for_a_turn_is_busy_when_its_number_went_to_the_database_meanwhile():
    async def main():
        turns = Turns(2)
        assert await turns.take(lambda: None, 1) is None  # both turns taken
        assert await turns.take(lambda: None, 2) is None
        first = asyncio.create_task(turns.take(lambda: None, 7))
        second = asyncio.create_task(turns.take(lambda: None, 7))
        await asyncio.sleep(0.01)
        assert not first.done() and not second.done()  # both queue for a turn, number 7 not yet busy
        turns.give_back(False, 1)  # first gets a turn and takes 7 to the database
        assert await asyncio.wait_for(first, 2) is None
        turns.give_back(False, 2)  # second gets the other turn, finds 7 busy, and gives the turn back
        busy = await asyncio.wait_for(second, 2)
        return busy.code, turns.free
    assert asyncio.run(main()) == ("SLOT_BUSY", 1)


def test_a_turn_given_back_goes_past_the_waiters_the_gate_now_refuses():
    async def main():
        turns, taken = Turns(1), set()
        assert await turns.take(lambda: None) is None
        waiting = [asyncio.create_task(turns.take(lambda s=s: "SLOT_TAKEN" if s in taken else None))
                   for s in (7, 7, 8, 9)]
        await asyncio.sleep(0.01)
        taken.add(7)  # the booking took number 7: no news for the session, the turn goes on
        turns.give_back(False)
        await asyncio.sleep(0.01)
        return [t.result() if t.done() else "waiting" for t in waiting], turns.free, turns.queued
    # Both 7s leave refused, 8 gets the turn, 9 still waits.
    assert asyncio.run(main()) == (["SLOT_TAKEN", "SLOT_TAKEN", None, "waiting"], 0, 1)


def test_a_gate_failing_for_a_waiter_fails_that_waiter_not_the_booking_giving_its_turn_back():
    async def main():
        turns, asked = Turns(1), []

        def broken():
            asked.append(1)
            if len(asked) > 1:  # fine when the attempt arrived, broken when the turn comes back
                raise RuntimeError("gate broken")
        assert await turns.take(lambda: None) is None
        failing = asyncio.create_task(turns.take(broken))
        fine = asyncio.create_task(turns.take(lambda: None))
        await asyncio.sleep(0.01)
        turns.give_back(False)  # must not raise
        got = await asyncio.wait_for(fine, 2)
        with pytest.raises(RuntimeError):
            await failing
        return got, turns.free
    assert asyncio.run(main()) == (None, 0)


def test_an_attempt_that_must_not_be_answered_busy_waits_for_the_number_and_then_tries():
    async def main():
        turns = Turns(4)
        assert await turns.take(lambda: None, 7) is None  # the first attempt at 7, at the database
        retry = asyncio.create_task(turns.take(lambda: None, 7, busy=False))  # an Idempotency-Key retry
        await asyncio.sleep(0.01)
        assert not retry.done()
        turns.give_back(False, 7)
        assert await asyncio.wait_for(retry, 2) is None  # its turn: the database gives it its first answer
        turns.give_back(False, 7)
        return turns.free
    assert asyncio.run(main()) == 4


def test_a_cancelled_waiter_for_a_number_does_not_disturb_the_others():
    async def main():
        turns, taken = Turns(2), set()
        assert await turns.take(lambda: None, 7) is None
        waiters = [asyncio.create_task(turns.take(lambda: "SLOT_TAKEN" if 7 in taken else None, 7, busy=False))
                   for _ in range(2)]
        await asyncio.sleep(0.01)
        waiters[0].cancel()
        await asyncio.sleep(0.01)
        taken.add(7)
        turns.give_back(False, 7)
        return await asyncio.wait_for(waiters[1], 2), turns.free
    assert asyncio.run(main()) == ("SLOT_TAKEN", 2)


def test_waiters_the_gate_refuses_after_news_from_another_process_leave_without_a_turn_given_back():
    """A number booked by another worker: its waiters here used to wait for the head of the queue."""
    import threading

    async def main():
        turns, taken = Turns(1), set()
        assert await turns.take(lambda: None, 1) is None  # the only turn, at the database

        def gate(slot):
            return lambda: "SLOT_TAKEN" if slot in taken else None
        for_7 = asyncio.create_task(turns.take(gate(7), 7))
        for_8 = asyncio.create_task(turns.take(gate(8), 8))
        await asyncio.sleep(0.01)
        taken.add(7)  # what the gate's listener thread learns from another worker
        heard = threading.Thread(target=lambda: (turns.gate_heard(), turns.gate_heard()))
        heard.start()
        heard.join()
        refusal = await asyncio.wait_for(for_7, 2)
        still_waiting = not for_8.done() and turns.queued == 1
        turns.give_back(False, 1)
        return refusal, still_waiting, await asyncio.wait_for(for_8, 2)
    assert asyncio.run(main()) == ("SLOT_TAKEN", True, None)
