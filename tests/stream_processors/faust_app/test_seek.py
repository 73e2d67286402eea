"""A seek runs on faust's consumer thread, never on the event loop's (it raced the thread's fetch)."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import faust
from faust.types import TP

from stream_processors.config import Settings
from stream_processors.faust_app.app import seek_on_the_consumer_thread
from stream_processors.faust_app.options import faust_options


class _ConsumerThread:
    """Stands in for faust's consumer thread: ``call_thread`` runs a call on a thread of its own."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="consumer-thread")
        self.seeks: list[tuple[TP, int, str]] = []

    async def call_thread(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        self._pool.shutdown()

    def seek(self, partition: TP, offset: int) -> None:
        self.seeks.append((partition, offset, threading.current_thread().name))


def test_the_worker_s_seek_reaches_aiokafka_on_the_consumer_thread():
    consumer = faust.App("seek-test", **faust_options(Settings())).consumer
    stand_in = consumer._thread = _ConsumerThread()
    tp = TP("inference", 3)
    asyncio.run(consumer.seek(tp, 41))
    # faust's own seek calls aiokafka on the caller's thread: the race this patch removes
    assert stand_in.seeks == [(tp, 41, threading.current_thread().name)]
    stand_in.seeks.clear()
    seek_on_the_consumer_thread(consumer)
    asyncio.run(consumer.seek(tp, 42))
    [(partition, offset, thread)] = stand_in.seeks
    assert (partition, offset) == (tp, 42) and thread.startswith("consumer-thread")
    assert consumer._read_offset[tp] == 42  # faust's own bookkeeping of the seek still happens
    stand_in.close()
