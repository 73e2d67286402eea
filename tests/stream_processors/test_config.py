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


def test_every_setting_is_read_from_its_environment_variable_as_its_annotated_type():
    import typing

    from stream_processors.config import env_name, setting_keys

    defaults = Settings().values()
    hints = {**typing.get_type_hints(Settings), "kafka_bootstrap": str, "redis_url": str}
    changed = {}
    for key in setting_keys():
        value = defaults[key]
        assert type(value) is hints.get(key, type(value))
        if isinstance(value, bool):
            changed[key] = not value
        elif isinstance(value, int):
            changed[key] = value + 1
        elif isinstance(value, float):
            changed[key] = value / 2  # stays within every bound the settings check
    env = {env_name(key): str(value).lower() if isinstance(value, bool) else str(value)
           for key, value in changed.items()}
    loaded = load_settings(environ=env).values()
    for key, value in changed.items():
        assert loaded[key] == value and type(loaded[key]) is type(value), key
    assert len(changed) > 30  # most settings are numbers or switches: the check above is not vacuous


def test_connections_are_grouped_under_their_service():
    from producers.kafka import KafkaConnection
    from stream_processors.config import RedisConnection

    s = load_settings(environ={"DRIFTLINE_KAFKA_BOOTSTRAP": "a:1,b:2", "DRIFTLINE_REDIS_URL": "redis://r:7/1"})
    assert s.kafka == KafkaConnection("a:1,b:2") and s.redis == RedisConnection("redis://r:7/1")
    assert s.replace(kafka_bootstrap="c:3").kafka.bootstrap == "c:3"
    assert s.replace(redis=RedisConnection("redis://q:1/0")).redis.url == "redis://q:1/0"
    assert s.replace(app_id="x").kafka == s.kafka


def test_a_redis_password_never_shows():
    s = load_settings(environ={"DRIFTLINE_REDIS_URL": "redis://driftline:hunter22@cache:6379/0"})
    assert s.redis.url.endswith("hunter22@cache:6379/0")
    assert "hunter22" not in repr(s) and "hunter22" not in s.redis.redacted()
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"DRIFTLINE_REDIS_URL": "http://u:hunter22@cache"})
    assert "hunter22" not in str(err.value)


def test_an_unknown_setting_is_refused():
    with pytest.raises(ConfigError, match="'no_such' is not a setting"):
        load_settings({"no_such": 1}, environ={})
    with pytest.raises(TypeError):
        Settings().replace(no_such=1)


def test_the_module_examples_run():
    import doctest

    import stream_processors.config

    result = doctest.testmod(stream_processors.config)
    assert result.attempted >= 3 and result.failed == 0


def test_redis_cluster_nodes_are_read_and_checked():
    s = load_settings(environ={"DRIFTLINE_REDIS_CLUSTER_NODES": "r1:7000, r2:7001,[::1]:7002",
                               "DRIFTLINE_REDIS_URL": "rediss://app:pw-9x@ignored:6379"})
    assert s.redis.cluster_nodes == "r1:7000, r2:7001,[::1]:7002"
    assert s.redis.redacted() == "cluster r1:7000,r2:7001,::1:7002"
    assert "pw-9x" not in repr(s.redis)


@pytest.mark.parametrize("nodes,url,message", [
    ("r1", "redis://localhost:6379", "entry 1 is not host:port"),
    ("r1:7000,r1:70000", "redis://localhost:6379", "entry 2 is not host:port"),
    ("user:s3cret-pw@r1:7000", "redis://localhost:6379", "entry 1 is not host:port"),
    ("r1:7000,default:s3cret-pw", "redis://localhost:6379", "entry 2 is not host:port"),
    ("r1:7000?password=s3cret-pw", "redis://localhost:6379", "entry 1 is not host:port"),
    (" , ", "redis://localhost:6379", "holds no host:port"),
    ("r1:7000", "unix:///run/redis.sock", "is unix://"),
])
def test_bad_redis_cluster_nodes_are_one_clear_error_without_the_password(nodes, url, message):
    with pytest.raises(ConfigError, match="DRIFTLINE_REDIS_CLUSTER_NODES") as caught:
        load_settings(environ={"DRIFTLINE_REDIS_CLUSTER_NODES": nodes, "DRIFTLINE_REDIS_URL": url})
    assert message in str(caught.value)
    assert "s3cret-pw" not in str(caught.value) and "r1" not in str(caught.value)  # an entry's text: never shown
