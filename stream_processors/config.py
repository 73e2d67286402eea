"""Typed, frozen settings; the environment is read here and nowhere else.

Precedence: command-line flag, then ``DRIFTLINE_*`` environment variable, then
the default below. Every field's variable is its name upper-cased with the
``DRIFTLINE_`` prefix (``kafka_bootstrap`` ← ``DRIFTLINE_KAFKA_BOOTSTRAP``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from stream_processors.errors import ConfigError

__all__ = ["Settings", "load_settings"]


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str = "localhost:9092"
    redis_url: str = "redis://localhost:6379/0"
    app_id: str = "driftline"
    """Consumer group of the workers, and the namespace of their state in Redis."""
    inference_topic: str = "driftline.inference"
    label_topic: str = "driftline.labels"
    control_topic: str = "driftline.control"
    dead_letter_topic: str = "driftline.deadletter"
    profile_topic: str = "driftline.profiles"
    topic_partitions: int = 4
    max_message_bytes: int = 1_048_576
    batch_max_messages: int = 20
    batch_max_bytes: int = 4_194_304
    """A batch is processed and saved in chunks of at most this many message bytes (and batch_max_messages)."""
    batch_within_s: float = 0.05
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
    # labels and performance (stream_processors/label_join.py, performance_tracker.py)
    label_wait_s: float = 3600.0
    keep_predictions: bool = True
    """Keep each prediction (about 100 bytes in Redis) for prediction_ttl_s so late labels can join it."""
    prediction_ttl_s: int = 86400
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
    metrics_port: int = 9464
    """Port of the worker's /metrics (0: no metrics server)."""
    metrics_host: str = "0.0.0.0"
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

    def __post_init__(self) -> None:
        positive = ("topic_partitions", "max_message_bytes", "batch_max_messages", "batch_max_bytes", "block_size",
                    "pilot_size",
                    "baseline_blocks", "window_size", "edge_events", "baseline_windows", "max_features",
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
        if self.cooldown_events < 0:
            raise ConfigError(f"cooldown_events must be 0 or more, got {self.cooldown_events}")
        if not 0 <= self.ingest_port <= 65535:
            raise ConfigError(f"ingest_port must be 0..65535, got {self.ingest_port}")
        if self.ingest_ack_timeout_s <= 0 or self.ingest_pair_wait_s <= 0 or self.ingest_linger_s < 0:
            raise ConfigError("ingest_ack_timeout_s and ingest_pair_wait_s must be positive, ingest_linger_s 0 or more")
        if bool(self.ingest_tls_cert) != bool(self.ingest_tls_key):
            raise ConfigError("TLS needs both DRIFTLINE_INGEST_TLS_CERT and DRIFTLINE_INGEST_TLS_KEY")
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"DRIFTLINE_REDIS_URL must start with redis://, rediss:// or unix://, "
                              f"got {self.redis_url!r}")

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
        return dataclasses.replace(self, **changes)

    def to_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) without its DRIFTLINE_* variables, plus these settings.

        What a child process (a worker started by ``driftline demo``, say) needs to see exactly these settings.
        """
        base = os.environ if base is None else base
        env = {k: v for k, v in base.items() if not k.startswith("DRIFTLINE_")}
        env.update({env_name(f.name): str(getattr(self, f.name)) for f in fields(self)})
        return env


def env_name(field_name: str) -> str:
    return "DRIFTLINE_" + field_name.upper()


def load_settings(overrides: Mapping[str, object] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from flags (``overrides``, None meaning not given) over the environment."""
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for f in fields(Settings):
        raw = environ.get(env_name(f.name))
        if raw is not None and raw != "":
            values[f.name] = _convert(f.name, f.type, raw)
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = value
    return Settings(**values)


def _convert(name: str, type_name: str, raw: str) -> object:
    if type_name == "bool":
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{env_name(name)}={raw!r} is not a boolean (true/false)")
    try:
        if type_name == "int":
            return int(raw)
        if type_name == "float":
            return float(raw)
    except ValueError:
        raise ConfigError(f"{env_name(name)}={raw!r} is not a valid {type_name}") from None
    return raw
