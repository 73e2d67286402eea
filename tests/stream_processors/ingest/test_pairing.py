"""Halves pair in either order; nothing leaves the table without being returned to be counted."""

from stream_processors.ingest.cloudevents import CloudEvent
from stream_processors.ingest.pairing import PairingTable


def half(id_, kind, rows=1, size=0):
    return CloudEvent(id_, kind, "", None, "m", None, [{}] * rows, size)


def test_either_order_pairs_and_resends_replace():
    table = PairingTable(wait_s=10, max_waiting=100)
    assert table.offer(half("a", "request"), 0)[0] is None
    first = half("a", "request")
    # a resend replaces, it does not pair with itself; the copy replaced leaves unpaired, to be counted
    assert table.offer(half("a", "request"), 1) == (None, [first])
    assert len(table) == 1
    pair, _ = table.offer(half("a", "response"), 2)
    assert [p.half for p in pair] == ["request", "response"] and len(table) == 0
    table.offer(half("b", "response"), 3)
    pair, _ = table.offer(half("b", "request"), 4)
    assert [p.half for p in pair] == ["request", "response"]


def test_expiry_and_overflow_return_the_unpaired():
    table = PairingTable(wait_s=10, max_waiting=2)
    table.offer(half("a", "request"), 0)
    table.offer(half("b", "response"), 5)
    _, evicted = table.offer(half("c", "request"), 6)
    assert [e.id for e in evicted] == ["a"]
    assert table.waiting() == {"request": 1, "response": 1}
    assert [e.id for e in table.expire(15.5)] == ["b"]
    assert [e.id for e in table.expire(100)] == ["c"] and len(table) == 0


def test_the_rows_held_are_bounded_too():
    table = PairingTable(wait_s=10, max_waiting=100, max_rows=10)
    table.offer(half("a", "request", rows=4), 0)
    table.offer(half("b", "request", rows=4), 1)
    _, evicted = table.offer(half("c", "response", rows=4), 2)
    assert [e.id for e in evicted] == ["a"] and len(table) == 2
    pair, _ = table.offer(half("c", "request", rows=4), 3)  # pairing frees the rows of the half it takes
    assert pair is not None
    assert table.offer(half("d", "request", rows=6), 4) == (None, [])  # 4 + 6 rows: within the bound


def test_the_bytes_held_are_bounded_oldest_out_first_and_the_newest_stays():
    table = PairingTable(wait_s=10, max_waiting=100, max_bytes=1_000)
    table.offer(half("a", "request", size=400), 0)
    table.offer(half("b", "request", size=400), 1)
    assert table.bytes == 800
    _, evicted = table.offer(half("c", "response", size=300), 2)
    assert [e.id for e in evicted] == ["a"] and table.bytes == 700
    pair, _ = table.offer(half("b", "response", size=50), 3)  # pairing frees the bytes of the half it takes
    assert pair is not None and table.bytes == 300
    _, evicted = table.offer(half("d", "request", size=5_000), 4)  # larger than the bound alone: it stays
    assert [e.id for e in evicted] == ["c"] and len(table) == 1 and table.bytes == 5_000
    assert table.expire(100) and table.bytes == 0


def test_a_restored_half_pairs_with_a_resend_but_never_twice():
    table = PairingTable(wait_s=10, max_waiting=100)
    response = half("a", "response")
    assert table.restore(response, 0) == []  # back in the table: the resent request finds it
    pair, _ = table.offer(half("a", "request"), 1)
    assert pair is not None and len(table) == 0
    # the request was resent while its pair waited for Kafka: the response is not put back to pair again
    table.offer(half("b", "request"), 2)
    assert table.restore(half("b", "response"), 3) == [half("b", "response")] and len(table) == 1
