"""``driftline ingest``: the HTTP front door (KServe CloudEvents, Open Inference Protocol, Driftline JSON)."""

from __future__ import annotations

import argparse

from stream_processors.cli.flags import connection_flags
from stream_processors.config import Settings

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    p = sub.add_parser("ingest", help="HTTP front door: KServe CloudEvents, Open Inference Protocol, Driftline JSON",
                       description="Serve HTTP for model servers and label sources and produce what they send "
                                   "to the inference and label topics (batch envelopes keyed by model, "
                                   "idempotent producer). POST /v1/events and /v1/labels take Driftline JSON; "
                                   "POST /v1/cloudevents and / take KServe's inference-logger CloudEvents "
                                   "(binary or structured; KServe V1 or Open Inference Protocol V2 bodies), "
                                   "paired by ce-id. GET /healthz, /readyz, /metrics. A 200 means Kafka has "
                                   "the events; 503 with Retry-After means retry later.",
                       epilog="Example: driftline ingest --host 0.0.0.0 --port 8080 --mapping models.yaml. "
                              "Auth: DRIFTLINE_INGEST_TOKEN or DRIFTLINE_INGEST_TOKEN_FILE (bearer token); "
                              "TLS: DRIFTLINE_INGEST_TLS_CERT and DRIFTLINE_INGEST_TLS_KEY. Limits: "
                              "DRIFTLINE_INGEST_MAX_BODY_BYTES (8388608) and DRIFTLINE_INGEST_MAX_ROWS (10000) per "
                              "request, DRIFTLINE_MAX_MESSAGE_BYTES (1048576, the worker's: a larger event is 413), "
                              "DRIFTLINE_INGEST_MAX_PENDING_EVENTS (100000 waiting for Kafka, then 503), "
                              "DRIFTLINE_INGEST_ACK_TIMEOUT_S (10), DRIFTLINE_INGEST_PAIR_WAIT_S (60), "
                              "DRIFTLINE_INGEST_MAX_UNPAIRED (10000 halves) and DRIFTLINE_INGEST_MAX_UNPAIRED_BYTES "
                              "(67108864; past either the oldest halves are dropped and counted as unpaired). "
                              "Kafka: --kafka-bootstrap, else DRIFTLINE_KAFKA_BOOTSTRAP (default localhost:9092).")
    p.add_argument("--host", dest="ingest_host", metavar="H",
                   help="address to listen on (default 127.0.0.1, DRIFTLINE_INGEST_HOST)")
    p.add_argument("--port", dest="ingest_port", type=int, metavar="N",
                   help="port (default 8080, DRIFTLINE_INGEST_PORT)")
    p.add_argument("--mapping", dest="ingest_mapping", metavar="FILE",
                   help="YAML or TOML file naming tensor columns, prediction and score outputs and the version "
                        "per model (DRIFTLINE_INGEST_MAPPING); see README 'From your model server'")
    p.add_argument("--inference-topic", metavar="T", help="where inference events go (default driftline.inference)")
    p.add_argument("--label-topic", metavar="T", help="where label events go (default driftline.labels)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="default info")
    connection_flags(p, redis_too=False, app_id_too=False)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from stream_processors.ingest.app import run_ingest

    return run_ingest(settings)
