"""The Grafana provisioning and dashboard agree with what workers and Prometheus provide."""

import json
import re
from pathlib import Path

import yaml

from stream_processors.metrics import METRIC_NAMES

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = json.loads((DEPLOY / "grafana" / "dashboards" / "driftline-model.json").read_text())
RULES = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
RECORDED = {r["record"] for g in RULES["groups"] for r in g["rules"] if "record" in r}
NAME = re.compile(r"\b(driftline[_:][a-z0-9_:]+)")


def _exprs():
    for panel in DASHBOARD["panels"]:
        for target in panel["targets"]:
            yield panel["title"], target["expr"]
    for variable in DASHBOARD["templating"]["list"]:
        yield variable["name"], variable["query"]["query"]


def _known(name: str) -> bool:
    if name in RECORDED or name in METRIC_NAMES:
        return True
    return any(name == base + suffix for base in METRIC_NAMES for suffix in ("_bucket", "_sum", "_count"))


def test_every_query_names_a_metric_the_worker_exports():
    seen = set()
    for where, expr in _exprs():
        names = NAME.findall(expr)
        assert names, (where, expr)
        for name in names:
            assert _known(name), f"{where}: {name} is neither exported by a worker nor recorded by a rule"
            seen.add(name)
    assert {"driftline_drift_statistic", "driftline_drift_threshold", "driftline_events_processed_total",
            "driftline_model_performance"} <= seen


def test_the_dashboard_covers_what_operators_need():
    titles = " ".join(p["title"].lower() for p in DASHBOARD["panels"])
    for topic in ("event rate", "lag", "drift statistic", "alerts", "performance"):
        assert topic in titles
    assert {v["name"] for v in DASHBOARD["templating"]["list"]} == {"model", "model_version"}
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))


def test_provisioning_points_at_the_dashboard_and_datasource():
    source = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = source["datasources"][0]["uid"]
    assert all(p["datasource"]["uid"] == uid for p in DASHBOARD["panels"])
    provider = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "driftline.yml").read_text())
    compose = yaml.safe_load((DEPLOY.parent / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert any(m.endswith(":" + provider["providers"][0]["options"]["path"] + ":ro") for m in mounts)
