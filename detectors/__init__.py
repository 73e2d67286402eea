"""Driftline's pure algorithms: streaming statistics, sketches and online detectors.

Nothing here reads the environment or talks to Kafka, Redis or Prometheus.
"""

from detectors.feature_monitor import Firing, NumericDriftMonitor
from detectors.frequencies import CategoryFrequencies
from detectors.moments import NumericSummary
from detectors.online import AdwinDetector, PageHinkleyDetector, StateVersionError
from detectors.quantiles import QuantileSketch

__all__ = [
    "AdwinDetector",
    "CategoryFrequencies",
    "Firing",
    "NumericDriftMonitor",
    "NumericSummary",
    "PageHinkleyDetector",
    "QuantileSketch",
    "StateVersionError",
]
