"""The secure Redis of deploy/stack.sh, with redis-py: the ACL user runs what Driftline needs and
nothing dangerous, TLS works with the stack's CA, and every wrong way in is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..secure_services import untrusted_ca

pytestmark = pytest.mark.integration

REFUSED_AT_ONCE = {"retry": Retry(NoBackoff(), 0), "socket_timeout": 1}  # a refusal is an answer: no retries


def test_settings_are_printed_without_the_password(secure_redis):
    assert secure_redis.env == {"DRIFTLINE_REDIS_URL": f"redis://driftline@127.0.0.1:{secure_redis.port}/0",
                                "DRIFTLINE_REDIS_PASSWORD_FILE": str(secure_redis.password_file)}
    assert secure_redis.tls_env["DRIFTLINE_REDIS_URL"] == (
        f"rediss://driftline@127.0.0.1:{secure_redis.tls_port}/0?ssl_ca_certs={secure_redis.ca_file}")
    printed = "\n".join(secure_redis.stack.outputs)
    logs = [p.read_text() for p in (secure_redis.stack.directory / "redis-secure").glob("*.log")]
    for secret in secure_redis.secrets():
        assert len(secret) >= 32
        assert secret not in printed and all(secret not in log for log in logs)
    assert secure_redis.password_file.stat().st_mode & 0o077 == 0


def test_acl_user_runs_what_driftline_needs(secure_redis):
    r = redis.Redis.from_url(secure_redis.url, decode_responses=True)
    assert r.acl_whoami() == "driftline"
    key = "driftline:{smoke}:state"
    r.hset(key, mapping={"a": "1"})
    r.zadd(key + ":z", {"x": 1.0})
    r.sadd(key + ":s", "m")
    r.set(key + ":t", "v", ex=60)
    assert r.ttl(key + ":t") > 0
    script = r.register_script("redis.call('HSET', KEYS[1], 'b', ARGV[1]); return redis.call('HGET', KEYS[1], 'b')")
    assert script(keys=[key], args=["2"]) == "2"  # EVALSHA, falling back to EVAL
    assert r.eval("return redis.call('ZCARD', KEYS[1])", 1, key + ":z") == 1
    assert key in set(r.scan_iter(match="driftline:{smoke}:*"))
    assert r.info("server")["redis_version"]
    for dangerous in (lambda: r.flushall(), lambda: r.keys("*"), lambda: r.config_get("requirepass"),
                      lambda: r.execute_command("DEBUG", "SLEEP", "0")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            dangerous()
    admin = redis.Redis.from_url(secure_redis.admin_url)
    assert admin.execute_command("DEBUG", "SLEEP", "0")  # the fault tests' DEBUG runs as the admin
    admin.delete(key, key + ":z", key + ":s", key + ":t")


def test_password_file_and_url_without_password_work_together(secure_redis):
    url = secure_redis.env["DRIFTLINE_REDIS_URL"]
    password = Path(secure_redis.env["DRIFTLINE_REDIS_PASSWORD_FILE"]).read_text()
    assert redis.Redis.from_url(url, password=password).ping()


def test_wrong_password_is_refused(secure_redis):
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host=secure_redis.host, port=secure_redis.port, username="driftline", password="wrong",
                    **REFUSED_AT_ONCE).ping()


def test_no_auth_is_refused(secure_redis):
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host=secure_redis.host, port=secure_redis.port, **REFUSED_AT_ONCE).ping()


def test_rediss_with_the_ca(secure_redis):
    r = redis.Redis.from_url(secure_redis.tls_url, decode_responses=True)
    assert r.ping() and r.acl_whoami() == "driftline"
    assert r.connection_pool.connection_class is redis.SSLConnection


def test_tls_with_an_untrusted_ca_or_plaintext_is_refused(secure_redis, tmp_path):
    with pytest.raises(redis.exceptions.ConnectionError, match="certificate verify failed"):
        redis.Redis(host=secure_redis.host, port=secure_redis.tls_port, username="driftline",
                    password=secure_redis.password, ssl=True, ssl_ca_certs=str(untrusted_ca(tmp_path)),
                    **REFUSED_AT_ONCE).ping()
    with pytest.raises(redis.exceptions.ConnectionError):
        redis.Redis(host=secure_redis.host, port=secure_redis.tls_port, username="driftline",
                    password=secure_redis.password, **REFUSED_AT_ONCE).ping()
