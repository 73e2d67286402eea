"""Kept predictions are encoded from one dump of a batch's records (``split_array``), byte for byte as a dump per
record would be: whatever the ids and values, with quotes, backslashes, brackets and commas where they would
fool a split."""

from __future__ import annotations

import orjson
from hypothesis import example, given, settings, strategies as st

from detectors.model.writes import KeepPredictions
from stream_processors.state.redis_store import _kept
from stream_processors.state.store import prediction_records, split_array

# the characters a split could be fooled by, and some it could not
_TEXT = st.text(alphabet=st.sampled_from(['"', "\\", ",", "[", "]", "{", "a", "0", " ", "\x00", "\n", "é", "😀"]),
                max_size=8)
_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 63, 2 ** 64 - 1),
                    st.floats(allow_nan=False, allow_infinity=False), _TEXT)
_RECORD = st.tuples(_TEXT, _SCALAR, st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
                    st.floats(0, 2e9))


def _reference(write: KeepPredictions) -> bytes:
    """What the script argument was made of before: a dump of [id, record, id, record...], a record a string."""
    pairs: list = []
    for event_id, prediction in zip(write.event_ids, write.predictions):
        pairs += [event_id, orjson.dumps(prediction).decode()]
    return orjson.dumps(pairs)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_TEXT, _RECORD), min_size=1, max_size=12))
@example([('x",', ("1", 0, 0.5, 1.0)), ("b", ("1", 1, None, 2.0))])       # an id whose end looks like a separator
@example([("a\\", ("1", "],[", 0.5, 1.0)), ("", ('"', "\\", None, 2.0))])  # a backslash before a closing quote
@example([("a", ("1", 0, 0.5, 1.0)), ("b", ("1", 1, 0.25, 2.0))])         # the common case: no fallback
def test_one_dump_split_is_a_dump_per_record(items):
    write = KeepPredictions("m", 1, 60, tuple(i for i, _ in items), tuple(r for _, r in items))
    assert prediction_records(write) == [orjson.dumps(r) for r in write.predictions]
    assert _kept(write) == _reference(write)


def test_the_split_is_taken_when_it_is_safe_and_refused_when_it_is_not():
    """Not a silent fallback every time: plain ids and records split; ids or values that could fool it do not."""
    ids = orjson.dumps(["e1", "e2", "e3"])
    assert split_array(ids, 3, b'","') == [b"e1", b"e2", b"e3"]
    assert split_array(orjson.dumps(['x",', "b"]), 2, b'","') is None          # count right, split wrong: refused
    records = orjson.dumps([("1", 0, 0.5, 1.0), ("1", "a],[b", 0.5, 2.0)])
    assert split_array(records, 2, b"],[") is None
    assert split_array(orjson.dumps([("1", 0, 0.5, 1.0), ("2", 1, None, 2.0)]), 2, b"],[") == \
        [b'"1",0,0.5,1.0', b'"2",1,null,2.0']
    assert split_array(b"[]", 0, b"],[") is None
