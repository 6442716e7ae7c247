#!/usr/bin/env python3
"""Generates grafana/dashboards/*.json, the bug-escape-exporter dashboards.

The JSON files are committed (import them, or provision them with
grafana/provisioning/); this script is their source. Edit it, then run

    python3 grafana/generate.py            # rewrite the JSON files
    python3 grafana/generate.py --check    # fail if they are out of date

Standard library only. Every panel and target uses the `${datasource}`
template variable, so a dashboard works both imported and provisioned.
Queries read the recording rules of alerts/bug-escape.rules.yml where one
exists, so dashboards and alerts compute the same thing once.
"""

import json
import sys
from pathlib import Path

DS = {"type": "prometheus", "uid": "${datasource}"}
OUT = Path(__file__).resolve().parent / "dashboards"

# Band colours. The steps are the exporter's default bands (percent):
# strong E < 5, healthy 5 <= E <= 10, attention 10 < E <= 20, leaking E > 20.
# Grafana colours a value with the highest step it reaches (>=), so the
# attention and leaking steps sit just above 10 and 20 to keep 10 % healthy
# and 20 % attention, as the bands are defined.
BAND_STEPS = [
    {"color": "dark-green", "value": None},
    {"color": "green", "value": 5},
    {"color": "orange", "value": 10.000001},
    {"color": "red", "value": 20.000001},
]
BAND_NOTE = (
    " Colours are the exporter's default bands (strong < 5 %, healthy <= 10 %,"
    " attention <= 20 %, leaking above); a product with its own bands is judged"
    " by them in the alerts, and its configured thresholds are plotted as the"
    " band threshold series."
)
BAND_INDEX_MAPPINGS = [
    {
        "type": "value",
        "options": {
            "0": {"text": "strong", "color": "dark-green", "index": 0},
            "1": {"text": "healthy", "color": "green", "index": 1},
            "2": {"text": "attention", "color": "orange", "index": 2},
            "3": {"text": "leaking", "color": "red", "index": 3},
        },
    }
]


class Ids:
    def __init__(self):
        self.n = 0

    def next(self):
        self.n += 1
        return self.n


def target(expr, legend="", ref="A", instant=False, fmt=None):
    t = {
        "datasource": DS,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend or "__auto",
        "refId": ref,
        "range": not instant,
        "instant": instant,
    }
    if fmt:
        t["format"] = fmt
    return t


def targets(*specs, instant=False, fmt=None):
    out = []
    for i, spec in enumerate(specs):
        expr, legend = spec if isinstance(spec, tuple) else (spec, "")
        out.append(target(expr, legend, chr(ord("A") + i), instant, fmt))
    return out


def thresholds(steps):
    return {"mode": "absolute", "steps": steps}


def panel(ids, kind, title, description, grid, tgts, unit="short", steps=None,
          options=None, custom=None, mappings=None, overrides=None, decimals=None,
          min_=None, max_=None, transformations=None, color=None):
    defaults = {
        "unit": unit,
        "thresholds": thresholds(steps or [{"color": "text", "value": None}]),
        "mappings": mappings or [],
        "color": color or {"mode": "thresholds" if steps else "palette-classic"},
    }
    if custom:
        defaults["custom"] = custom
    if decimals is not None:
        defaults["decimals"] = decimals
    if min_ is not None:
        defaults["min"] = min_
    if max_ is not None:
        defaults["max"] = max_
    p = {
        "id": ids.next(),
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": dict(zip("xywh", grid)),
        "targets": tgts,
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": options or {},
    }
    if transformations:
        p["transformations"] = transformations
    return p


def row(ids, title, y):
    return {
        "id": ids.next(),
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
        "panels": [],
    }


def stat_options(text_mode="value_and_name", color_mode="background"):
    return {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": color_mode,
        "graphMode": "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "textMode": text_mode,
    }


def bargauge_options():
    return {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "orientation": "horizontal",
        "displayMode": "basic",
        "showUnfilled": True,
        "valueMode": "color",
        "namePlacement": "auto",
        "sizing": "auto",
    }


def timeseries_options():
    return {
        "legend": {"displayMode": "table", "placement": "right", "showLegend": True,
                   "calcs": ["lastNotNull"]},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }


def line_custom(fill=0):
    return {
        "drawStyle": "line",
        "lineInterpolation": "stepAfter",
        "lineWidth": 2,
        "fillOpacity": fill,
        "showPoints": "never",
        "spanNulls": False,
        "axisSoftMin": 0,
    }


