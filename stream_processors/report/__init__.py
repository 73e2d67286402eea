"""The report: what Driftline decided for a model version, and the evidence, as one self-contained HTML file.

``ReportData`` (and the values it holds) is the whole input; ``render_report``
turns it into HTML. Gathering the data from a worker's state is the caller's.
"""

from stream_processors.report.data import (AlertRow, Decision, DecisionReason, Distribution, Episode,
                                           FeatureSection, MetricFigure, OutputSection, PerformanceSeries,
                                           ReportData)
from stream_processors.report.render import render_report

__all__ = ["AlertRow", "Decision", "DecisionReason", "Distribution", "Episode", "FeatureSection", "MetricFigure",
           "OutputSection", "PerformanceSeries", "ReportData", "render_report"]
