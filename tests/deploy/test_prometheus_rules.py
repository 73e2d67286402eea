"""The Prometheus configuration and every alert rule, checked by promtool (installed by `make stack-up`)."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

PROM = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def _promtool(*args: str) -> subprocess.CompletedProcess:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: run 'make stack-up' (it installs Debian's prometheus)")
    return subprocess.run([promtool, *args], capture_output=True, text=True, cwd=PROM, timeout=60)


def test_config_and_rules_are_valid():
    result = _promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass():
    result = _promtool("test", "rules", "rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_every_alert_rule_has_a_unit_test():
    rules = yaml.safe_load((PROM / "rules.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load((PROM / "rules_test.yml").read_text())
    tested = {t["alertname"] for case in tests["tests"] for t in case.get("alert_rule_test", [])}
    assert alerts == tested


def test_recording_rules_are_evaluated_before_the_alerts_that_read_them():
    """Without group_eval_order promtool runs the groups in map order, and an alert
    then reads the recorded value of the previous minute (a failure one run in ten)."""
    rules = yaml.safe_load((PROM / "rules.yml").read_text())
    groups = [g["name"] for g in rules["groups"]]
    recording = [g["name"] for g in rules["groups"] if all("record" in r for r in g["rules"])]
    order = yaml.safe_load((PROM / "rules_test.yml").read_text()).get("group_eval_order", [])
    assert sorted(order) == sorted(groups)
    assert order[: len(recording)] == recording