def override_by_regex(regex, props):
    return {"matcher": {"id": "byRegexp", "options": regex}, "properties": props}


DASHED = [
    {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
    {"id": "custom.lineWidth", "value": 1},
    {"id": "color", "value": {"mode": "fixed", "fixedColor": "text"}},
]



def interval_overrides():
    """Shade the Wilson interval between the `lower bound` and `upper bound`
    series and dash the band-threshold lines."""
    return [
        override_by_regex("upper bound", [
            {"id": "custom.fillBelowTo", "value": "lower bound"},
            {"id": "custom.fillOpacity", "value": 20},
            {"id": "custom.lineWidth", "value": 0},
            {"id": "color", "value": {"mode": "fixed", "fixedColor": "blue"}}]),
        override_by_regex("lower bound", [
            {"id": "custom.lineWidth", "value": 0},
            {"id": "color", "value": {"mode": "fixed", "fixedColor": "blue"}}]),
        override_by_regex(".* upper bound$", DASHED),
    ]

def datasource_var():
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
        "regex": "",
        "options": [],
        "skipUrlSync": False,
    }


def query_var(name, label, query, sort=1, include_all=False, all_value=None, multi=False):
    v = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "definition": query,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "current": {},
        "hide": 0,
        "refresh": 2,
        "regex": "",
        "sort": sort,
        "includeAll": include_all,
        "multi": multi,
        "options": [],
        "skipUrlSync": False,
    }
    if all_value is not None:
        v["allValue"] = all_value
    return v


def dashboard(uid, title, description, panels, variables, annotations=(), time_from="now-30d",
              refresh="5m", links=()):
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["bug-escape"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "timezone": "",
        "time": {"from": time_from, "to": "now"},
        "refresh": refresh,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "links": list(links),
        "templating": {"list": variables},
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                },
                *annotations,
            ]
        },
        "panels": panels,
    }


# ---------------------------------------------------------------------------
# Overview
# ---------------------------------------------------------------------------

