"""Typed, frozen configuration; the environment is read here and nowhere else in Driftline.

Every setting has one key, its name in :class:`Settings` (a setting of a
connection group is the group's name and its own: ``kafka_bootstrap`` is
``Settings.kafka.bootstrap``). The key names both ways in: the environment
variable ``DRIFTLINE_`` + the key upper-cased (``DRIFTLINE_KAFKA_BOOTSTRAP``),
and the command-line flag whose ``dest`` is the key (``--kafka-bootstrap``).
Precedence: flag, then environment variable, then the default below. Values
from the environment are converted to the field's annotated type.

Connection settings are grouped in small frozen objects that every client of
the service is built from: :class:`producers.kafka.KafkaConnection` (every
Kafka client, confluent-kafka and faust alike) and :class:`RedisConnection`.

>>> s = load_settings({"app_id": "fraud-workers"}, environ={"DRIFTLINE_KAFKA_BOOTSTRAP": "k:9092"})
>>> s.kafka.bootstrap, s.app_id, s.cooldown_events
('k:9092', 'fraud-workers', 5000)
>>> env_name("kafka_bootstrap")
'DRIFTLINE_KAFKA_BOOTSTRAP'
"""

from __future__ import annotations

import dataclasses
import functools
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from producers.kafka import KafkaConnection, read_secret_file
from stream_processors.errors import ConfigError, RedisAuthFailed, ServiceUnavailable
from stream_processors.redaction import redact_url, scrub
from stream_processors.signing import MIN_KEY_BYTES, Signer

__all__ = ["KafkaConnection", "RedisConnection", "Settings", "env_name", "inherited_environment", "load_settings",
           "setting_keys"]


