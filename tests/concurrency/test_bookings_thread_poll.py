"""The bookings' thread hands a finished booking back to the server's loop (booking/dbthread.py): taken up
by a poll between two requests' reads when guahao serve's protocol polls, else by the loop's next turn —
and either way its caller is answered exactly once."""

import asyncio
import time

from guahao.booking.dbthread import BookingsInThread


class _Inner:
    """Stands in for pg_async.Bookings: the thread's loop runs `book` as it would the transaction."""
    size = 1

    async def open(self):
        pass

    async def close(self):
        pass

    async def book(self, now, account_id, slot_id, patient_id, insurance_type, on_person, on_slot, person_id):
        return ("booked", slot_id, patient_id)


def _run(poll_between: bool):
    async def main():
        bookings = BookingsInThread(_Inner(), batch=1)
        await bookings.open()
        try:
            got = []
            bookings.submit(None, 1, 7, 9, "self_pay", lambda f: got.append(f.result()))
            polled = None
            if poll_between:
                deadline = time.monotonic() + 2
                while not got and time.monotonic() < deadline:
                    time.sleep(0.005)  # the server's loop is busy: only a poll can take the outcome up
                    if bookings.due:
                        bookings.poll()
                polled = list(got)
            deadline = time.monotonic() + 2
            while not got and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)  # the wake-up the thread sent finds nothing left to answer
            return polled, got
        finally:
            await bookings.close()
    return asyncio.run(main())


def test_a_poll_answers_a_finished_booking_without_a_loop_turn_and_only_once():
    polled, got = _run(poll_between=True)
    assert polled == [("booked", 7, 9)]
    assert got == [("booked", 7, 9)]


def test_without_polls_the_loop_answers_it():
    _, got = _run(poll_between=False)
    assert got == [("booked", 7, 9)]
