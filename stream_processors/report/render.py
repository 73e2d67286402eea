"""One self-contained HTML file from a ``ReportData``: no script, and nothing loaded from anywhere.

Styles are inline, charts are SVG data URIs, and every string that comes from
users (model, version, feature and category names, event ids, explanations)
goes through ``html.escape``, after its control characters are written as
escapes (``display.printable``: characters XML does not allow never reach
the page); names in headings and tables are shortened to ``NAME_LIMIT``
characters, the whole name kept in a ``title``.
"""

from __future__ import annotations

import datetime as dt
import math
from html import escape

from stream_processors.display import printable, shorten
from stream_processors.report.charts import distribution_chart, feature_chart, performance_chart
from stream_processors.report.data import AlertRow, Decision, FeatureSection, ReportData

__all__ = ["NAME_LIMIT", "render_report"]

NAME_LIMIT = 120

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1040px;padding:16px 24px;
color:#212529}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #dee2e6}
h3{font-size:15px;margin:0 0 6px}.meta{color:#495057}
.decision{border-radius:6px;padding:12px 16px;margin:16px 0;border:2px solid}
.decision.retrain{background:#fff5f5;border-color:#c92a2a}.decision.continue{background:#ebfbee;border-color:#2b8a3e}
.verdict{font-size:24px;font-weight:700;text-transform:uppercase}
.feature{border:1px solid #dee2e6;border-radius:6px;padding:10px 12px;margin:12px 0}
.badge{display:inline-block;border-radius:4px;padding:0 6px;font-size:12px;margin-left:6px;background:#f1f3f5}
.badge.drifting{background:#ffe3e3;color:#c92a2a}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
td,th{border-bottom:1px solid #e9ecef;padding:3px 8px;text-align:left;vertical-align:top}
td code{white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;height:auto;display:block}
"""


def _e(value: object) -> str:
    text = "" if value is None else "\n".join(printable(line) for line in str(value).split("\n"))
    return escape(text, quote=True)


def _name(value: object) -> str:
    """A user's name for a heading or a table cell: escaped, shortened, whole in its ``title``."""
    text = "" if value is None else printable(value)
    if len(text) <= NAME_LIMIT:
        return escape(text)
    return f'<span title="{escape(text, quote=True)}">{escape(shorten(text, NAME_LIMIT))}</span>'


def _num(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if not math.isfinite(value):
        return "?"
    return f"{value:.{digits}g}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}%"


def _when(epoch: float | None) -> str:
    """The UTC time of ``epoch``; "?" when it is not a time a calendar can show (a malformed record's)."""
    if epoch is None:
        return ""
    try:
        return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return "?"


def _decision(decision: Decision) -> str:
    since = ""
    if decision.since_event or decision.since_time:
        since = " since " + " ".join(filter(None, [
            f"event <code>{_e(decision.since_event)}</code>" if decision.since_event else "",
            f"({_e(_when(decision.since_time))})" if decision.since_time else ""]))
    parts = [f'<section id="decision" class="decision {_e(decision.verdict)}">',
             f'<div class="verdict">{_e(decision.verdict)}</div>',
             f"<p>{_e(decision.explanation)}{since}"
             f"{f' (rule: <code>{_e(decision.rule)}</code>)' if decision.rule else ''}</p>"]
    if decision.figures:
        parts.append("<table><tr><th>performance</th><th>metric</th><th>now</th><th>reference</th></tr>")
        parts += [f'<tr><td>{_e(f.kind)}</td><td>{_e(f.metric)}</td><td class="num">{_num(f.value)}</td>'
                  f'<td class="num">{_num(f.reference)}</td></tr>' for f in decision.figures]
        parts.append("</table>")
    if decision.reasons:
        parts.append("<table><tr><th>alert</th><th>type</th><th>detector</th><th>feature</th>"
                     "<th>statistic</th><th>threshold</th></tr>")
        parts += [f"<tr><td><code>{_e(r.alert_id[:12])}</code></td><td>{_e(r.type)}</td><td>{_e(r.detector)}</td>"
                  f'<td>{_e(r.feature or "")}</td><td class="num">{_num(r.statistic)}</td>'
                  f'<td class="num">{_num(r.threshold)}</td></tr>' for r in decision.reasons]
        parts.append("</table>")
    parts.append("</section>")
    return "\n".join(parts)


def _feature(rank: int, f: FeatureSection, period: tuple[int, int] | None) -> str:
    open_episode = f.open_episode
    badges = f'<span class="badge">{_e(f.kind)}</span>'
    badges += f'<span class="badge">peak / threshold {_num(f.drift_ratio, 3)}</span>'
    if open_episode:
        since = open_episode.started_at_event or f"event {open_episode.started_at}"
        badges += f'<span class="badge drifting">drifting since {_e(since)}</span>'
    facts = [f"missing: {_pct(f.missing_rate)} in production"
             + (f", {_pct(f.reference_missing_rate)} in the reference" if f.reference_missing_rate is not None
                else "")]
    if f.unseen_categories:
        shown = ", ".join(f"<code>{_name(name)}</code> ({count})" for name, count in f.unseen_categories[:20])
        more = f" and {len(f.unseen_categories) - 20} more" if len(f.unseen_categories) > 20 else ""
        facts.append(f"categories the reference never had: {shown}{more}")
    for e in f.episodes:
        start = e.started_at_event or f"event {e.started_at}"
        end = (e.ended_at_event or f"event {e.ended_at}") if e.ended_at is not None else "still open"
        facts.append(f"episode ({_e(e.detector)}, {_e(e.severity)}): from {_e(start)} to {_e(end)}")
    alt = f"{f.name}: distribution, reference vs production; {f.statistic_name} over time against its threshold"
    return (f'<section class="feature" id="feature-{rank}" data-feature="{_e(f.name)}">'
            f"<h3>{rank}. {_name(f.name)}{badges}</h3>"
            f'<img alt="{_e(alt)}" src="{feature_chart(f, period)}">'
            f'<ul>{"".join(f"<li>{fact}</li>" for fact in facts)}</ul></section>')


def _feature_index(features: tuple[FeatureSection, ...]) -> str:
    rows = "".join(
        f'<tr><td class="num">{i}</td><td><a href="#feature-{i}">{_name(f.name)}</a></td><td>{_e(f.kind)}</td>'
        f'<td class="num">{_num(f.drift_ratio, 3)}</td><td>{"open" if f.open_episode else ""}</td>'
        f'<td class="num">{_pct(f.missing_rate)}</td><td class="num">{len(f.unseen_categories) or ""}</td></tr>'
        for i, f in enumerate(features, start=1))
    return ("<table><tr><th>#</th><th>feature</th><th>kind</th><th>peak / threshold</th><th>episode</th>"
            f"<th>missing</th><th>unseen categories</th></tr>{rows}</table>")


def _alerts(data: ReportData) -> str:
    skipped = (f"<p>{data.skipped_alerts} malformed control-topic message(s) of this model were skipped.</p>"
               if data.skipped_alerts else "")
    if not data.alerts:
        return skipped + "<p>No alerts or triggers in this period.</p>"
    rows = "".join(
        f"<tr><td>{_e(_when(a.created_at))}</td><td>{_e(a.type)}</td><td>{_e(a.status)}</td>"
        f"<td>{_e(a.severity)}</td><td>{_name(a.feature or '')}</td><td>{_e(a.detector)}</td>"
        f'<td class="num">{_num(a.statistic)}</td><td class="num">{_num(a.threshold)}</td>'
        f"<td><code>{_name(a.started_at_event or '')}</code></td><td><code>{_name(a.last_event_id or '')}</code></td>"
        "</tr>"
        for a in sorted(data.alerts, key=_alert_order))
    return (skipped + "<table><tr><th>time</th><th>type</th><th>status</th><th>severity</th><th>feature</th>"
            f"<th>detector</th><th>statistic</th><th>threshold</th><th>episode began</th><th>last event</th></tr>"
            f"{rows}</table>")


def _alert_order(alert: AlertRow) -> tuple[float, str]:
    created = alert.created_at if alert.created_at is not None and math.isfinite(alert.created_at) else 0.0
    return created, alert.id


def render_report(data: ReportData) -> str:
    """The report as one HTML document (a ``str``; write it UTF-8 encoded)."""
    title = f"Driftline report: {data.model} version {data.model_version}"
    period = (f"events {data.period[0]:,}–{data.period[1]:,} of {data.events:,}" if data.period
              else f"{data.events:,} events")
    features = data.features_by_drift()
    body = [f"<h1>{_e(title)}</h1>",
            f'<p class="meta">{_e(period)} · scenario {_e(data.scenario)} · generated {_e(_when(data.generated_at))}'
            "</p>",
            _decision(data.decision),
            '<h2 id="features">Features, most drifted first</h2>',
            _feature_index(features)]
    body += [_feature(i, f, data.period) for i, f in enumerate(features, start=1)]
    if data.outputs:
        body.append('<h2 id="outputs">Predictions and scores</h2>')
        body += [f'<section class="output" data-output="{_e(o.name)}"><h3>{_name(o.name)}</h3>'
                 f'<img alt="{_e(o.name)}: reference vs production" src="{distribution_chart(o)}"></section>'
                 for o in data.outputs]
    body.append('<h2 id="performance">Performance over time</h2>')
    if data.performance:
        body += [f'<section class="performance" data-metric="{_e(p.metric)}"><h3>{_e(p.metric)}</h3>'
                 f'<img alt="{_e(p.metric)} over time" src="{performance_chart(p, data.period)}"></section>'
                 for p in data.performance]
    else:
        body.append("<p>No labels joined and no estimate from scores yet.</p>")
    body += ['<h2 id="alerts">Alerts and retrain triggers</h2>', _alerts(data)]
    return ("<!doctype html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