@dataclass(frozen=True)
class RedisConnection:
    """How to reach Redis: what every Redis client of a deployment is built from (:meth:`client`).

    >>> RedisConnection("redis://driftline:s3cret-pass@cache:6379/0")
    RedisConnection(url='redis://driftline:***@cache:6379/0', password_file='', ssl_cafile='', cluster_nodes='')
    """

    url: str = "redis://localhost:6379/0"
    """``redis://``, ``rediss://`` (TLS) or ``unix://``, with ``user:password@`` for an ACL user; a password in it
    is never printed."""
    password_file: str = ""
    """A file holding the password (trailing newline dropped); wins over a password in the URL."""
    ssl_cafile: str = ""
    """PEM file of the CA that signed the server's certificate, for ``rediss://`` (default: the system's CAs;
    the URL query ``?ssl_ca_certs=FILE`` does the same)."""
    cluster_nodes: str = ""
    """``host:port,host:port,...``: startup nodes of a Redis Cluster. When set, every client is a ``RedisCluster``;
    user, password and TLS still come from the URL (its host is then not used), the password file and the CA."""

    def __post_init__(self) -> None:
        if not self.url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"DRIFTLINE_REDIS_URL must start with redis://, rediss:// or unix://, "
                              f"got {redact_url(self.url)!r}")
        if not self.url.startswith("unix://"):
            from urllib.parse import urlsplit

            try:
                parts = urlsplit(self.url)
                parts.port  # noqa: B018 - raises ValueError for a port that is not a number
                valid = bool(parts.hostname)
            except ValueError:
                valid = False
            if not valid:
                raise ConfigError(f"DRIFTLINE_REDIS_URL is not a valid redis:// URL ({redact_url(self.url)}): "
                                  "give host:port, and percent-encode '/', '?', '#', '@' or ':' in a user or "
                                  "password (or use DRIFTLINE_REDIS_PASSWORD_FILE)")
        password = read_secret_file(self.password_file, "DRIFTLINE_REDIS_PASSWORD_FILE") if self.password_file else None
        object.__setattr__(self, "_password", password)
        if self.ssl_cafile:
            if not self.url.startswith("rediss://"):
                raise ConfigError("DRIFTLINE_REDIS_SSL_CAFILE is set but DRIFTLINE_REDIS_URL is not rediss://")
            if not os.path.isfile(self.ssl_cafile) or not os.access(self.ssl_cafile, os.R_OK):
                raise ConfigError(f"DRIFTLINE_REDIS_SSL_CAFILE: cannot read {self.ssl_cafile!r}")
        object.__setattr__(self, "_nodes", _cluster_nodes(self.cluster_nodes))
        if self._nodes and self.url.startswith("unix://"):  # type: ignore[attr-defined]
            raise ConfigError("DRIFTLINE_REDIS_CLUSTER_NODES is set but DRIFTLINE_REDIS_URL is unix://; a cluster "
                              "is reached over TCP: give redis:// or rediss:// (for the user, password and TLS)")

    def redacted(self) -> str:
        """The URL with its password masked (or the cluster's startup nodes): what errors and logs show."""
        if self._nodes:  # type: ignore[attr-defined]
            return f"cluster {','.join(f'{h}:{p}' for h, p in self._nodes)}"  # type: ignore[attr-defined]
        return redact_url(self.url)

    def secrets(self) -> list[str]:
        """The password(s) this connection knows, for scrubbing library error text."""
        from urllib.parse import unquote, urlsplit

        found = [self._password]  # type: ignore[attr-defined]
        try:
            found.append(urlsplit(self.url).password)
        except ValueError:
            pass
        return [s for s in found if s] + [unquote(s) for s in found if s and unquote(s) != s]

    def client_options(self) -> dict[str, object]:
        """Keyword arguments of ``redis.Redis.from_url`` beyond the URL: the password from its file, the CA."""
        options: dict[str, object] = {}
        if self._password is not None:  # type: ignore[attr-defined]
            options["password"] = self._password  # type: ignore[attr-defined]
        if self.ssl_cafile:
            options["ssl_ca_certs"] = self.ssl_cafile
        return options

    def client(self, **options: object):
        """A ``redis.Redis`` for this connection, or a ``redis.cluster.RedisCluster`` with cluster nodes
        (``options``: timeouts and the like). The one way Driftline builds a Redis client."""
        import redis

        if self._nodes:  # type: ignore[attr-defined]
            return self._cluster_client(options)
        url = self.url
        if self._password is not None:  # type: ignore[attr-defined]
            url = _without_password(url)  # redis-py lets the URL's password win over the keyword
        return redis.Redis.from_url(url, **{**self.client_options(), **options})

    def _cluster_client(self, options: dict[str, object]):
        from urllib.parse import unquote, urlsplit

        import redis
        from redis.cluster import ClusterNode, RedisCluster
        from redis.exceptions import RedisClusterException

        parts = urlsplit(self.url)
        auth: dict[str, object] = {}
        if parts.username:
            auth["username"] = unquote(parts.username)
        if parts.password:
            auth["password"] = unquote(parts.password)
        if self.url.startswith("rediss://"):
            auth["ssl"] = True
        startup = [ClusterNode(host, port) for host, port in self._nodes]  # type: ignore[attr-defined]
        # a failover or a resharding answers MOVED/ASK/TRYAGAIN for a while: redis-py follows redirections and
        # retries; what is still failing past that is ServiceUnavailable for the worker's own retry loop
        try:  # RedisCluster connects to learn the slots: what fails here is told like any other Redis error
            return RedisCluster(startup_nodes=startup, **{**auth, **self.client_options(), **options})
        except (redis.RedisError, RedisClusterException) as exc:
            raise self.error(exc) from exc

    def error(self, exc: Exception, doing: str = "") -> ServiceUnavailable:
        """redis-py's ``exc`` as one line without secrets: RedisAuthFailed for refused credentials."""
        import redis

        detail = scrub(str(exc), self.secrets())
        causes = _causes(exc)  # a cluster client's RedisClusterException carries the node's error as its cause
        text = " ".join(str(e) for e in causes)
        if (any(isinstance(e, redis.AuthenticationError) for e in causes) or "WRONGPASS" in text
                or "NOAUTH" in text or "invalid username-password" in text):
            return RedisAuthFailed(f"Redis at {self.redacted()} refused the credentials ({detail}); check the user "
                                   "and password in DRIFTLINE_REDIS_URL or DRIFTLINE_REDIS_PASSWORD_FILE")
        if any(isinstance(e, (redis.ConnectionError, redis.TimeoutError)) for e in causes):
            return ServiceUnavailable(f"Redis is unreachable at {self.redacted()} ({detail}){doing}; start it with "
                                      "'make stack-up' or set DRIFTLINE_REDIS_URL")
        return ServiceUnavailable(f"Redis at {self.redacted()} failed{doing}: {detail}")

    def __repr__(self) -> str:
        return (f"RedisConnection(url={self.redacted()!r}, password_file={self.password_file!r}, "
                f"ssl_cafile={self.ssl_cafile!r}, cluster_nodes={self.cluster_nodes!r})")


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from, outermost first."""
    out: list[BaseException] = []
    while exc is not None and exc not in out and len(out) < 10:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def _cluster_nodes(text: str) -> list[tuple[str, int]]:
    """``host:port,host:port`` as (host, port) pairs; a ConfigError giving the number of the entry that is not one
    (not its text)."""
    nodes = []
    for number, entry in enumerate((e.strip() for e in text.split(",")), start=1):
        if not entry:
            continue
        host, sep, port = entry.rpartition(":")
        host = host.strip("[]")  # [::1]:7000
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or "@" in host or "/" in host:
            # the entry itself is never shown: it may be a password put in the wrong place
            raise ConfigError(f"DRIFTLINE_REDIS_CLUSTER_NODES: entry {number} is not host:port; give the "
                              "cluster's startup nodes as host:port,host:port (credentials go in DRIFTLINE_REDIS_URL "
                              "or DRIFTLINE_REDIS_PASSWORD_FILE)")
        nodes.append((host, int(port)))
    if text.strip() and not nodes:
        raise ConfigError("DRIFTLINE_REDIS_CLUSTER_NODES holds no host:port")
    return nodes


def _without_password(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{userinfo.split(':', 1)[0]}@{host}"))


@dataclass(frozen=True)
class Settings:
    kafka: KafkaConnection = field(default_factory=KafkaConnection)
    redis: RedisConnection = field(default_factory=RedisConnection)
    app_id: str = "driftline"
    """Consumer group of the workers, and the namespace of their state in Redis."""
    inference_topic: str = "driftline.inference"
    label_topic: str = "driftline.labels"
    control_topic: str = "driftline.control"
    dead_letter_topic: str = "driftline.deadletter"
    profile_topic: str = "driftline.profiles"
    topic_partitions: int = 4
    max_message_bytes: int = 1_048_576
    batch_max_messages: int = 10_000
    """A take (the messages the worker processes and saves together, in chunks of batch_max_models models)
    holds at most this many messages..."""
    batch_max_bytes: int = 8_388_608
    """...and at most this many message bytes (a larger message is a take of its own). 8 MiB: behind a backlog
    each chunk pays a fixed cost per model version it touches, and 8 MiB drained envelopes about a quarter
    faster than 4 MiB, with p99 at its (higher) half load within the machine's scatter (README, Performance,
    "Chunk size")."""
    batch_max_models: int = 20
    """...and of at most this many distinct message keys (models): each may bring max_versions_per_model new
    versions, so this bounds the versions a chunk can create (20 x 50) however small its messages are."""
    batch_within_s: float = 0.05
    state_cache_versions: int = 128
    """Model versions whose live state a worker keeps after saving it, so that its next batch of them does not
    read them back from Redis (the least recently used dropped past it; 0: none). Measured for a version of 20
    features after 40k events: 0.5 MB live (tracemalloc) and 0.19 MB of saved bytes, so about 90 MB at the
    default; whatever the count, the cached versions' saved bytes stay under ``state_cache.MAX_SAVED_BYTES``
    (64 MiB, about 220 MB live: a version of 400 features takes 4 MB saved, 13.6 MB live)."""
    rebuild_on_state_loss: bool = False
    """When Redis has lost a partition's state that Kafka says was consumed, re-read the partition from its
    earliest retained offset. Off by default: a rebuild re-publishes every alert and retrain trigger of the
    retained history (with their original ids), and the triggers' done-set was most likely lost with the state."""
    # online detectors on numeric columns (detectors/feature_monitor.py)
    detectors: str = "cusum,adwin"
    block_size: int = 20
    pilot_size: int = 1000
    baseline_blocks: int = 200
    design_shift: float = 0.5
    arl0_blocks: float = 1e8
    adwin_delta: float = 1e-5
    ph_threshold: float = 25.0
    ph_delta: float = 0.5
    # the same detectors on the frequency of each of a categorical column's top categories
    category_monitors: int = 4
    category_block_size: int = 100
    category_baseline_blocks: int = 40
    category_design_shift: float = 0.2
    # tumbling-window tests (detectors/window_comparison.py)
    window_size: int = 500
    window_alpha: float = 1e-5
    edge_events: int = 2000
    baseline_windows: int = 8
    cooldown_events: int = 5000
    # labels and performance (detectors/model/label_join.py, performance_tracker.py)
    label_wait_s: float = 3600.0
    keep_predictions: bool = True
    """Keep each prediction (about 100 bytes in Redis) for prediction_ttl_s so late labels can join it."""
    prediction_ttl_s: int = 86400
    label_sweep_limit: int = 1000
    """Labels whose wait is over settled per model and batch (Redis ZRANGEBYSCORE ... LIMIT); the rest wait
    for the next batches of the model."""
    triggers_ttl_s: int = 30 * 86400
    """``driftline triggers``: its done-set and parked-set expire this long after their last write."""
    performance_window: int = 1000
    performance_baseline_windows: int = 2
    performance_min_drop: float = 0.02
    # retrain policy
    trigger_drift_features: int = 3
    trigger_window_events: int = 20000
    trigger_cooldown_events: int = 50000
    trigger_on_data_quality: bool = False
    trigger_on_drift_alone: bool = True
    """Versions with no performance evidence (no production labels, no calibrated scores arriving) retrain on
    drift alone."""
    max_features: int = 500
    """Features per event (more: the event is dead-lettered, ``too_many_features``), and features tracked per
    model version (names past the first max_features are counted, not tracked)."""
    # bounds on what a producer can create (README "Limits"): past each, events are dead-lettered
    max_events_per_message: int = 10_000
    """Events of one message; the excess is one dead letter (``too_many_events``) with its count."""
    max_versions_per_model: int = 50
    """Distinct versions with state per model; a new version past it is refused (``too_many_versions``)."""
    max_models: int = 10_000
    """Distinct models with state per app id; a new model past it is refused (``too_many_models``)."""
    max_name_length: int = 256
    """Characters of a model, version, event id or feature name (``name_too_long``)."""
    max_category_length: int = 1024
    """Characters of a categorical feature value (``name_too_long``)."""
    max_model_series: int = 1000
    """Model versions with per-model metric series per worker; the rest are counted, not exported."""
    metrics_port: int = 9464
    """Port of the worker's /metrics (0: no metrics server)."""
    metrics_host: str = "127.0.0.1"
    """Address of the worker's /metrics: loopback unless you mean to expose it (containers set 0.0.0.0)."""
    max_feature_series: int = 100
    """Per-feature metric series exported per model version; the rest are counted, not exported."""
    session_timeout_s: float = 10.0
    fetch_max_wait_ms: int = 100
    log_level: str = "info"
    # driftline ingest: the HTTP front door (stream_processors/ingest/)
    ingest_host: str = "127.0.0.1"
    """Address ``driftline ingest`` listens on; loopback unless you mean to expose it."""
    ingest_port: int = 8080
    ingest_mapping: str = ""
    """Mapping file (YAML or TOML) naming tensor columns, prediction/score outputs and versions per model."""
    ingest_token: str = field(default="", repr=False)
    """Bearer token the POST routes require (empty: no auth). Never printed or logged."""
    ingest_token_file: str = ""
    """A file holding the bearer token (used when ingest_token is empty)."""
    ingest_tls_cert: str = ""
    ingest_tls_key: str = ""
    """PEM certificate and key: with both set, ingest serves HTTPS."""
    ingest_max_body_bytes: int = 8_388_608
    """Larger request bodies are refused with 413."""
    ingest_max_rows: int = 10_000
    """More rows (events, instances, tensor rows) in one request are refused with 413."""
    ingest_max_pending_events: int = 100_000
    """Events accepted but not yet confirmed by Kafka; past it requests get 503 with Retry-After."""
    ingest_ack_timeout_s: float = 10.0
    """How long a request waits for Kafka's delivery report before answering 503."""
    ingest_pair_wait_s: float = 60.0
    """How long a CloudEvent request waits for its response (and the reverse) before it counts as unpaired."""
    ingest_max_unpaired: int = 10_000
    """CloudEvents held waiting for their partner; past it the oldest is evicted and counted as unpaired."""
    ingest_max_unpaired_bytes: int = 67_108_864
    """Bytes (of their HTTP bodies) of the CloudEvents held waiting for their partner; past it the oldest are
    evicted and counted as unpaired. Held as Python objects they take several times this in memory."""
    ingest_batch_events: int = 500
    """Events per batch envelope; events of one model version wait at most ingest_linger_s to fill one."""
    ingest_linger_s: float = 0.005

    signing_key: str = field(default="", repr=False)
    """Key (at least 16 bytes) of the HMAC-SHA256 signatures on alerts and triggers. Never printed."""
    signing_key_file: str = ""
    """A file holding the signing key (trailing newline dropped); wins over signing_key."""

    def __post_init__(self) -> None:
        key = self.signing_key
        if self.signing_key_file:
            key = read_secret_file(self.signing_key_file, "DRIFTLINE_SIGNING_KEY_FILE")
        if key and len(key.encode()) < MIN_KEY_BYTES:
            raise ConfigError(f"the signing key (DRIFTLINE_SIGNING_KEY or _FILE) must be at least {MIN_KEY_BYTES} "
                              f"bytes long, got {len(key.encode())}")
        object.__setattr__(self, "_signing_key", key.encode() if key else None)
        positive = ("topic_partitions", "max_message_bytes", "batch_max_messages", "batch_max_bytes", "batch_max_models",
                    "block_size", "pilot_size",
                    "baseline_blocks", "window_size", "edge_events", "baseline_windows", "max_features",
                    "max_events_per_message", "max_versions_per_model", "max_models", "max_name_length",
                    "max_category_length", "max_model_series", "label_sweep_limit", "triggers_ttl_s",
                    "category_block_size", "category_baseline_blocks", "performance_window",
                    "performance_baseline_windows", "prediction_ttl_s", "trigger_drift_features",
                    "fetch_max_wait_ms", "ingest_max_body_bytes", "ingest_max_rows", "ingest_max_pending_events",
                    "ingest_max_unpaired", "ingest_max_unpaired_bytes", "ingest_batch_events")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.batch_within_s <= 0 or self.ph_threshold <= 0 or self.session_timeout_s <= 0:
            raise ConfigError("batch_within_s, ph_threshold and session_timeout_s must be positive")
        if not 0 < self.adwin_delta < 1:
            raise ConfigError(f"adwin_delta must be in (0, 1), got {self.adwin_delta}")
        if not 0 < self.window_alpha < 0.01 or self.design_shift <= 0 or self.arl0_blocks <= 1:
            raise ConfigError("window_alpha must be in (0, 0.01), design_shift positive, arl0_blocks above 1")
        from detectors.feature_monitor import DETECTORS

        chosen = [d.strip() for d in self.detectors.split(",") if d.strip()]
        if not chosen or set(chosen) - set(DETECTORS):
            raise ConfigError(f"DRIFTLINE_DETECTORS must name some of {', '.join(DETECTORS)}, got {self.detectors!r}")
        if not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"metrics_port must be 0..65535, got {self.metrics_port}")
        if self.state_cache_versions < 0:
            raise ConfigError(f"state_cache_versions must be 0 or more, got {self.state_cache_versions}")
        if self.cooldown_events < 0:
            raise ConfigError(f"cooldown_events must be 0 or more, got {self.cooldown_events}")
        if not 0 <= self.ingest_port <= 65535:
            raise ConfigError(f"ingest_port must be 0..65535, got {self.ingest_port}")
        if self.ingest_ack_timeout_s <= 0 or self.ingest_pair_wait_s <= 0 or self.ingest_linger_s < 0:
            raise ConfigError("ingest_ack_timeout_s and ingest_pair_wait_s must be positive, ingest_linger_s 0 or more")
        if bool(self.ingest_tls_cert) != bool(self.ingest_tls_key):
            raise ConfigError("TLS needs both DRIFTLINE_INGEST_TLS_CERT and DRIFTLINE_INGEST_TLS_KEY")

    @property
    def signing_key_bytes(self) -> bytes | None:
        """The signing key, or None when alerts and triggers are not signed."""
        return self._signing_key  # type: ignore[attr-defined]

    def signer(self) -> Signer | None:
        return Signer(self._signing_key) if self._signing_key else None  # type: ignore[attr-defined]

    def secrets(self) -> list[str]:
        """Every secret these settings hold: for scrubbing text that came from a library."""
        key = self._signing_key.decode() if self._signing_key else ""  # type: ignore[attr-defined]
        return [*self.kafka.secrets(), *self.redis.secrets(), *([key] if key else []),
                *([self.ingest_token] if self.ingest_token else [])]

    def monitor_params(self) -> dict:
        """Keyword arguments of NumericDriftMonitor."""
        return {"block_size": self.block_size, "pilot_size": self.pilot_size,
                "baseline_blocks": self.baseline_blocks, "design_shift": self.design_shift,
                "arl0_blocks": self.arl0_blocks, "adwin_delta": self.adwin_delta,
                "ph_threshold": self.ph_threshold, "ph_delta": self.ph_delta,
                "detectors": tuple(d.strip() for d in self.detectors.split(",") if d.strip())}

    def category_monitor_params(self) -> dict:
        """NumericDriftMonitor arguments for a category's 0/1 indicator: larger blocks, a shorter baseline."""
        return {**self.monitor_params(), "block_size": self.category_block_size,
                "baseline_blocks": self.category_baseline_blocks, "winsor": 0.0,
                "design_shift": self.category_design_shift}

    def replace(self, **changes) -> Settings:
        """A copy with ``changes``, named by setting key (``kafka_bootstrap=...``) or by field (``kafka=...``)."""
        return _build({**self.values(), **_flatten_fields(changes)})

    def values(self) -> dict[str, object]:
        """Every setting by key."""
        return {key: _get(self, path) for key, (path, _type) in _keys().items()}

    def to_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) without its DRIFTLINE_* variables, plus these settings.

        What a child process (a worker started by ``driftline demo``, say) needs to see exactly these settings.
        """
        base = os.environ if base is None else base
        env = {k: v for k, v in base.items() if not k.startswith("DRIFTLINE_")}
        env.update({env_name(key): str(value) for key, value in self.values().items()})
        return env


def env_name(key: str) -> str:
    return "DRIFTLINE_" + key.upper()


def inherited_environment() -> dict[str, str]:
    """A copy of this process's environment, for a child process that should see what this one sees."""
    return dict(os.environ)


