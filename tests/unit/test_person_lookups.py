"""Gate refusals owe a per-person count: their person look-ups are read in batches, one query per batch."""

import asyncio
import threading

from guahao.security.guards import PersonLookups


class Counting(PersonLookups):
    def __init__(self, people: dict):
        super().__init__(db=None)
        self.people, self.queries = people, []
        self.release = threading.Event()

    def _read(self, pairs):
        self.queries.append(len(pairs))
        self.release.wait(1)  # the first query stays open while the others arrive
        return {p: self.people[p] for p in pairs if p in self.people}


def test_waiters_share_batched_queries_and_get_their_own_answer():
    people = {(a, a * 10): 1000 + a for a in range(1, 200)}
    lookups = Counting(people)

    async def main():
        first = asyncio.create_task(lookups.person_of(1, 10))
        await asyncio.sleep(0.05)  # the first query is now open: everyone else queues behind it
        rest = [asyncio.create_task(lookups.person_of(a, a * 10)) for a in range(2, 200)]
        stranger = asyncio.create_task(lookups.person_of(2, 30))  # not this account's patient
        await asyncio.sleep(0.05)
        lookups.release.set()
        return await first, await asyncio.gather(*rest), await stranger

    first, rest, stranger = asyncio.run(main())
    assert first == 1001 and rest == [1000 + a for a in range(2, 200)] and stranger is None
    assert lookups.queries == [1, 199]  # 200 look-ups, two queries


def test_a_failed_read_answers_nothing_instead_of_hanging():
    class Failing(PersonLookups):
        def _read(self, pairs):
            raise RuntimeError("database away")

    async def main():
        lookups = Failing(db=None)
        return await asyncio.gather(lookups.person_of(1, 1), lookups.person_of(2, 2), return_exceptions=True)

    results = asyncio.run(main())
    assert isinstance(results[0], RuntimeError) and results[1] is None
