"""``driftline ingest``: an HTTP front door that turns what model servers send into Driftline events.

    errors.py       Rejected: the reasons a request is refused, each with its HTTP status
    mapping.py      the per-model mapping file (YAML or TOML)
    tensors.py      KServe V1 and Open Inference Protocol (V2) bodies -> rows (pure)
    cloudevents.py  KServe's inference-logger CloudEvents, binary and structured (pure)
    documents.py    Driftline JSON, and every built event checked with producers/events.py's rules
    pairing.py      request/response CloudEvents paired by id within a bounded wait
    delivery.py     one idempotent producer: batch envelopes keyed by model, acknowledged on delivery
    metrics.py      the service's Prometheus metrics
    app.py          the aiohttp routes, auth and TLS
"""

from stream_processors.ingest.errors import Rejected

__all__ = ["Rejected"]