def setting_keys() -> tuple[str, ...]:
    """Every setting's key, in the order of the fields: what flags' ``dest`` and DRIFTLINE_* names are made of."""
    return tuple(_keys())


def load_settings(overrides: Mapping[str, object] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from flags (``overrides`` by setting key, None meaning not given) over the environment."""
    environ = os.environ if environ is None else environ
    keys = _keys()
    values: dict[str, object] = {}
    for key, (_path, type_) in keys.items():
        raw = environ.get(env_name(key))
        if raw is not None and raw != "":
            values[key] = _convert(key, type_, raw)
    for key, value in (overrides or {}).items():
        if key not in keys:
            raise ConfigError(f"{key!r} is not a setting")
        if value is not None:
            values[key] = value
    return _build(values)


_SCALARS = (bool, int, float, str)


@functools.cache
def _keys() -> dict[str, tuple[tuple[str, ...], type]]:
    """Setting key -> (path of attribute names from Settings, the field's type), from the real annotations."""
    keys: dict[str, tuple[tuple[str, ...], type]] = {}
    for f in fields(Settings):
        type_ = typing.get_type_hints(Settings)[f.name]
        if dataclasses.is_dataclass(type_):
            hints = typing.get_type_hints(type_)
            keys.update({f"{f.name}_{g.name}": ((f.name, g.name), hints[g.name]) for g in fields(type_)})
        else:
            keys[f.name] = ((f.name,), type_)
    for key, (_path, type_) in keys.items():
        if type_ not in _SCALARS:
            raise TypeError(f"setting {key} is a {type_!r}; settings are bool, int, float or str")
    return keys


def _get(settings: Settings, path: tuple[str, ...]) -> object:
    value: object = settings
    for name in path:
        value = getattr(value, name)
    return value


def _flatten_fields(changes: Mapping[str, object]) -> dict[str, object]:
    """``changes`` by setting key: a whole group (``kafka=KafkaConnection(...)``) becomes its keys."""
    keys = _keys()
    flat: dict[str, object] = {}
    for name, value in changes.items():
        if name in keys:
            flat[name] = value
        elif dataclasses.is_dataclass(value) and any(path[0] == name for path, _ in keys.values()):
            flat.update({f"{name}_{g.name}": getattr(value, g.name) for g in fields(value)})
        else:
            raise TypeError(f"Settings has no setting {name!r}")
    return flat


def _build(values: Mapping[str, object]) -> Settings:
    """Settings from values by setting key; a key not given keeps its default."""
    top: dict[str, object] = {}
    groups: dict[str, dict[str, object]] = {}
    for key, value in values.items():
        path, _type = _keys()[key]
        if len(path) == 1:
            top[path[0]] = value
        else:
            groups.setdefault(path[0], {})[path[1]] = value
    hints = typing.get_type_hints(Settings)
    for name, group in groups.items():
        top[name] = hints[name](**group)
    return Settings(**top)


def _convert(key: str, type_: type, raw: str) -> object:
    if type_ is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{env_name(key)}={raw!r} is not a boolean (true/false)")
    try:
        return type_(raw)
    except ValueError:
        raise ConfigError(f"{env_name(key)}={raw!r} is not a valid {type_.__name__}") from None
