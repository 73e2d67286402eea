"""The one place where confluent-kafka clients are configured and constructed, and where faust gets its broker.

Every Kafka client of Driftline (the SDK's producers, replay, topic creation,
the profile registry, ``driftline alerts``, the retrain hook, ``driftline
ingest``) is built here from a :class:`KafkaConnection` plus the settings of
its use; the worker's faust app takes its broker settings from
:func:`faust_broker_settings`. A setting every client of a deployment needs
(security, timeouts, a client id) is a field of ``KafkaConnection``, turned
into client settings in :meth:`KafkaConnection.client_config` and
:func:`faust_broker_settings`, and nowhere else.

>>> KafkaConnection("k1:9092,k2:9092").client_config()
{'bootstrap.servers': 'k1:9092,k2:9092'}
>>> faust_broker_settings(KafkaConnection("k1:9092, k2:9092"))
{'broker': ['kafka://k1:9092', 'kafka://k2:9092']}
>>> secure = KafkaConnection("k1:9093", security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
...                          sasl_username="driftline", sasl_password="s3cret-password")
>>> secure
KafkaConnection(bootstrap='k1:9093', security_protocol='SASL_PLAINTEXT', sasl_mechanism='SCRAM-SHA-512', \
sasl_username='driftline', sasl_password_file='', ssl_cafile='', ssl_certfile='', ssl_keyfile='')
>>> secure.client_config()["sasl.mechanism"], secure.describe()
('SCRAM-SHA-512', 'k1:9093 (SASL_PLAINTEXT, SCRAM-SHA-512 as driftline)')
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import confluent_kafka
from confluent_kafka.admin import AdminClient

from producers.errors import ConfigError, KafkaAuthFailed, KafkaUnreachable

__all__ = ["KAFKA_CLIENT_LOG", "MECHANISMS", "PROTOCOLS", "KafkaConnection", "admin_client", "as_connection",
           "check_connection", "consumer", "faust_broker_settings", "producer"]

KAFKA_CLIENT_LOG = logging.getLogger("driftline.kafka")
"""Where librdkafka's own log lines go (instead of raw stderr); errors reach users as exceptions."""

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def read_secret_file(path: str, setting: str) -> str:
    """A secret kept in a file: its content without the trailing newline. Raises ConfigError (naming the file)."""
    try:
        with open(path, encoding="utf-8") as f:
            secret = f.read().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{setting}: cannot read {path!r} ({getattr(exc, 'strerror', None) or exc})") from None
    if not secret:
        raise ConfigError(f"{setting}: {path!r} is empty")
    return secret


def _readable(path: str, setting: str) -> None:
    if not os.access(path, os.R_OK) or not os.path.isfile(path):
        raise ConfigError(f"{setting}: cannot read {path!r}")


