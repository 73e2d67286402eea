"""The worker and the counting-only floor of the benchmarks build their faust apps from the same options."""

import ast
from pathlib import Path

import faust

from stream_processors.config import Settings
from stream_processors.faust_app.options import faust_options

ROOT = Path(__file__).resolve().parents[3]


def test_the_options_reach_faust_from_the_settings():
    settings = Settings().replace(session_timeout_s=12.0, topic_partitions=7, max_message_bytes=8 * 1024 * 1024)
    conf = faust.App("options-test", **faust_options(settings)).conf
    assert conf.broker_session_timeout == 12.0 and conf.broker_heartbeat_interval == 3.0
    assert conf.topic_partitions == 7 and conf.stream_wait_empty is False
    assert conf.consumer_max_fetch_size == 16 * 1024 * 1024
    assert conf.producer_max_request_size == 8 * 1024 * 1024 + 262_144


def test_a_backlog_is_held_in_memory_only_as_far_as_the_batches_go():
    # faust buffers a count of messages ahead of the take being filled, whatever their size: at most 1000 (or
    # batch_max_messages, when lower), though takes of small messages go to 10,000 (4096 ahead took a worker to
    # 839 MiB behind 5,000 envelopes of 500 events)
    for batch, ahead in ((50, 50), (1000, 1000), (10_000, 1000), (60_000, 1000)):
        settings = Settings().replace(batch_max_messages=batch)
        assert faust.App(f"buffer-{batch}", **faust_options(settings)).conf.stream_buffer_maxsize == ahead


def _app_calls(path: Path) -> list[ast.Call]:
    tree = ast.parse(path.read_text())
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func) == "faust.App"]


def test_the_worker_and_the_counting_floor_use_them_and_nothing_else():
    for path in (ROOT / "stream_processors/faust_app/app.py", ROOT / "benchmarks/counting_agent.py"):
        [call] = _app_calls(path)
        assert [ast.unparse(k.value) for k in call.keywords] == ["faust_options(settings)"], path
        assert len(call.args) == 1, path
