"""Security settings: Kafka SASL/TLS and Redis credentials reach every client, bad combinations are refused at
start-up with one line, secrets never show in repr, errors or --help, and the control topic is signed."""

from __future__ import annotations

import ssl
import subprocess

import orjson
import pytest
import redis

from producers.kafka import KafkaConnection, faust_broker_settings
from stream_processors.alerts import control_record
from stream_processors.cli import build_parser
from stream_processors.cli.alerts import format_alert
from stream_processors.config import RedisConnection, load_settings
from stream_processors.errors import ConfigError, RedisAuthFailed, ServiceUnavailable
from stream_processors.signing import verify

SECRET = "s3cret-password-of-some-length"


@pytest.fixture
def password_file(tmp_path):
    path = tmp_path / "password"
    path.write_text(SECRET + "\n")
    return path


@pytest.fixture
def pki(tmp_path):
    """A self-signed CA, and a client certificate and key (openssl, as deploy/stack.sh makes them)."""
    ca_key, ca, key, csr, cert = (tmp_path / n for n in ("ca.key", "ca.pem", "client.key", "client.csr",
                                                            "client.pem"))
    run = lambda *args: subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=Test CA", "-keyout", ca_key,
        "-out", ca)
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=driftline", "-keyout", key, "-out", csr)
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "1", "-out", cert)
    return ca, cert, key


def test_sasl_ssl_settings_reach_librdkafka_and_the_password_file_wins(password_file, pki):
    ca, _cert, _key = pki
    s = load_settings(environ={"DRIFTLINE_KAFKA_BOOTSTRAP": "k:9093", "DRIFTLINE_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
                               "DRIFTLINE_KAFKA_SASL_MECHANISM": "scram-sha-256",
                               "DRIFTLINE_KAFKA_SASL_USERNAME": "driftline", "DRIFTLINE_KAFKA_SASL_PASSWORD": "other",
                               "DRIFTLINE_KAFKA_SASL_PASSWORD_FILE": str(password_file),
                               "DRIFTLINE_KAFKA_SSL_CAFILE": str(ca)})
    assert s.kafka.client_config() == {"bootstrap.servers": "k:9093", "security.protocol": "SASL_SSL",
                                       "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "driftline",
                                       "sasl.password": SECRET, "ssl.ca.location": str(ca)}
    assert SECRET not in repr(s) and SECRET not in repr(s.kafka) and SECRET not in s.kafka.describe()
    assert s.kafka.secrets() == [SECRET]


def test_faust_gets_the_same_credentials(password_file, pki):
    ca, cert, key = pki
    sasl = KafkaConnection("k:1", security_protocol="SASL_SSL", sasl_username="u",
                           sasl_password_file=str(password_file), ssl_cafile=str(ca))
    credentials = faust_broker_settings(sasl)["broker_credentials"]
    assert (credentials.protocol.value, credentials.mechanism.value) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (credentials.username, credentials.password) == ("u", SECRET)
    assert isinstance(credentials.ssl_context, ssl.SSLContext)
    assert credentials.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert SECRET not in repr(credentials)
    mtls = faust_broker_settings(KafkaConnection("k:1", security_protocol="SSL", ssl_cafile=str(ca),
                                                 ssl_certfile=str(cert), ssl_keyfile=str(key)))
    assert mtls["broker_credentials"].protocol.value == "SSL"
    assert "broker_credentials" not in faust_broker_settings(KafkaConnection("k:1"))


@pytest.mark.parametrize("settings, message", [
    ({"security_protocol": "TLS"}, "must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
    ({"security_protocol": "SASL_SSL", "sasl_username": "u"}, "needs DRIFTLINE_KAFKA_SASL_USERNAME"),
    ({"security_protocol": "SASL_SSL", "sasl_password": SECRET}, "needs DRIFTLINE_KAFKA_SASL_USERNAME"),
    ({"security_protocol": "SASL_SSL", "sasl_username": "u", "sasl_password": SECRET, "sasl_mechanism": "GSSAPI"},
     "DRIFTLINE_KAFKA_SASL_MECHANISM must be one of"),
    ({"sasl_username": "u", "sasl_password": SECRET}, "but DRIFTLINE_KAFKA_SECURITY_PROTOCOL is PLAINTEXT"),
    ({"ssl_cafile": "/etc/hostname"}, "TLS files are set but"),
    ({"security_protocol": "SSL", "ssl_cafile": "/no/such/ca.pem"}, "DRIFTLINE_KAFKA_SSL_CAFILE: cannot read"),
    ({"security_protocol": "SSL", "ssl_certfile": "/etc/hostname"}, "needs both"),
    ({"security_protocol": "SASL_SSL", "sasl_username": "u", "sasl_password_file": "/no/such/file"},
     "DRIFTLINE_KAFKA_SASL_PASSWORD_FILE: cannot read '/no/such/file'"),
])
def test_bad_kafka_combinations_are_refused_at_start_up(settings, message):
    with pytest.raises(ConfigError) as err:
        KafkaConnection("k:1", **settings)
    assert message in str(err.value) and SECRET not in str(err.value)


def test_unusable_tls_files_are_refused_before_connecting(tmp_path):
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="the Kafka TLS files cannot be used"):
        KafkaConnection("k:1", security_protocol="SSL", ssl_cafile=str(not_pem)).ssl_context()


