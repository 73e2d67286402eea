"""The HTTP service: routes, bearer-token auth, TLS, and the wait for Kafka. aiohttp does the HTTP.

What an answer means:

- ``200``: every event of the request is in Kafka (the broker acknowledged the envelopes holding them).
- ``202``: one half of a CloudEvent pair is held in memory, waiting up to ``ingest_pair_wait_s`` for its
  partner; the pair's events are sent, and the ``200`` given, when the partner arrives. A half never
  paired (expired, evicted past ``ingest_max_unpaired``/rows/``ingest_max_unpaired_bytes``, or replaced
  by a resend of itself) is counted in ``driftline_ingest_unpaired_cloudevents_total`` and not sent.
- ``503`` + ``Retry-After``: nothing was queued (``kafka_unavailable``: the bounded buffer of events
  waiting for Kafka has no room for the whole request), or Kafka did not confirm within
  ``ingest_ack_timeout_s`` (``kafka_timeout``): those events stay queued and may still arrive, so a
  retry can duplicate them (event ids are deterministic; duplicates are identifiable). Either way the
  half of a pair held before is put back, so a resent partner pairs again.
- ``400``/``401``/``413``/``415``/``422``: refused, nothing sent; the JSON body names the problem.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import ssl
import time
from pathlib import Path

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from producers.topics import ensure_topics
from stream_processors.errors import ConfigError, KafkaAuthFailed, KafkaUnreachable
from stream_processors.ingest.cloudevents import parse_cloudevent
from stream_processors.ingest.delivery import DeliveryFailed, KafkaDelivery
from stream_processors.ingest.documents import Batch, driftline_batches, half_rows, paired_batch, resolve_model
from stream_processors.ingest.errors import Rejected
from stream_processors.ingest.mapping import Mapping, load_mapping
from stream_processors.ingest.metrics import IngestMetrics
from stream_processors.ingest.pairing import PairingTable
from stream_processors.config import Settings

__all__ = ["build_app", "run_ingest", "bearer_token", "tls_context"]

_log = logging.getLogger("driftline.ingest")
_RETRY_AFTER_S = "5"
_OPEN_ROUTES = {"/healthz", "/readyz", "/metrics"}


def bearer_token(settings: Settings) -> str | None:
    """The token POST routes require: DRIFTLINE_INGEST_TOKEN, else the token file's first line; None: no auth."""
    if settings.ingest_token:
        return settings.ingest_token
    if not settings.ingest_token_file:
        return None
    try:
        token = Path(settings.ingest_token_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the token file {settings.ingest_token_file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"the token file {settings.ingest_token_file} is not UTF-8 text") from None
    if not token:
        raise ConfigError(f"the token file {settings.ingest_token_file} is empty")
    return token


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.ingest_tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.ingest_tls_cert, settings.ingest_tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate {settings.ingest_tls_cert} and its key: "
                          f"{getattr(exc, 'strerror', None) or exc.__class__.__name__}") from None
    return context