@dataclass(frozen=True)
class KafkaConnection:
    """How to reach Kafka: what every client of a deployment shares, whatever it is used for.

    Bad combinations (SASL without a user name or password, an unknown
    mechanism, a CA, certificate or key file that cannot be read) raise
    :class:`ConfigError` here, when the settings are read. The password is
    never part of ``repr``; from ``sasl_password_file`` it is read once, here.
    """

    bootstrap: str = "localhost:9092"
    """Comma-separated ``host:port`` of one or more brokers."""
    security_protocol: str = "PLAINTEXT"
    """PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."""
    sasl_mechanism: str = "SCRAM-SHA-512"
    """PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with a SASL protocol)."""
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    """Never printed; prefer sasl_password_file, which keeps it out of the environment."""
    sasl_password_file: str = ""
    """A file holding the SASL password (its trailing newline is dropped); wins over sasl_password."""
    ssl_cafile: str = ""
    """PEM file of the CA that signed the brokers' certificates (default: the system's CAs)."""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    """PEM client certificate and its key, for brokers that require mutual TLS."""

    def __post_init__(self) -> None:
        protocol = self.security_protocol.upper()
        object.__setattr__(self, "security_protocol", protocol)
        object.__setattr__(self, "sasl_mechanism", self.sasl_mechanism.upper())
        if protocol not in PROTOCOLS:
            raise ConfigError(f"DRIFTLINE_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(PROTOCOLS)}, "
                              f"got {self.security_protocol!r}")
        password = self.sasl_password
        if self.sasl_password_file:
            password = read_secret_file(self.sasl_password_file, "DRIFTLINE_KAFKA_SASL_PASSWORD_FILE")
        object.__setattr__(self, "_password", password)
        if self.uses_sasl:
            if self.sasl_mechanism not in MECHANISMS:
                raise ConfigError(f"DRIFTLINE_KAFKA_SASL_MECHANISM must be one of {', '.join(MECHANISMS)}, "
                                  f"got {self.sasl_mechanism!r}")
            if not self.sasl_username or not password:
                raise ConfigError(f"{protocol} needs DRIFTLINE_KAFKA_SASL_USERNAME and DRIFTLINE_KAFKA_SASL_PASSWORD "
                                  "(or DRIFTLINE_KAFKA_SASL_PASSWORD_FILE)")
        elif self.sasl_username or password:
            raise ConfigError(f"a SASL user or password is set but DRIFTLINE_KAFKA_SECURITY_PROTOCOL is {protocol}; "
                              "use SASL_SSL (or SASL_PLAINTEXT)")
        tls_files = {"DRIFTLINE_KAFKA_SSL_CAFILE": self.ssl_cafile, "DRIFTLINE_KAFKA_SSL_CERTFILE": self.ssl_certfile,
                     "DRIFTLINE_KAFKA_SSL_KEYFILE": self.ssl_keyfile}
        if any(tls_files.values()) and not self.uses_tls:
            raise ConfigError(f"TLS files are set but DRIFTLINE_KAFKA_SECURITY_PROTOCOL is {protocol}; "
                              "use SSL or SASL_SSL")
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ConfigError("mutual TLS needs both DRIFTLINE_KAFKA_SSL_CERTFILE and DRIFTLINE_KAFKA_SSL_KEYFILE")
        for setting, path in tls_files.items():
            if path:
                _readable(path, setting)

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def secrets(self) -> list[str]:
        """What must never be printed: the password (for scrubbing library error text)."""
        return [self._password] if self._password else []  # type: ignore[attr-defined]

    def describe(self) -> str:
        """Where and how this connects, for messages: never the password."""
        if self.uses_sasl:
            return f"{self.bootstrap} ({self.security_protocol}, {self.sasl_mechanism} as {self.sasl_username})"
        if self.security_protocol != "PLAINTEXT":
            return f"{self.bootstrap} ({self.security_protocol}{', client certificate' if self.ssl_certfile else ''})"
        return self.bootstrap

    def client_config(self) -> dict[str, object]:
        """The librdkafka settings every confluent-kafka client gets."""
        config: dict[str, object] = {"bootstrap.servers": self.bootstrap}
        if self.security_protocol == "PLAINTEXT":
            return config
        config["security.protocol"] = self.security_protocol
        if self.uses_sasl:
            config.update({"sasl.mechanism": self.sasl_mechanism, "sasl.username": self.sasl_username,
                           "sasl.password": self._password})  # type: ignore[attr-defined]
        for key, path in (("ssl.ca.location", self.ssl_cafile), ("ssl.certificate.location", self.ssl_certfile),
                          ("ssl.key.location", self.ssl_keyfile)):
            if path:
                config[key] = path
        return config

    def ssl_context(self):
        """The ``ssl.SSLContext`` of aiokafka (faust) clients, or None for a protocol without TLS."""
        if not self.uses_tls:
            return None
        import ssl

        try:
            context = ssl.create_default_context(cafile=self.ssl_cafile or None)
            if self.ssl_certfile:
                context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"the Kafka TLS files cannot be used ({type(exc).__name__}: "
                              f"{getattr(exc, 'reason', None) or exc}); check DRIFTLINE_KAFKA_SSL_CAFILE, "
                              "_CERTFILE and _KEYFILE") from None
        return context

    def hosts(self) -> list[str]:
        return [host.strip() for host in self.bootstrap.split(",") if host.strip()]