def test_the_redis_password_file_and_ca_reach_redis_py(password_file, pki):
    ca, _cert, _key = pki
    s = load_settings(environ={"DRIFTLINE_REDIS_URL": "rediss://driftline:in-url-password@cache:6380/0",
                               "DRIFTLINE_REDIS_PASSWORD_FILE": str(password_file),
                               "DRIFTLINE_REDIS_SSL_CAFILE": str(ca)})
    assert s.redis.client_options() == {"password": SECRET, "ssl_ca_certs": str(ca)}
    client = s.redis.client(socket_timeout=1)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"], kwargs["ssl_ca_certs"]) == ("driftline", SECRET, str(ca))
    assert SECRET not in repr(s.redis) and "in-url-password" not in repr(s.redis)
    assert set(s.redis.secrets()) == {SECRET, "in-url-password"}
    with pytest.raises(ConfigError, match="is not rediss://"):
        RedisConnection("redis://cache:6379/0", ssl_cafile=str(ca))
    with pytest.raises(ConfigError, match="DRIFTLINE_REDIS_PASSWORD_FILE: cannot read"):
        RedisConnection("redis://cache:6379/0", password_file="/no/such/file")


def test_redis_errors_are_one_line_without_the_password(password_file):
    connection = RedisConnection("redis://driftline:url-secret-pw@cache:6379/0", password_file=str(password_file))
    refused = connection.error(redis.AuthenticationError(f"WRONGPASS for {SECRET}"))
    assert isinstance(refused, RedisAuthFailed) and "refused the credentials" in str(refused)
    down = connection.error(redis.ConnectionError("Error 111 connecting to redis://driftline:url-secret-pw@cache"))
    assert isinstance(down, ServiceUnavailable) and not isinstance(down, RedisAuthFailed)
    for error in (refused, down):
        assert "\n" not in str(error)
        assert SECRET not in str(error) and "url-secret-pw" not in str(error)
        assert "redis://driftline:***@cache:6379/0" in str(error)


def test_the_signing_key_is_checked_at_start_up_and_never_shown(tmp_path):
    with pytest.raises(ConfigError, match="at least 16 bytes long, got 5"):
        load_settings(environ={"DRIFTLINE_SIGNING_KEY": "short"})
    key_file = tmp_path / "key"
    key_file.write_text("k" * 20 + "\n")
    s = load_settings(environ={"DRIFTLINE_SIGNING_KEY_FILE": str(key_file), "DRIFTLINE_SIGNING_KEY": "x" * 16})
    assert s.signing_key_bytes == b"k" * 20 and "kkkk" not in repr(s) and "kkkk" not in repr(s.signer())
    assert load_settings(environ={}).signer() is None


def test_control_records_are_signed_only_with_a_key():
    alert = {"id": "a", "type": "retrain", "model": "m", "model_version": "1", "statistic": 0.1}
    signer = load_settings(environ={"DRIFTLINE_SIGNING_KEY": "k" * 16}).signer()
    signed = orjson.loads(control_record(alert, signer))
    assert verify(signed, b"k" * 16) == "verified" and verify(signed, b"j" * 16) == "other_key"
    assert orjson.loads(control_record(alert, None)) == alert


def test_the_alerts_table_says_whether_each_alert_verified():
    alert = {"created_at": 0, "type": "drift", "model": "m", "model_version": "1", "severity": "critical",
             "statistic": 1.0, "threshold": 0.5, "evidence": {"last_event_id": "e", "events_seen": 1}}
    assert " verified  CRITICAL drift" in format_alert(alert, "verified")
    assert " UNSIGNED  CRITICAL" in format_alert(alert, "unsigned")
    assert " BAD-SIG   CRITICAL" in format_alert(alert, "bad_signature")
    assert "verified" not in format_alert(alert)


def test_help_names_the_security_settings_and_offers_no_password_flag(capsys):
    for command in ("worker", "alerts", "triggers", "replay", "profile", "status"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        text = capsys.readouterr().out
        assert "--kafka-security-protocol" in text and "--kafka-sasl-password-file" in text
        assert "--kafka-sasl-password " not in text and "--signing-key" not in text
