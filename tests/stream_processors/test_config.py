import pytest

from stream_processors.errors import ConfigError
from stream_processors.config import Settings, load_settings


def test_flags_override_environment_override_defaults():
    env = {"DRIFTLINE_KAFKA_BOOTSTRAP": "k:1", "DRIFTLINE_COOLDOWN_EVENTS": "7", "DRIFTLINE_APP_ID": "envapp"}
    s = load_settings({"app_id": "flagapp", "redis_url": None}, environ=env)
    assert (s.kafka.bootstrap, s.cooldown_events, s.app_id) == ("k:1", 7, "flagapp")
    assert s.redis.url == Settings().redis.url


@pytest.mark.parametrize("env, message", [
    ({"DRIFTLINE_BLOCK_SIZE": "ten"}, "DRIFTLINE_BLOCK_SIZE='ten' is not a valid int"),
    ({"DRIFTLINE_BLOCK_SIZE": "0"}, "block_size must be at least 1"),
    ({"DRIFTLINE_ADWIN_DELTA": "3"}, "adwin_delta must be in (0, 1)"),
    ({"DRIFTLINE_REDIS_URL": "localhost:6379"}, "must start with redis://"),
    ({"DRIFTLINE_INGEST_TLS_CERT": "/c.pem"}, "TLS needs both"),
    ({"DRIFTLINE_INGEST_PORT": "70000"}, "ingest_port must be 0..65535"),
    ({"DRIFTLINE_INGEST_MAX_ROWS": "0"}, "ingest_max_rows must be at least 1"),
])
def test_bad_values_are_clear_errors(env, message):
    with pytest.raises(ConfigError) as err:
        load_settings(environ=env)
    assert message in str(err.value)


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        Settings().app_id = "x"


def test_to_env_round_trips_through_load_settings():
    s = Settings(app_id="x", cooldown_events=9, batch_within_s=0.3)
    env = s.to_env({"DRIFTLINE_STALE": "1", "PATH": "/bin"})
    assert "DRIFTLINE_STALE" not in env and env["PATH"] == "/bin"
    assert load_settings(environ=env) == s


def test_the_ingest_token_is_not_in_the_settings_repr():
    s = load_settings(environ={"DRIFTLINE_INGEST_TOKEN": "tok-123456"})
    assert s.ingest_token == "tok-123456" and "tok-123456" not in repr(s)