def as_connection(kafka: str | KafkaConnection) -> KafkaConnection:
    """A connection from a bootstrap string (what the SDK's callers pass) or a connection already made."""
    return kafka if isinstance(kafka, KafkaConnection) else KafkaConnection(bootstrap=kafka)


def _config(kafka: str | KafkaConnection, overrides: Mapping[str, object] | None) -> dict[str, object]:
    # the use's settings come last: a caller may override any of them (the SDK documents its producer_config so)
    return {**as_connection(kafka).client_config(), **(overrides or {})}


def producer(kafka: str | KafkaConnection, overrides: Mapping[str, object] | None = None,
             logger: logging.Logger = KAFKA_CLIENT_LOG) -> confluent_kafka.Producer:
    return confluent_kafka.Producer(_config(kafka, overrides), logger=logger)


def consumer(kafka: str | KafkaConnection, overrides: Mapping[str, object] | None = None,
             logger: logging.Logger = KAFKA_CLIENT_LOG) -> confluent_kafka.Consumer:
    return confluent_kafka.Consumer(_config(kafka, overrides), logger=logger)


def admin_client(kafka: str | KafkaConnection, overrides: Mapping[str, object] | None = None,
                 logger: logging.Logger = KAFKA_CLIENT_LOG) -> AdminClient:
    return AdminClient(_config(kafka, overrides), logger=logger)


def faust_broker_settings(kafka: KafkaConnection) -> dict[str, object]:
    """Keyword arguments of ``faust.App`` that say how its aiokafka clients reach Kafka."""
    settings: dict[str, object] = {"broker": [f"kafka://{host}" for host in kafka.hosts()]}
    if kafka.uses_sasl:
        import faust

        settings["broker_credentials"] = faust.SASLCredentials(
            username=kafka.sasl_username, password=kafka._password,  # type: ignore[attr-defined]
            mechanism=kafka.sasl_mechanism, ssl_context=kafka.ssl_context())
    elif kafka.uses_tls:
        import faust

        settings["broker_credentials"] = faust.SSLCredentials(kafka.ssl_context())
    return settings


# librdkafka reports these through error_cb and then retries for ever; they do not heal by waiting.
_REFUSED = {confluent_kafka.KafkaError._AUTHENTICATION, confluent_kafka.KafkaError._SSL}
_REFUSED_HINTS = ("incorrect security.protocol", "SSL handshake failed", "certificate verify failed",
                  "Authentication failed", "SASL authentication error")


def check_connection(kafka: str | KafkaConnection, timeout_s: float = 10.0) -> list[str]:
    """The names of the cluster's topics, once a broker has accepted this connection.

    Raises :class:`KafkaAuthFailed` as soon as a broker refuses the
    credentials, the certificate or the protocol (within seconds, where
    librdkafka alone would retry for ever), and :class:`KafkaUnreachable` when
    no broker answered within ``timeout_s``. The message is one line and never
    holds the password.
    """
    connection = as_connection(kafka)
    refused: list[confluent_kafka.KafkaError] = []

    def on_error(err: confluent_kafka.KafkaError) -> None:
        if err.code() in _REFUSED or any(hint in err.str() for hint in _REFUSED_HINTS):
            refused.append(err)

    # A broker that closes every connection during the first request (ApiVersion) most likely speaks another
    # protocol (a plaintext client at a TLS listener): librdkafka only logs that, as a FAIL line.
    dropped = _CountingHandler("in state APIVERSION_QUERY")
    _CHECK_LOG.addHandler(dropped)
    try:
        return _wait_for_metadata(connection, timeout_s, refused, dropped, on_error)
    finally:
        _CHECK_LOG.removeHandler(dropped)


_CHECK_LOG = logging.getLogger("driftline.kafka.check")
_CHECK_LOG.propagate = False
_CHECK_LOG.setLevel(logging.DEBUG)  # whatever the level of driftline.kafka (the CLI silences it)


