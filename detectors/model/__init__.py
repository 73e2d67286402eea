"""The per-model decision logic, pure: verdicts, episodes and alert policy, performance, the retrain policy,
the label join and the model monitor. Nothing here talks to Kafka, Redis or Prometheus or reads the
environment; every class takes explicit parameters."""

from detectors.model.label_join import LabelJoin
from detectors.model.monitor import ModelMonitor
from detectors.model.params import JoinParams, MonitorParams, PerformanceParams, PolicyParams
from detectors.model.performance_tracker import PerformanceTracker
from detectors.model.retrain_policy import RetrainPolicy
from detectors.model.verdicts import Finding, alert_id

__all__ = ["Finding", "JoinParams", "LabelJoin", "ModelMonitor", "MonitorParams", "PerformanceParams",
           "PerformanceTracker", "PolicyParams", "RetrainPolicy", "alert_id"]
