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


@pytest.mark.parametrize("url", ["redis://u:pa/ss@localhost:6399/0", "redis://u:pa ss@localhost:6379/0",
                                 "redis://u:pa?ss#x@localhost:6379/0", "rediss://u:p@ss@localhost:6380/0"])
def test_unencoded_reserved_characters_in_a_password_are_masked_too(url):
    out = redact_url(f"Redis at {url} refused the credentials")
    assert "pa" not in out.split("://", 1)[1].split("@")[0].split(":", 1)[1] and out.endswith("refused the credentials")


@pytest.mark.parametrize("url", ["redis://u:secretpart/more@localhost:6379/0", "redis://h:notaport/0"])
def test_an_unparsable_redis_url_is_one_config_error_without_the_password(url):
    from producers.errors import ConfigError
    from stream_processors.config import RedisConnection

    with pytest.raises(ConfigError) as caught:
        RedisConnection(url)
    assert "secretpart" not in str(caught.value) and "percent-encode" in str(caught.value)


def test_the_retrain_command_inherits_no_driftline_secret(monkeypatch):
    from stream_processors.cli import triggers

    secret_env = {name: "s3cret-value" for name in triggers._WITHHELD}
    monkeypatch.setattr(triggers, "inherited_environment", lambda: {**secret_env, "PATH": "/bin"})
    env = triggers._command_environment()
    assert env == {"PATH": "/bin"}
