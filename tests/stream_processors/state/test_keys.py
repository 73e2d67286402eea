"""Every variable part of a Redis key is encoded, so different names never share a key."""

import pytest

from stream_processors.state.keys import (AppKeys, member, parse_member, part, profile_key, triggers_done_key,
                                          triggers_parked_key, unpart)


def test_a_colon_in_the_model_or_the_version_gives_different_keys():
    keys = AppKeys("app")
    assert keys.state("a:b", "c") != keys.state("a", "b:c")
    assert keys.profile("a:b", "c") != keys.profile("a", "b:c")
    assert profile_key("x:y", "m", "1") != profile_key("x", "y:m", "1")
    assert keys.waiting_label("a:b", "c") != keys.waiting_label("a", "b:c")
    assert triggers_done_key("g:t", "x") != triggers_done_key("g", "t:x")
    assert triggers_parked_key("g:t", "x") != triggers_parked_key("g", "t:x")


def test_plain_names_keep_the_keys_they_always_had():
    keys = AppKeys("driftline-worker")
    assert keys.state("credit", "1") == "driftline:driftline-worker:state:credit:1"
    assert keys.predictions("fraud-v2", 7) == "driftline:driftline-worker:pred:fraud-v2:7"


@pytest.mark.parametrize("name", ["a:b", "{tag}", "50%", "tab\there", "new\nline", "é ü", "%3A", "", "x y"])
def test_an_encoded_part_holds_no_separator_or_hash_tag_and_decodes_back(name):
    encoded = part(name)
    assert not set(encoded) & set(":{} \t\n") and encoded.isprintable()
    assert unpart(encoded) == name


def test_a_literal_percent_sequence_does_not_collide_with_an_encoded_colon():
    assert part("a%3Ab") != part("a:b")


@pytest.mark.parametrize("model,version", [("a\tb", "c"), ("a", "b\tc"), ("m:1", "2"), ("%09", "v")])
def test_a_model_version_member_round_trips_and_is_unambiguous(model, version):
    assert parse_member(member(model, version)) == (model, version)
    assert member("a\tb", "c") != member("a", "b\tc")
