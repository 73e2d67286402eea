"""Every variable part of a Redis key is encoded, so different names never share a key; a model's keys share
its partition's hash slot (layout 3)."""

import pytest
from redis.crc import key_slot

from producers.partitioning import partition_for
from stream_processors.state.keys import (AppKeys, PartitionKeys, member, parse_member, part, profile_key,
                                          triggers_done_key,
                                          triggers_parked_key, unpart)


def test_a_colon_in_the_model_or_the_version_gives_different_keys():
    keys = AppKeys("app")
    assert keys.state("a:b", "c") != keys.state("a", "b:c")
    assert keys.profile("a:b", "c") != keys.profile("a", "b:c")
    assert profile_key("x:y", "m", "1") != profile_key("x", "y:m", "1")
    assert keys.waiting_label("a:b", "c") != keys.waiting_label("a", "b:c")
    assert triggers_done_key("g:t", "x") != triggers_done_key("g", "t:x")
    assert triggers_parked_key("g:t", "x") != triggers_parked_key("g", "t:x")


def test_a_models_keys_carry_the_hash_tag_of_its_partition():
    keys = AppKeys("driftline-worker", 12)
    n = partition_for(b"credit", 12)
    assert keys.partition_of("credit") == n
    assert keys.state("credit", "1") == f"{{driftline:driftline-worker:p{n}}}:state:credit:1"
    assert keys.predictions("fraud-v2", 7) == \
        f"{{driftline:driftline-worker:p{partition_for(b'fraud-v2', 12)}}}:pred:fraud-v2:7"
    assert keys.profile("credit", "1") == "driftline:driftline-worker:profile:credit:1"  # untagged, read-only


@pytest.mark.parametrize("app", ["w", "a:b", "{x}", "app with space"])
@pytest.mark.parametrize("model", ["credit", "a:b", "{p1}", "é", "m" * 300])
def test_everything_a_batch_writes_for_a_model_is_in_one_slot_with_its_partitions_offsets(app, model):
    keys = AppKeys(app, 7)
    own = keys.for_model(model)
    written = [own.offsets, own.models, own.label_counts, own.quarantined, keys.state(model, "v:1"),
               keys.predictions(model, 5), keys.waiting_label(model, "e:1"), keys.waiting(model),
               own.quarantine("state", "ab" * 32)]
    assert {key_slot(k.encode()) for k in written} == {key_slot(f"driftline:{part(app)}:p{own.partition}".encode())}


def test_partitions_of_one_app_are_different_tags_and_apps_never_share_one():
    tags = {PartitionKeys(app, n).tag for app in ("a", "a:p1", "b") for n in range(4)}
    assert len(tags) == 12
    assert AppKeys("a", 4).of(6).partition == 2  # a partition past the count (a misconfigured sender) wraps


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
