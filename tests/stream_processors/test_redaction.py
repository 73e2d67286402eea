import pytest

from stream_processors.redaction import redact_url, scrub


@pytest.mark.parametrize("url, shown", [
    ("redis://:hunter22@cache:6379/0", "redis://:***@cache:6379/0"),
    ("redis://driftline:hunter22@cache:6379/0", "redis://driftline:***@cache:6379/0"),
    ("rediss://driftline:p%40ss@cache:6380/1", "rediss://driftline:***@cache:6380/1"),
    ("redis://cache:6379/0", "redis://cache:6379/0"),
    ("redis://driftline@cache:6379/0", "redis://driftline@cache:6379/0"),
    ("Redis is unreachable at redis://u:hunter22@h:1/0 (timeout)", "Redis is unreachable at redis://u:***@h:1/0 (timeout)"),
])
def test_urls_lose_their_password_and_keep_the_rest(url, shown):
    out = redact_url(url)
    assert "hunter22" not in out and "p%40ss" not in out
    if shown is not None:
        assert out == shown


def test_scrub_removes_known_secrets_wherever_they_appear_longest_first():
    text = "auth failed: password 'hunter22x' (also hunter22) for kafka://u:zz@b:9092"
    out = scrub(text, ["hunter22", "hunter22x", None, "ab"])
    assert "hunter22" not in out and "zz@" not in out
    assert out == "auth failed: password '***' (also ***) for kafka://u:***@b:9092"
    assert scrub("ab is too short to be a secret", ["ab"]) == "ab is too short to be a secret"