class IngestService:
    def __init__(self, settings: Settings, mapping: Mapping, delivery: KafkaDelivery, metrics: IngestMetrics,
                 token: str | None) -> None:
        self.settings = settings
        self.mapping = mapping
        self.delivery = delivery
        self.metrics = metrics
        self._token = None if token is None else token.encode()
        # rows held waiting for a partner count against the same bound as rows waiting for Kafka
        self.pairs = PairingTable(settings.ingest_pair_wait_s, settings.ingest_max_unpaired,
                                  settings.ingest_max_pending_events, settings.ingest_max_unpaired_bytes)
        self.kafka_ready = False
        self._failed_seen = 0
        self._tasks: list[asyncio.Task] = []

    # -- requests -------------------------------------------------------------------------------------
    async def _body(self, request: web.Request) -> bytes:
        limit = self.settings.ingest_max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise Rejected("too_large", f"body of {request.content_length} bytes; the limit is {limit}")
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise Rejected("too_large", f"body larger than the limit of {limit} bytes") from None

    async def _deliver(self, batches: list[Batch]) -> int:
        topics = {"inference": self.settings.inference_topic, "label": self.settings.label_topic}
        futures = self.delivery.submit_all([(topics[b.kind], b.kind, b.model, b.version, b.events) for b in batches])
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.gather(*futures)), self.settings.ingest_ack_timeout_s)
        except asyncio.TimeoutError:
            raise Rejected("kafka_timeout", f"Kafka did not confirm within {self.settings.ingest_ack_timeout_s}s; "
                                            "the events stay queued and may still arrive") from None
        except DeliveryFailed as exc:
            raise Rejected("kafka_unavailable", f"Kafka refused the events: {exc}") from None
        events = sum(len(b.events) for b in batches)
        for b in batches:
            self.metrics.events.labels(b.kind).inc(len(b.events))
        return events

    async def events(self, request: web.Request) -> web.Response:
        kind = "label" if request.path == "/v1/labels" else "inference"
        batches = driftline_batches(await self._body(request), kind, self.settings.ingest_max_rows,
                                    max_message_bytes=self.settings.max_message_bytes)
        refused = sorted({b.model for b in batches if not self.mapping.allows(b.model)})
        if refused:
            raise Rejected("unknown_model", f"model(s) {refused} are not in the mapping file, which is strict")
        return _json({"accepted": await self._deliver(batches)})

    async def cloudevent(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        headers = {k.lower(): v for k, v in request.headers.items()}
        ce = parse_cloudevent(headers, body)
        model, version = resolve_model(ce, self.mapping)
        ce = half_rows(ce, self.mapping, self.settings.ingest_max_rows)
        now = time.time()
        pair, evicted = self.pairs.offer(ce, time.monotonic())
        self._count_unpaired(evicted)
        if pair is None:
            return _json({"accepted": 0, "waiting_for": "response" if ce.half == "request" else "request"},
                         status=202)
        partner = pair[1] if ce.half == "request" else pair[0]
        try:
            batch = paired_batch(*pair, model, version, now, max_message_bytes=self.settings.max_message_bytes)
            n = await self._deliver([batch])
        except Rejected as exc:
            # a resent half must still find its partner: after kafka_unavailable nothing was queued; after
            # kafka_timeout the pair stays queued and may arrive, so a resend can duplicate it (as on /v1/events)
            if exc.reason in ("kafka_unavailable", "kafka_timeout"):
                self._count_unpaired(self.pairs.restore(partner, time.monotonic()))
            raise
        return _json({"accepted": n})

    def _count_unpaired(self, halves) -> None:
        for ce in halves:
            self.metrics.unpaired.labels(ce.half).inc()

    # -- health and metrics ---------------------------------------------------------------------------
    async def healthz(self, _request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def readyz(self, _request: web.Request) -> web.Response:
        if self.kafka_ready and self.delivery.pending < self.delivery.max_pending:
            return _json({"status": "ready"})
        return _json({"status": "not ready", "error": "Kafka is not accepting writes"}, status=503,
                     headers={"Retry-After": _RETRY_AFTER_S})

    async def metrics_page(self, _request: web.Request) -> web.Response:
        self._refresh_gauges()
        return web.Response(body=generate_latest(self.metrics.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    def _refresh_gauges(self) -> None:
        for half, n in self.pairs.waiting().items():
            self.metrics.waiting.labels(half).set(n)
        self.metrics.waiting_bytes.set(self.pairs.bytes)
        self.metrics.pending.set(self.delivery.pending)
        self.metrics.kafka_ready.set(1 if self.kafka_ready else 0)
        failed = self.delivery.failed
        if failed > self._failed_seen:
            self.metrics.delivery_failures.inc(failed - self._failed_seen)
            self._failed_seen = failed

    async def _housekeeping(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._count_unpaired(self.pairs.expire(time.monotonic()))
            self.kafka_ready = await loop.run_in_executor(None, self.delivery.writable, 2.0)
            self._refresh_gauges()
            await asyncio.sleep(1.0)

    # -- lifecycle ------------------------------------------------------------------------------------
    async def on_startup(self, _app: web.Application) -> None:
        self.delivery.start()
        self._tasks.append(asyncio.create_task(self._housekeeping()))

    async def on_cleanup(self, _app: web.Application) -> None:
        for task in self._tasks:
            task.cancel()
        left = await asyncio.get_running_loop().run_in_executor(None, self.delivery.close, 10.0)
        if left:
            _log.warning("stopping with %d envelope(s) Kafka has not confirmed", left)
        held = self.pairs.expire(float("inf"))
        if held:
            _log.warning("stopping with %d CloudEvent half/halves still waiting for a partner; they were answered "
                         "202 and are not sent", len(held))

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        started = time.perf_counter()
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else "other"
        try:
            if self._token is not None and request.path not in _OPEN_ROUTES:
                self._authorize(request)
            response = await handler(request)
        except Rejected as exc:
            self.metrics.rejections.labels(exc.reason).inc()
            headers = {"Retry-After": _RETRY_AFTER_S} if exc.status == 503 else {}
            if exc.status == 401:
                headers["WWW-Authenticate"] = 'Bearer realm="driftline"'
            response = _json({"error": exc.message, "reason": exc.reason}, status=exc.status, headers=headers)
        except web.HTTPException as exc:  # 404, 405 from routing
            response = _json({"error": exc.reason, "reason": "http"}, status=exc.status)
        except Exception:  # a bug must not stop the service; the request gets a plain 500
            _log.exception("unexpected error handling %s %s", request.method, request.path)
            response = _json({"error": "internal error", "reason": "internal"}, status=500)
        self.metrics.requests.labels(route, str(response.status)).inc()
        self.metrics.latency.labels(route).observe(time.perf_counter() - started)
        return response

    def _authorize(self, request: web.Request) -> None:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        # compare_digest takes time independent of where the strings differ
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self._token):
            raise Rejected("unauthorized", "missing or wrong bearer token (Authorization: Bearer <token>)")


def _json(doc: dict, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(doc), status=status, headers=headers, content_type="application/json")


def build_app(settings: Settings, mapping: Mapping, delivery: KafkaDelivery, token: str | None,
              registry: CollectorRegistry | None = None) -> web.Application:
    service = IngestService(settings, mapping, delivery, IngestMetrics(registry or CollectorRegistry()), token)
    # aiohttp's own limit backs up ours (which answers 413 in JSON) for bodies without Content-Length
    app = web.Application(middlewares=[service.middleware], client_max_size=settings.ingest_max_body_bytes)
    app.router.add_post("/v1/events", service.events)
    app.router.add_post("/v1/labels", service.events)
    app.router.add_post("/v1/cloudevents", service.cloudevent)
    app.router.add_post("/", service.cloudevent)
    app.router.add_get("/healthz", service.healthz)
    app.router.add_get("/readyz", service.readyz)
    app.router.add_get("/metrics", service.metrics_page)
    app.on_startup.append(service.on_startup)
    app.on_cleanup.append(service.on_cleanup)
    return app


def run_ingest(settings: Settings) -> int:
    """Serve until SIGTERM or Ctrl-C; then send what is open and wait (up to 10 s) for Kafka to confirm it."""
    mapping = load_mapping(settings.ingest_mapping)
    token = bearer_token(settings)
    ssl_context = tls_context(settings)
    logging.getLogger("driftline").setLevel(settings.log_level.upper())
    try:
        ensure_topics(settings.kafka, [settings.inference_topic, settings.label_topic],
                      settings.topic_partitions, timeout_s=5)
    except KafkaAuthFailed:
        raise  # refused credentials do not heal by waiting: one line and a non-zero exit, like every command
    except KafkaUnreachable as exc:
        _log.warning("%s; serving anyway, /readyz says when Kafka accepts writes", exc)
    delivery = KafkaDelivery(settings.kafka, batch_events=settings.ingest_batch_events,
                             linger_s=settings.ingest_linger_s, max_pending=settings.ingest_max_pending_events,
                             max_message_bytes=settings.max_message_bytes)
    app = build_app(settings, mapping, delivery, token)
    scheme = "https" if ssl_context else "http"
    where = f"{settings.ingest_host}:{settings.ingest_port}"
    listening = False

    def announce(_aiohttp_banner: str) -> None:  # aiohttp calls it once the port is bound
        nonlocal listening
        listening = True
        print(f"driftline ingest: listening on {scheme}://{where} "
              f"(topics {settings.inference_topic}, {settings.label_topic}; auth {'on' if token else 'off'}; "
              f"{len({m.model for m in mapping.models.values()})} mapped model(s))", flush=True)

    try:
        web.run_app(app, host=settings.ingest_host, port=settings.ingest_port, ssl_context=ssl_context,
                    access_log=None, handle_signals=True, print=announce)
    except OSError as exc:
        if listening:
            raise
        raise ConfigError(f"cannot listen on {where}: "
                          f"{os.strerror(exc.errno) if exc.errno else exc} (DRIFTLINE_INGEST_HOST, "
                          "DRIFTLINE_INGEST_PORT or --host, --port)") from None
    print(f"driftline ingest: stopped ({scheme}://{where})", flush=True)
    return 0
