"""Flags shared by several commands, and how a command prints JSON."""

from __future__ import annotations

import argparse
import sys

import orjson

from producers.kafka import MECHANISMS, PROTOCOLS

__all__ = ["ENV_HELP", "column_flags", "connection_flags", "dump", "model_flags"]

ENV_HELP = ("Connections come from flags, else DRIFTLINE_KAFKA_BOOTSTRAP (default localhost:9092), "
            "DRIFTLINE_REDIS_URL (default redis://localhost:6379/0; with DRIFTLINE_REDIS_CLUSTER_NODES=host:port,... "
            "a Redis Cluster, the URL then giving only the user, password and TLS) and DRIFTLINE_APP_ID (default "
            "driftline); "
            "security from DRIFTLINE_KAFKA_SECURITY_PROTOCOL, DRIFTLINE_KAFKA_SASL_* and DRIFTLINE_KAFKA_SSL_*, "
            "DRIFTLINE_REDIS_PASSWORD_FILE and DRIFTLINE_REDIS_SSL_CAFILE, DRIFTLINE_SIGNING_KEY or _FILE "
            "(see the README's Security section).")


def connection_flags(parser: argparse.ArgumentParser, redis_too: bool = True, app_id_too: bool = True) -> None:
    group = parser.add_argument_group("connections")
    group.add_argument("--kafka-bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers")
    group.add_argument("--kafka-security-protocol", choices=PROTOCOLS, help="default PLAINTEXT")
    group.add_argument("--kafka-sasl-mechanism", choices=tuple(reversed(MECHANISMS)), help="default SCRAM-SHA-512")
    group.add_argument("--kafka-sasl-username", metavar="USER", help="SASL user")
    group.add_argument("--kafka-sasl-password-file", metavar="FILE",
                       help="file holding the SASL password (or DRIFTLINE_KAFKA_SASL_PASSWORD; never a flag)")
    group.add_argument("--kafka-ssl-cafile", metavar="PEM", help="CA of the brokers' certificates")
    group.add_argument("--kafka-ssl-certfile", metavar="PEM", help="client certificate, for mutual TLS")
    group.add_argument("--kafka-ssl-keyfile", metavar="PEM", help="client key, for mutual TLS")
    if redis_too:
        group.add_argument("--redis-url", metavar="URL",
                           help="Redis URL, e.g. redis://localhost:6379/0, redis://USER@host:6379/0 (ACL user), "
                                "rediss://host:6380/0 (TLS); for a Redis Cluster, set DRIFTLINE_REDIS_CLUSTER_NODES "
                                "(host:port,...) and the URL gives the user, password and TLS only")
        group.add_argument("--redis-password-file", metavar="FILE",
                           help="file holding the Redis password (wins over one in the URL)")
        group.add_argument("--redis-ssl-cafile", metavar="PEM", help="CA of the Redis server's certificate (rediss)")
    if app_id_too:
        group.add_argument("--app-id", metavar="NAME",
                           help="worker app id: consumer group and namespace of the state in Redis")


def column_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("columns (every column not named here is a feature)")
    group.add_argument("--id-column", metavar="C", help="column holding the event id (default: event_id if present, "
                                                        "else row numbers)")
    group.add_argument("--timestamp-column", metavar="C", help="epoch seconds or dates (default: timestamp if "
                                                               "present, else the time of sending)")
    group.add_argument("--prediction-column", metavar="C", help="the model's output (default: prediction)")
    group.add_argument("--score-column", metavar="C", help="score or probability (default: score if present)")
    group.add_argument("--label-column", metavar="C", help="ground truth, sent as label events (default: label "
                                                           "if present)")
    group.add_argument("--features", metavar="a,b,c", help="only these columns are features")


def model_flags(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """Which model version a reading command is about."""
    parser.add_argument("--model", required=required, help=None if required else "one model's full status "
                        "(without it: a page of all model versions)")
    parser.add_argument("--model-version", help="default: the version updated last")


def dump(obj: object) -> None:
    sys.stdout.write(orjson.dumps(obj).decode() + "\n")
    sys.stdout.flush()
