"""Batched calls: what is submitted while a batch is on its way goes in the next; results and errors per batch."""

from __future__ import annotations

import asyncio

import pytest

from common.batcher import Batcher


class Server:
    """Answers each batch after `release` is set, doubling every item; records the batches it saw."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.fail_next = False

    async def run(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        await self.release.wait()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("server gone")
        return [item * 2 for item in items]


async def test_items_submitted_while_a_batch_is_on_its_way_go_together_in_the_next_one() -> None:
    server = Server()
    batcher = Batcher(server.run)
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0)
    later = [asyncio.create_task(batcher.submit(n)) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    assert server.batches == [[1]]  # the later ones were not answered by the batch already sent
    server.release.set()
    assert await first == 2
    assert await asyncio.gather(*later) == [4, 6, 8]
    assert server.batches == [[1], [2, 3, 4]]


async def test_an_error_reaches_every_caller_of_its_batch_and_the_next_batch_still_runs() -> None:
    server = Server()
    server.fail_next = True
    batcher = Batcher(server.run)
    failing = [asyncio.create_task(batcher.submit(n)) for n in (1, 2)]
    await asyncio.sleep(0)
    fine = asyncio.create_task(batcher.submit(3))
    server.release.set()
    for task in failing:
        with pytest.raises(ConnectionError):
            await task
    assert await fine == 6


async def test_a_cancelled_caller_leaves_its_item_in_the_batch_for_the_others() -> None:
    server = Server()
    batcher = Batcher(server.run)
    cancelled = asyncio.create_task(batcher.submit(1))
    kept = asyncio.create_task(batcher.submit(2))
    await asyncio.sleep(0)
    cancelled.cancel()
    server.release.set()
    assert await kept == 4
    assert server.batches == [[1, 2]]
    await batcher.wait_idle()


async def test_a_batch_answering_the_wrong_number_of_results_fails_its_callers() -> None:
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    batcher: Batcher[int, int] = Batcher(short)
    results = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
    assert [str(result) for result in results] == ["a batch of 2 items returned 1 results"] * 2