def overview():
    ids = Ids()
    P = 'product="$product"'
    PR = 'product="$product", release="$release"'
    panels = []
    y = 0

    panels.append(row(ids, "Escape rate of $product", y)); y += 1
    panels.append(panel(
        ids, "stat", "Recent escape rate (pooled)",
        "What share of the defects of $product's recent releases reached production? "
        "Pooled ΣP/ΣT over the newest releases (default 5): the steadier figure that the "
        "BugEscapeRecentRate* alerts watch." + BAND_NOTE,
        (0, y, 6, 5),
        targets((f"product:bug_escape_recent_rate:percent{{{P}}}", "recent rate")),
        unit="percent", steps=BAND_STEPS, decimals=1, options=stat_options("value")))
    panels.append(panel(
        ids, "stat", "Recent band",
        "Which band is $product's pooled recent rate in, judged by the product's own "
        "configured band thresholds (bug_escape_band_threshold_ratio)?",
        (6, y, 4, 5),
        targets((f"product:bug_escape_recent_band:index{{{P}}}", "band")),
        steps=[{"color": "dark-green", "value": None}, {"color": "green", "value": 1},
               {"color": "orange", "value": 2}, {"color": "red", "value": 3}],
        mappings=BAND_INDEX_MAPPINGS, options=stat_options("value")))
    panels.append(panel(
        ids, "stat", "Sample size",
        "Is the sample big enough to trust the rate? Defects pooled into the recent rate "
        "against the minimum sample (bug_escape_min_defects) that alerts require.",
        (10, y, 6, 5),
        targets((f"bug_escape_recent_defects{{{P}}}", "pooled defects"),
                (f"bug_escape_min_defects{{{P}}}", "min_defects")),
        options=stat_options("value_and_name", "none")))
    panels.append(panel(
        ids, "stat", "Releases with a band alert",
        "How many releases of $product are firing BugEscapeReleaseAttention or "
        "BugEscapeReleaseLeaking right now?",
        (16, y, 8, 5),
        targets((f'count(ALERTS{{alertname="BugEscapeReleaseLeaking", alertstate="firing", {P}}}) or vector(0)', "leaking"),
                (f'count(ALERTS{{alertname="BugEscapeReleaseAttention", alertstate="firing", {P}}}) or vector(0)', "attention or worse")),
        steps=[{"color": "green", "value": None}, {"color": "orange", "value": 1}],
        options=stat_options("value_and_name")))
    y += 5

    panels.append(panel(
        ids, "timeseries", "Pooled recent rate, 95 % interval and band thresholds",
        "Is $product's recent rate moving across a band line, and is the move beyond "
        "doubt? The shaded area is the 95 % Wilson interval; alerts enter when its lower "
        "edge crosses a line and clear when the estimate falls back. Dashed lines are "
        "the product's configured band thresholds (upper bounds of strong, healthy, "
        "attention)." + BAND_NOTE,
        (0, y, 12, 9),
        targets((f"product:bug_escape_recent_rate:percent{{{P}}}", "recent rate"),
                (f"product:bug_escape_recent_rate_lower:percent{{{P}}}", "lower bound"),
                (f"product:bug_escape_recent_rate_upper:percent{{{P}}}", "upper bound"),
                (f"product_band:bug_escape_band_threshold:percent{{{P}}}", "{{band}} upper bound")),
        unit="percent", custom=line_custom(), options=timeseries_options(), min_=0,
        overrides=interval_overrides()))
    panels.append(panel(
        ids, "bargauge", "Escape rate by release",
        "Which releases of $product let the most defects through? E(R) = P(R)/T(R) per "
        "exported release. The newest releases always look best (production defects keep "
        "arriving for weeks): compare releases at equal age below." + BAND_NOTE,
        (12, y, 12, 9),
        targets((f"product_release:bug_escape_rate:percent{{{P}}}", "{{release}}"), instant=True),
        unit="percent", steps=BAND_STEPS, decimals=1, min_=0, max_=100,
        options=bargauge_options()))
    y += 9

    panels.append(panel(
        ids, "table", "Releases: rate, interval, sample, band",
        "How confident is each release's rate? Escape rate with its 95 % Wilson "
        "interval, T (all defects), P (escaped) and the band by the product's own "
        "thresholds. Releases with T below min_defects raise no band alert.",
        (0, y, 24, 8),
        targets((f"product_release:bug_escape_rate:percent{{{P}}}", "rate"),
                (f"product_release:bug_escape_rate_lower:percent{{{P}}}", "lower"),
                (f"product_release:bug_escape_rate_upper:percent{{{P}}}", "upper"),
                (f"bug_escape_release_defects{{{P}}}", "T"),
                (f"bug_escape_release_escaped_defects{{{P}}}", "P"),
                (f"product_release:bug_escape_band:index{{{P}}}", "band"),
                instant=True, fmt="table"),
        transformations=[
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {
                "excludeByName": {"Time": True, "job": True, "instance": True, "product": True},
                "indexByName": {"release": 0, "Value #A": 1, "Value #B": 2, "Value #C": 3,
                                "Value #D": 4, "Value #E": 5, "Value #F": 6},
                "renameByName": {"Value #A": "escape rate", "Value #B": "lower 95 %",
                                 "Value #C": "upper 95 %", "Value #D": "T (defects)",
                                 "Value #E": "P (escaped)", "Value #F": "band"}}},
            {"id": "sortBy", "options": {"sort": [{"field": "release", "desc": True}]}},
        ],
        overrides=[
            {"matcher": {"id": "byRegexp", "options": "escape rate|lower 95 %|upper 95 %"},
             "properties": [{"id": "unit", "value": "percent"}, {"id": "decimals", "value": 1},
                            {"id": "thresholds", "value": thresholds(BAND_STEPS)},
                            {"id": "custom.cellOptions", "value": {"type": "color-text"}}]},
            {"matcher": {"id": "byName", "options": "band"},
             "properties": [{"id": "mappings", "value": BAND_INDEX_MAPPINGS},
                            {"id": "custom.cellOptions", "value": {"type": "color-background"}}]},
        ],
        options={"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}))
    y += 8

    panels.append(panel(
        ids, "timeseries", "Release $release: escape rate and 95 % interval",
        "How has the rate of release $release moved as its defects arrived? Estimate, "
        "Wilson interval (shaded) and the product's band thresholds (dashed)." + BAND_NOTE,
        (0, y, 24, 8),
        targets((f"product_release:bug_escape_rate:percent{{{PR}}}", "escape rate"),
                (f"product_release:bug_escape_rate_lower:percent{{{PR}}}", "lower bound"),
                (f"product_release:bug_escape_rate_upper:percent{{{PR}}}", "upper bound"),
                (f"product_band:bug_escape_band_threshold:percent{{{P}}}", "{{band}} upper bound")),
        unit="percent", custom=line_custom(), options=timeseries_options(), min_=0,
        overrides=interval_overrides()))
    y += 8

    panels.append(row(ids, "Trend at equal age", y)); y += 1
    panels.append(panel(
        ids, "bargauge", "Escape rate at equal age, by release",
        "Is $product getting better or worse? Each release's escape rate counting only "
        "the defects found within the same age after its release time (label age, "
        "default 30d), so young releases are not flattered. Only releases with a known "
        "release time that are at least that old appear." + BAND_NOTE,
        (0, y, 12, 9),
        targets((f"product_release_age:bug_escape_rate_at_age:percent{{{P}}}", "{{release}} at {{age}}"),
                instant=True),
        unit="percent", steps=BAND_STEPS, decimals=1, min_=0, max_=100,
        options=bargauge_options()))
    panels.append(panel(
        ids, "stat", "Newest release vs earlier ones, at equal age",
        "Is the newest release that has reached the age worse than the releases before it "
        "at the same age? BugEscapeTrendWorsening fires when it sits in a worse band than "
        "their average (with enough defects)." + BAND_NOTE,
        (12, y, 12, 9),
        targets((f"100 * product_release_age:bug_escape_rate_at_age_newest:ratio{{{P}}}", "newest: {{release}} at {{age}}"),
                (f"100 * product_age:bug_escape_rate_at_age_previous:avg_ratio{{{P}}}", "earlier releases, mean at {{age}}")),
        unit="percent", steps=BAND_STEPS, decimals=1, options=stat_options("value_and_name")))
    y += 9

    panels.append(row(ids, "Where the net leaks: release $release", y)); y += 1
    panels.append(panel(
        ids, "barchart", "Stage funnel: defects found at each stage",
        "Where in the pipeline were the defects of $product $release found? Valid "
        "defects per stage, in pipeline order (bug_escape_stage_info order); the last "
        "bars are production, i.e. escapes.",
        (0, y, 8, 9),
        targets((f"bug_escape_defects{{{PR}}} * on(stage) group_left(order, phase) max by (stage, order, phase) (bug_escape_stage_info)", "{{stage}}"),
                instant=True, fmt="table"),
        transformations=[
            {"id": "convertFieldType", "options": {"conversions": [
                {"targetField": "order", "destinationType": "number"}]}},
            {"id": "sortBy", "options": {"sort": [{"field": "order", "desc": False}]}},
            {"id": "organize", "options": {
                "excludeByName": {"Time": True, "job": True, "instance": True, "product": True,
                                  "release": True, "order": True, "phase": True},
                "renameByName": {"Value": "defects"}}},
        ],
        options={"xField": "stage", "orientation": "horizontal", "showValue": "always",
                 "legend": {"showLegend": False, "displayMode": "list", "placement": "bottom"},
                 "tooltip": {"mode": "single", "sort": "none"}, "barWidth": 0.8,
                 "groupWidth": 0.7, "stacking": "none", "xTickLabelRotation": 0},
        custom={"fillOpacity": 80, "lineWidth": 1, "gradientMode": "none"},
        color={"mode": "fixed", "fixedColor": "blue"}))
    panels.append(panel(
        ids, "bargauge", "Stage leak factors",
        "Which stage of the quality net let the most through? L_k = of the defects that "
        "reached stage k, the share it did not catch; the product of the factors is the "
        "escape rate. Labelled with the stage's owner (bug_escape_stage_owner_info).",
        (8, y, 8, 9),
        targets((f"product_release_stage:bug_escape_stage_leak:ratio{{{PR}}}", "{{stage}} ({{owner}})"),
                instant=True),
        unit="percentunit", decimals=0, min_=0, max_=1,
        steps=[{"color": "blue", "value": None}], options=bargauge_options()))
    panels.append(panel(
        ids, "bargauge", "Stage leak vs its target",
        "Is a stage leaking more than its owner aims for? Leak factor divided by the "
        "stage's configured leak target (bug_escape_stage_leak_target_ratio): above 1 "
        "(red) the stage misses its target, and BugEscapeStageLeakAboveTarget goes to "
        "the owner named here once the sample is big enough. Stages without a target "
        "are not shown.",
        (16, y, 8, 9),
        targets((f"product_release_stage:bug_escape_stage_leak_over_target:ratio{{{PR}}}", "{{stage}} ({{owner}})"),
                instant=True),
        unit="none", decimals=2, min_=0, max_=2,
        steps=[{"color": "green", "value": None}, {"color": "red", "value": 1.000001}],
        options=bargauge_options()))
    y += 9
    panels.append(panel(
        ids, "table", "Stage leaks: sample and confidence",
        "Is a stage's leak figure trustworthy? For each tracked pre-release stage of "
        "$release: the defects that reached it (its sample), its leak factor and the "
        "lower bound of the 95 % Wilson interval, which the stage alert must see above "
        "the target before it fires.",
        (0, y, 24, 7),
        targets((f"product_release_stage:bug_escape_stage_reached_defects:count{{{PR}}}", "reached"),
                (f"bug_escape_stage_leak_ratio{{{PR}}}", "leak"),
                (f"product_release_stage:bug_escape_stage_leak_lower:ratio{{{PR}}}", "lower"),
                instant=True, fmt="table"),
        transformations=[
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {
                "excludeByName": {"Time": True, "job": True, "instance": True, "product": True,
                                  "release": True, "__name__": True},
                "indexByName": {"stage": 0, "Value #A": 1, "Value #B": 2, "Value #C": 3},
                "renameByName": {"Value #A": "defects that reached it", "Value #B": "leak",
                                 "Value #C": "leak, lower 95 %"}}},
        ],
        overrides=[
            {"matcher": {"id": "byRegexp", "options": "leak.*"},
             "properties": [{"id": "unit", "value": "percentunit"}, {"id": "decimals", "value": 1}]},
        ],
        options={"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}))
    y += 7

    panels.append(row(ids, "Escaped defects", y)); y += 1
    panels.append(panel(
        ids, "piechart", "Escaped defects of $release by cause",
        "Which branch of the quality net let $release's production defects through "
        "(coverage, review, requirements, release, unknown)? Each cause has an owner, "
        "who gets BugEscapeCauseConcentrated when one cause dominates.",
        (0, y, 8, 9),
        targets((f"bug_escape_escaped_defects_by_cause{{{PR}}} > 0", "{{cause}}"), instant=True),
        options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                 "pieType": "donut", "displayLabels": ["name", "value"],
                 "legend": {"showLegend": True, "displayMode": "table", "placement": "right",
                            "values": ["value", "percent"]},
                 "tooltip": {"mode": "single", "sort": "none"}}))
    panels.append(panel(
        ids, "bargauge", "Escaped defects of $release by detector",
        "Who found $release's escapes: users, monitoring or someone else? Escapes "
        "found by users are the ones customers felt.",
        (8, y, 8, 9),
        targets((f"bug_escape_escaped_defects_by_detector{{{PR}}}", "{{detected_by}}"), instant=True),
        steps=[{"color": "purple", "value": None}], options=bargauge_options(), decimals=0))
    panels.append(panel(
        ids, "bargauge", "Escaped defects of $release by severity",
        "How bad were $release's escapes? Production defects by configured severity.",
        (16, y, 8, 9),
        targets((f"bug_escape_escaped_defects_by_severity{{{PR}}}", "{{severity}}"), instant=True),
        steps=[{"color": "purple", "value": None}], options=bargauge_options(), decimals=0))
    y += 9
    panels.append(panel(
        ids, "bargauge", "Escaped defects by cause, all exported releases",
        "Across the exported releases of $product, which cause lets most defects "
        "escape? Production defects summed by cause.",
        (0, y, 12, 8),
        targets((f"sum by (cause) (bug_escape_escaped_defects_by_cause{{{P}}})", "{{cause}}"), instant=True),
        steps=[{"color": "purple", "value": None}], options=bargauge_options(), decimals=0))
    panels.append(panel(
        ids, "table", "Share of each cause per release, with owner",
        "Is one cause concentrated in a release, and who owns it? Share of the "
        "release's production defects per cause (releases with escapes only).",
        (12, y, 12, 8),
        targets((f"product_release_cause:bug_escape_escaped_cause_share:ratio{{{P}}}", "{{cause}}"),
                instant=True, fmt="table"),
        transformations=[
            {"id": "organize", "options": {
                "excludeByName": {"Time": True, "job": True, "instance": True, "product": True,
                                  "__name__": True},
                "indexByName": {"release": 0, "cause": 1, "owner": 2, "Value": 3},
                "renameByName": {"Value": "share of escapes"}}},
            {"id": "sortBy", "options": {"sort": [{"field": "share of escapes", "desc": True}]}},
        ],
        overrides=[
            {"matcher": {"id": "byName", "options": "share of escapes"},
             "properties": [{"id": "unit", "value": "percentunit"}, {"id": "decimals", "value": 0},
                            {"id": "custom.cellOptions", "value": {"type": "gauge", "mode": "basic"}},
                            {"id": "min", "value": 0}, {"id": "max", "value": 1}]},
        ],
        options={"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}))
    y += 8

    panels.append(row(ids, "Data quality", y)); y += 1
    panels.append(panel(
        ids, "stat", "Defects without a release",
        "How many of $product's defects count in no rate because they carry no release "
        "(unattributed)? Share of all its defects, against the alert level of "
        "BugEscapeUnattributedDefects.",
        (0, y, 6, 6),
        targets((f"product:bug_escape_unattributed_share:ratio{{{P}}}", "unattributed"),
                (f"product:bug_escape_unattributed_limit:ratio{{{P}}}", "alert level")),
        unit="percentunit", decimals=1, options=stat_options("value_and_name", "none")))
    panels.append(panel(
        ids, "bargauge", "Unattributed defects by stage",
        "Where are the defects without a release found? Typically production (Sentry "
        "issues waiting for their first release).",
        (6, y, 6, 6),
        targets((f"bug_escape_unattributed_defects{{{P}}}", "{{stage}}"), instant=True),
        steps=[{"color": "orange", "value": None}], options=bargauge_options(), decimals=0))
    panels.append(panel(
        ids, "stat", "Escapes with cause \"unknown\"",
        "How many of $product's production defects are unclassified, so the cause "
        "breakdown cannot say which part of the net failed? Share with cause "
        "\"unknown\" against the alert level of BugEscapeUnknownCause.",
        (12, y, 6, 6),
        targets((f"product:bug_escape_unknown_cause_share:ratio{{{P}}}", "cause unknown"),
                (f"product:bug_escape_unknown_cause_limit:ratio{{{P}}}", "alert level")),
        unit="percentunit", decimals=1, options=stat_options("value_and_name", "none")))
    panels.append(panel(
        ids, "stat", "Left out of the counts",
        "What does the exporter hold back for $product? Defects with a missing or "
        "unconfigured stage (left out of every count), and releases with defects beyond "
        "max_releases (stored, not exported).",
        (18, y, 6, 6),
        targets((f"bug_escape_unclassified_defects{{{P}}}", "defects: {{reason}}"),
                (f"bug_escape_releases_left_out{{{P}}}", "releases left out")),
        options=stat_options("value_and_name", "none"), decimals=0))
    y += 6

    panels.append(row(ids, "Alerts", y)); y += 1
    panels.append(panel(
        ids, "table", "Firing bug escape alerts",
        "Which BugEscape* alerts are firing now, for which product, release, stage or "
        "cause, and who owns them?",
        (0, y, 24, 8),
        targets(('ALERTS{alertname=~"BugEscape.*", alertstate="firing"}', "{{alertname}}"),
                instant=True, fmt="table"),
        transformations=[
            {"id": "organize", "options": {
                "excludeByName": {"Time": True, "Value": True, "__name__": True,
                                  "alertstate": True, "job": True, "instance": True},
                "indexByName": {"alertname": 0, "severity": 1, "product": 2, "release": 3,
                                "stage": 4, "cause": 5, "owner": 6}}},
        ],
        options={"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}))
    y += 8

    release_annotation = {
        "name": "Releases",
        "datasource": DS,
        "enable": True,
        "hide": False,
        "iconColor": "#5794F2",
        "expr": f"bug_escape_release_timestamp_seconds{{{P}}} * 1000",
        "step": "1h",
        "useValueForTime": True,
        "titleFormat": "{{product}} {{release}} released",
        "textFormat": "",
        "tagKeys": "product,release",
    }
    variables = [
        datasource_var(),
        query_var("product", "Product", "label_values(bug_escape_release_defects, product)"),
        query_var("release", "Release",
                  'label_values(bug_escape_release_defects{product="$product"}, release)', sort=2),
    ]
    return dashboard(
        "bug-escape-overview", "Bug escape rate / Overview",
        "Share of each release's defects that reached production, its confidence, "
        "trend at equal age, which stage and cause let them through, and data quality.",
        panels, variables, annotations=[release_annotation], time_from="now-90d",
        links=[{"title": "Exporter health", "type": "link", "icon": "dashboard",
                "url": "/d/bug-escape-health", "keepTime": True, "includeVars": False,
                "targetBlank": False, "asDropdown": False, "tags": [], "tooltip": ""}])


# ---------------------------------------------------------------------------
# Exporter health
# ---------------------------------------------------------------------------

def health():
    ids = Ids()
    J = 'job="$job", instance=~"$instance"'
    panels = []
    y = 0
    panels.append(row(ids, "Exporter", y)); y += 1
    panels.append(panel(
        ids, "stat", "Up",
        "Is Prometheus scraping the exporter? up per instance (BugEscapeExporterDown "
        "pages after 5 minutes at 0).",
        (0, y, 6, 5),
        targets((f"up{{{J}}}", "{{instance}}")),
        steps=[{"color": "red", "value": None}, {"color": "green", "value": 1}],
        mappings=[{"type": "value", "options": {"0": {"text": "DOWN", "index": 0},
                                                "1": {"text": "UP", "index": 1}}}],
        options=stat_options("value_and_name")))
    panels.append(panel(
        ids, "table", "Build",
        "Which version and revision is running on each instance?",
        (6, y, 9, 5),
        targets((f"bug_escape_build_info{{{J}}}", "{{version}}"), instant=True, fmt="table"),
        transformations=[{"id": "organize", "options": {
            "excludeByName": {"Time": True, "Value": True, "__name__": True, "job": True},
            "indexByName": {"instance": 0, "version": 1, "revision": 2}}}],
        options={"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}))
    panels.append(panel(
        ids, "stat", "Exported",
        "How much does the exporter export, and does it leave products out? Products "
        "beyond max_products have no series at all (BugEscapeProductsLeftOut).",
        (15, y, 9, 5),
        targets((f"count(bug_escape_min_defects{{{J}}})", "products"),
                (f"count(bug_escape_release_defects{{{J}}})", "releases"),
                (f"sum(bug_escape_products_left_out{{{J}}})", "products left out")),
        options=stat_options("value_and_name", "none"), decimals=0))
    y += 5

    panels.append(row(ids, "Ingestion", y)); y += 1
    panels.append(panel(
        ids, "timeseries", "Events received by source",
        "Are events arriving from every source? Events per second accepted for "
        "processing, by source (generic API and webhooks).",
        (0, y, 12, 8),
        targets((f"sum by (source) (rate(bug_escape_events_received_total{{{J}}}[$__rate_interval]))", "{{source}}")),
        unit="ops", custom=line_custom(10), options=timeseries_options(), min_=0))
    panels.append(panel(
        ids, "timeseries", "Events ignored by source and reason",
        "Which events were received but not applied, and why (not a defect, stale "
        "update, duplicate delivery, ping, ...)? A webhook stage the configuration does "
        "not know is not ignored: the defect is stored and counted in "
        "bug_escape_events_unmapped_total{field=\"stage\"} and "
        "bug_escape_unclassified_defects{reason=\"unknown_stage\"}.",
        (12, y, 12, 8),
        targets((f"sum by (source, reason) (rate(bug_escape_events_ignored_total{{{J}}}[$__rate_interval]))", "{{source}} {{reason}}")),
        unit="ops", custom=line_custom(10), options=timeseries_options(), min_=0))
    y += 8
    panels.append(panel(
        ids, "timeseries", "Requests rejected by source and reason",
        "Which requests are refused, and why (auth, malformed, invalid field, future "
        "timestamp, too large, ...)? auth rejections from a webhook usually mean a "
        "rotated or wrong secret (BugEscapeWebhookAuthRejected).",
        (0, y, 12, 8),
        targets((f"sum by (source, reason) (rate(bug_escape_events_rejected_total{{{J}}}[$__rate_interval]))", "{{source}} {{reason}}")),
        unit="reqps", custom=line_custom(10), options=timeseries_options(), min_=0))
    panels.append(panel(
        ids, "bargauge", "Time since the last event, by source",
        "Has a source gone quiet? Time since the last event stored from each source "
        "that has ever sent one; BugEscapeSourceQuiet pages after 3 days.",
        (12, y, 12, 8),
        targets((f"(time() - bug_escape_last_event_timestamp_seconds{{{J}}}) and bug_escape_last_event_timestamp_seconds{{{J}}} > 0", "{{source}}"),
                instant=True),
        unit="s", decimals=0, min_=0,
        steps=[{"color": "green", "value": None}, {"color": "orange", "value": 86400},
               {"color": "red", "value": 259200}],
        options=bargauge_options()))
    y += 8

    panels.append(row(ids, "Store and scrape", y)); y += 1
    panels.append(panel(
        ids, "timeseries", "Store errors by operation",
        "Is the SQLite store failing? Errors per second by operation; while it fails, "
        "writes answer 503 (BugEscapeStoreErrors).",
        (0, y, 8, 8),
        targets((f"sum by (operation) (rate(bug_escape_store_errors_total{{{J}}}[$__rate_interval]))", "{{operation}}")),
        unit="ops", custom=line_custom(10), options=timeseries_options(), min_=0))
    panels.append(panel(
        ids, "bargauge", "Releases left out, by product",
        "Which products have more releases with defects than max_releases? Their oldest "
        "releases are stored but not exported.",
        (8, y, 8, 8),
        targets((f"bug_escape_releases_left_out{{{J}}}", "{{product}}"), instant=True),
        steps=[{"color": "blue", "value": None}], options=bargauge_options(), decimals=0))
    panels.append(panel(
        ids, "timeseries", "Scrape duration and samples",
        "Is /metrics getting expensive? A scrape's cost grows with the series exported "
        "(products x releases x stages), not with the defects stored.",
        (16, y, 8, 8),
        targets((f"scrape_duration_seconds{{{J}}}", "duration {{instance}}"),
                (f"scrape_samples_scraped{{{J}}}", "samples {{instance}}")),
        unit="s", custom=line_custom(), options=timeseries_options(), min_=0,
        overrides=[override_by_regex("samples.*", [
            {"id": "unit", "value": "short"},
            {"id": "custom.axisPlacement", "value": "right"}])]))
    y += 8
    panels.append(panel(
        ids, "stat", "Store writable",
        "Does the store take a write now? What /readyz reports: 0 after a failed "
        "transaction or disk probe (full disk, I/O error) or while the writer restarts "
        "(BugEscapeStoreNotWritable pages after 5 minutes at 0).",
        (0, y, 6, 6),
        targets((f"bug_escape_store_writable{{{J}}}", "{{instance}}")),
        steps=[{"color": "red", "value": None}, {"color": "green", "value": 1}],
        mappings=[{"type": "value", "options": {"0": {"text": "NOT WRITABLE", "index": 0},
                                                "1": {"text": "WRITABLE", "index": 1}}}],
        options=stat_options("value_and_name")))
    panels.append(panel(
        ids, "timeseries", "Write queue",
        "How full is the write queue? Request bytes admitted and not yet answered, "
        "against write_queue_bytes; at the bound, writes get 503 queue_full with "
        "Retry-After (see Requests rejected).",
        (6, y, 10, 6),
        targets((f"bug_escape_write_queue_bytes{{{J}}}", "queued {{instance}}"),
                (f"bug_escape_write_queue_capacity_bytes{{{J}}}", "capacity {{instance}}")),
        unit="bytes", custom=line_custom(10), options=timeseries_options(), min_=0))
    panels.append(panel(
        ids, "timeseries", "Writer restarts and dropped log lines",
        "Did the store writer fail and restart (aggregates rebuilt from disk), and is "
        "the log sink failing (full disk, closed pipe)? Both should stay at 0.",
        (16, y, 8, 6),
        targets((f"sum by (instance) (increase(bug_escape_store_writer_restarts_total{{{J}}}[$__rate_interval]))", "restarts {{instance}}"),
                (f"sum by (instance) (increase(bug_escape_log_lines_dropped_total{{{J}}}[$__rate_interval]))", "log lines dropped {{instance}}")),
        unit="short", custom=line_custom(10), options=timeseries_options(), min_=0))
    y += 6

    variables = [
        datasource_var(),
        query_var("job", "Job", "label_values(bug_escape_build_info, job)"),
        query_var("instance", "Instance", 'label_values(bug_escape_build_info{job="$job"}, instance)',
                  include_all=True, all_value=".*", multi=True),
    ]
    return dashboard(
        "bug-escape-health", "Bug escape rate / Exporter health",
        "Is bug-escape-exporter up, receiving, storing and exporting? Events by source "
        "and outcome, quiet sources, store errors, what is left out, scrape cost.",
        panels, variables, time_from="now-24h", refresh="1m",
        links=[{"title": "Overview", "type": "link", "icon": "dashboard",
                "url": "/d/bug-escape-overview", "keepTime": True, "includeVars": False,
                "targetBlank": False, "asDropdown": False, "tags": [], "tooltip": ""}])


def render():
    return {
        "bug-escape-overview.json": overview(),
        "bug-escape-exporter-health.json": health(),
    }


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, dash in render().items():
        text = json.dumps(dash, indent=2, ensure_ascii=False) + "\n"
        path = OUT / name
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print("out of date (run python3 grafana/generate.py): " + ", ".join(stale), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
