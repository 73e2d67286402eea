"""Fixtures: a Kafka broker with SASL_SSL (SCRAM-SHA-512) and mutual TLS, and a Redis with an ACL
user and TLS, each started for the test session by ``DRIFTLINE_STACK_SECURE=1 deploy/stack.sh up``
in a directory and on ports of its own, and stopped at teardown.

Use them from a test module with ``pytest_plugins = ["tests.integration.secure_services"]`` at the
top level of the test tree, or by importing the fixtures into a conftest.py
(tests/integration/secure/conftest.py does). ``secure_kafka.env`` and ``secure_redis.env`` are the
DRIFTLINE_* settings deploy/stack.sh printed: give them to a Driftline process as its environment.
"""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .own_stack import OwnStack, free_ports, read_env_file


@dataclass(frozen=True)
class SecureKafka:
    bootstrap: str                # SASL_SSL listener
    mtls_bootstrap: str           # SSL listener that requires a client certificate
    protocol: str
    mechanism: str
    username: str
    password: str = field(repr=False)
    password_file: Path
    ca_file: Path
    cert_file: Path               # client certificate for mutual TLS, signed by ca_file
    key_file: Path
    env: dict[str, str]           # the SASL_SSL settings as printed (a password file, not the password)
    mtls_env: dict[str, str]      # the mutual-TLS settings as printed
    stack: OwnStack = field(repr=False)

    def confluent_config(self, **overrides: object) -> dict[str, object]:
        """librdkafka settings for the SASL_SSL listener."""
        return {"bootstrap.servers": self.bootstrap, "security.protocol": self.protocol,
                "sasl.mechanism": self.mechanism, "sasl.username": self.username, "sasl.password": self.password,
                "ssl.ca.location": str(self.ca_file), **overrides}

    def mtls_confluent_config(self, **overrides: object) -> dict[str, object]:
        """librdkafka settings for the mutual-TLS listener."""
        return {"bootstrap.servers": self.mtls_bootstrap, "security.protocol": "SSL",
                "ssl.ca.location": str(self.ca_file), "ssl.certificate.location": str(self.cert_file),
                "ssl.key.location": str(self.key_file), **overrides}

    def ssl_context(self, client_certificate: bool = False) -> ssl.SSLContext:
        """A Python TLS context trusting the stack's CA (for aiokafka), with the client certificate if asked."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if client_certificate:
            context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context

    def secrets(self) -> list[str]:
        """Every password of this broker, for tests that check nothing printed one."""
        names = ("kafka-password", "kafka-admin-password", "kafka-keystore-password")
        return [(self.ca_file.parent / name).read_text() for name in names]


@dataclass(frozen=True)
class SecureRedis:
    # the URLs hold passwords: kept out of repr, so a failing assertion prints none
    url: str = field(repr=False)        # redis://driftline:PASSWORD@host:port/0 (the ACL user)
    tls_url: str = field(repr=False)    # rediss://driftline:PASSWORD@host:tls_port/0?ssl_ca_certs=CA
    admin_url: str = field(repr=False)  # redis://:ADMIN_PASSWORD@host:port/0 (user `default`, may run DEBUG)
    host: str
    port: int
    tls_port: int
    username: str
    password: str = field(repr=False)
    password_file: Path
    ca_file: Path
    env: dict[str, str]           # DRIFTLINE_REDIS_URL (no password) and DRIFTLINE_REDIS_PASSWORD_FILE, as printed
    tls_env: dict[str, str]       # the same over TLS
    stack: OwnStack = field(repr=False)

    def secrets(self) -> list[str]:
        return [self.password, (self.ca_file.parent / "redis-admin-password").read_text()]


@pytest.fixture(scope="session")
def secure_stack(tmp_path_factory) -> OwnStack:
    """The stack directory and ports that secure_kafka and secure_redis share (one CA for both)."""
    kafka_port, redis_port = free_ports(3), free_ports(2)
    return OwnStack(tmp_path_factory.mktemp("secure-stack"), DRIFTLINE_STACK_SECURE="1",
                    DRIFTLINE_KAFKA_BOOTSTRAP=f"127.0.0.1:{kafka_port}",
                    DRIFTLINE_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0")


@contextmanager
def _started(stack: OwnStack, service: str, *env_files: str) -> Iterator[list[dict[str, str]]]:
    """Start a secure service, give the settings it printed (from its env files), stop it afterwards."""
    try:
        stack.run("up", service)
        yield [read_env_file(stack.directory / "secure" / name) for name in env_files]
    finally:
        stack.stop(service)


def untrusted_ca(directory: Path) -> Path:
    """A CA certificate that signed none of the stack's certificates."""
    ca = directory / "untrusted-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=Other CA",
                    "-keyout", str(directory / "untrusted-ca.key"), "-out", str(ca)], check=True, capture_output=True)
    return ca


@pytest.fixture(scope="session")
def secure_kafka(secure_stack: OwnStack):
    with _started(secure_stack, "kafka", "kafka.env", "kafka-mtls.env") as (env, mtls_env):
        password_file = Path(env["DRIFTLINE_KAFKA_SASL_PASSWORD_FILE"])
        yield SecureKafka(bootstrap=env["DRIFTLINE_KAFKA_BOOTSTRAP"], mtls_bootstrap=mtls_env["DRIFTLINE_KAFKA_BOOTSTRAP"],
                          protocol=env["DRIFTLINE_KAFKA_SECURITY_PROTOCOL"], mechanism=env["DRIFTLINE_KAFKA_SASL_MECHANISM"],
                          username=env["DRIFTLINE_KAFKA_SASL_USERNAME"], password=password_file.read_text(),
                          password_file=password_file, ca_file=Path(env["DRIFTLINE_KAFKA_SSL_CAFILE"]),
                          cert_file=Path(mtls_env["DRIFTLINE_KAFKA_SSL_CERTFILE"]),
                          key_file=Path(mtls_env["DRIFTLINE_KAFKA_SSL_KEYFILE"]), env=env, mtls_env=mtls_env,
                          stack=secure_stack)


@pytest.fixture(scope="session")
def secure_redis(secure_stack: OwnStack):
    with _started(secure_stack, "redis", "redis.env", "redis-tls.env") as (env, tls_env):
        yield _secure_redis(secure_stack, env, tls_env)


def _secure_redis(stack: OwnStack, env: dict[str, str], tls_env: dict[str, str]) -> SecureRedis:
    secure_dir = stack.directory / "secure"
    password_file = Path(env["DRIFTLINE_REDIS_PASSWORD_FILE"])
    password = password_file.read_text()
    admin_password = (secure_dir / "redis-admin-password").read_text()
    scheme, rest = env["DRIFTLINE_REDIS_URL"].split("://", 1)
    username, address = rest.split("@", 1)
    host, port = address.split("/", 1)[0].rsplit(":", 1)
    tls_scheme, tls_rest = tls_env["DRIFTLINE_REDIS_URL"].split("://", 1)
    tls_address = tls_rest.split("@", 1)[1]
    return SecureRedis(url=f"{scheme}://{username}:{password}@{address}",
                       tls_url=f"{tls_scheme}://{username}:{password}@{tls_address}",
                       admin_url=f"{scheme}://:{admin_password}@{address}", host=host, port=int(port),
                       tls_port=int(tls_address.split("/", 1)[0].rsplit(":", 1)[1]), username=username,
                       password=password, password_file=password_file, ca_file=secure_dir / "ca.pem",
                       env=env, tls_env=tls_env, stack=stack)
