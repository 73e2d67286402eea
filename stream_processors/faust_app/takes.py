"""The worker's takes: faust's ``Stream.take_events``, filled while the agent works and bounded by bytes too.

faust's ``take_events(n, within)`` stops filling its buffer while the agent works on a take, so the next take
holds what faust can move in ``within`` seconds once the agent is back: for single-event messages, a few
hundred messages, whatever ``n``. A take's fixed cost (each model's state applied and saved once) is then
paid every few hundred events: in-process, single-event messages cost 80 µs each in takes of 1,000 and 27 µs
in takes of 10,000.

``takes`` fills the next take while the agent works on this one, and yields it when it holds ``max_messages``
messages or ``max_bytes`` bytes of message values (a larger message is a take of its own), or ``within``
seconds after the agent came back for it. A take's size then follows the load: what arrived while the agent
worked on the last one, up to its bounds. A take is acknowledged to faust when the agent comes back for the
next one, never when the agent failed on it (faust acknowledges in a ``finally``); Redis holds the offsets a
restart resumes from either way.

It uses what ``take_events`` uses of faust's ``Stream``: ``add_processor``, ``channel``, ``current_event``,
``ack``, ``crash``, ``enable_acks``, ``wait``, ``wait_for_stopped``, ``should_stop``, and the private
``_enable_passive`` and ``_processors``. ``tests/integration/test_takes.py`` runs it on a real broker.
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

from mode.utils.aiter import aiter

__all__ = ["takes"]

_log = logging.getLogger("driftline.worker")


class _Take:
    """The events of the take being filled, and their message bytes."""

    def __init__(self) -> None:
        self.events: list = []
        self.size = 0


async def takes(stream, max_messages: int, max_bytes: int, within: float) -> AsyncIterator[list]:
    """Lists of faust events of ``stream``, each within ``max_messages`` and ``max_bytes`` (one larger message
    alone), as described in the module docstring."""
    if max_messages < 1 or max_bytes < 1 or within <= 0:
        raise ValueError("max_messages, max_bytes and within must be positive")
    filling = _Take()
    full = asyncio.Event()  # the take being filled is at a bound: its filler waits for room
    room = asyncio.Event()  # the agent took it: filling goes on

    async def wait_for_room() -> None:
        full.set()
        room.clear()
        await stream.wait(room)  # no message more until the agent takes these: flow control pauses fetching

    async def add(value):
        try:
            event = stream.current_event
            if event is None:
                raise RuntimeError("a take found faust's current_event None")
            size = len(event.message.value or b"")
            if filling.events and filling.size + size > max_bytes:  # it starts the next take (as chunks() cuts)
                await wait_for_room()
            filling.events.append(event)
            filling.size += size
            if len(filling.events) >= max_messages or filling.size >= max_bytes:
                await wait_for_room()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # as take_events does: the stream crashes, and with it the agent
            _log.exception("a message was not added to the take: %r", exc)
            await stream.crash(exc)
        return value

    acks = stream.enable_acks
    stream.enable_acks = False  # acknowledged here, once the agent is done with a take
    stream.add_processor(add)
    stream._enable_passive(aiter(stream.channel))
    try:
        while not stream.should_stop:
            await stream.wait_for_stopped(full, timeout=within)
            if not filling.events:
                continue
            taken = filling.events
            filling.events, filling.size = [], 0
            full.clear()
            room.set()
            yield taken
            for event in taken:
                await stream.ack(event)
            del taken
    finally:
        stream.enable_acks = acks
        stream._processors.remove(add)
        room.set()  # a filler waiting for room goes on (what it adds is dropped with this generator)