def _wait_for_metadata(connection: KafkaConnection, timeout_s: float, refused: list, dropped: _CountingHandler,
                       on_error) -> list[str]:
    admin = admin_client(connection, {"socket.connection.setup.timeout.ms": 5000, "error_cb": on_error},
                         logger=_CHECK_LOG)
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while True:
        try:
            return list(admin.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic()))).topics)
        except confluent_kafka.KafkaException as exc:
            last = exc
        admin.poll(0)  # serves error_cb
        if refused:
            raise KafkaAuthFailed(_refusal(connection, refused[0]))
        if dropped.count >= 3:
            raise KafkaAuthFailed(f"Kafka at {connection.describe()} closed every connection during its first "
                                  "request: the listener most likely expects another DRIFTLINE_KAFKA_SECURITY_PROTOCOL "
                                  f"(this client uses {connection.security_protocol})")
        if time.monotonic() >= deadline:
            detail = last.args[0].str() if last is not None and last.args else last
            raise KafkaUnreachable(_scrub(f"Kafka is unreachable at {connection.describe()} ({detail}); start it "
                                          "with 'make stack-up' or set DRIFTLINE_KAFKA_BOOTSTRAP", connection))


class _CountingHandler(logging.Handler):
    def __init__(self, needle: str) -> None:
        super().__init__()
        self.needle = needle
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if self.needle in record.getMessage():
            self.count += 1


def _refusal(connection: KafkaConnection, err: confluent_kafka.KafkaError) -> str:
    text = err.str()
    if err.code() == confluent_kafka.KafkaError._AUTHENTICATION or "SASL" in text or "Authentication" in text:
        what = ("Kafka refused the credentials: check DRIFTLINE_KAFKA_SASL_USERNAME, the password "
                "(DRIFTLINE_KAFKA_SASL_PASSWORD or _FILE) and DRIFTLINE_KAFKA_SASL_MECHANISM")
    elif "security.protocol" in text:
        what = ("Kafka closed the connection: the listener expects another DRIFTLINE_KAFKA_SECURITY_PROTOCOL "
                "(SSL or SASL_SSL?)")
    else:
        what = ("the TLS handshake with Kafka failed: check DRIFTLINE_KAFKA_SSL_CAFILE (the CA that signed the "
                "brokers' certificates) and, for mutual TLS, DRIFTLINE_KAFKA_SSL_CERTFILE and _KEYFILE")
    # librdkafka's text names the broker and the reason; it never holds the password, but scrub it all the same
    return _scrub(f"{what}; connecting to {connection.describe()}: {' '.join(text.split())}", connection)


def _scrub(text: str, connection: KafkaConnection) -> str:
    for secret in connection.secrets():
        text = text.replace(secret, "***")
    return text


def co_partitioned_count(kafka: str | KafkaConnection, topics: list[str], timeout_s: float = 15.0) -> int:
    """The partition count shared by ``topics``, from Kafka's metadata. A model's events and labels must land on
    the same partition number (its state lives with that partition's), so topics of different counts are a
    ConfigError, as is a topic that does not exist."""
    connection = as_connection(kafka)
    admin = admin_client(connection, {"socket.connection.setup.timeout.ms": 5000})
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except confluent_kafka.KafkaException as exc:
        raise KafkaUnreachable(f"could not read the topics' metadata from {connection.describe()}: "
                               f"{_scrub(str(exc), connection)}") from None
    counts = {}
    for topic in topics:
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise ConfigError(f"topic {topic!r} does not exist on {connection.describe()}")
        counts[topic] = len(found.partitions)
    if len(set(counts.values())) > 1:
        raise ConfigError("the topics must have the same partition count (a model's events and labels meet on one "
                          f"partition number), got {', '.join(f'{t}: {n}' for t, n in counts.items())}; raise the "
                          "smaller with kafka-topics.sh --alter --partitions (see the README, \"Raising the partition "
                          "count\")")
    return next(iter(counts.values()))
