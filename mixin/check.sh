#!/usr/bin/env bash
# Checks that the mixin is the one source of truth:
#
# 1. the committed alerts/*.yml, grafana/dashboards/*.json and
#    deploy/kubernetes/prometheusrule.yaml are exactly what mixin/generate.sh
#    renders now (edit mixin/, run `bash mixin/generate.sh`, commit both);
# 2. a changed _config changes the output: another selector, target labels,
#    runbook URL, level, release alert window and `for` are rendered where
#    they belong, and the result still passes `promtool check rules`.
#
# Run from anywhere: bash mixin/check.sh   (needs jsonnet; promtool for 2.)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
PROMTOOL=${PROMTOOL:-promtool}
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# 1. Committed files = rendered files.
bash "$here/generate.sh" "$tmp/out"
rendered=$(cd "$tmp/out" && find . -type f | sed 's|^\./||' | sort)
[ -n "$rendered" ] || fail "mixin/generate.sh rendered nothing"
for f in $rendered; do
  diff -u "$root/$f" "$tmp/out/$f" >"$tmp/diff" 2>&1 \
    || { cat "$tmp/diff" >&2; fail "$f differs from the mixin's output: edit mixin/ and run 'bash mixin/generate.sh'"; }
done
# No stray generated file (a dashboard or rule file the mixin no longer renders).
for f in "$root"/alerts/*.yml "$root"/grafana/dashboards/*.json; do
  rel=${f#"$root"/}
  grep -qx "$rel" <<<"$rendered" || fail "$rel is not rendered by the mixin (remove it, or add it to mixin/)"
done
echo "$(wc -w <<<"$rendered") generated files match the mixin"

# 2. A changed _config changes the output.
cat >"$tmp/override.jsonnet" <<'JSONNET'
(import 'mixin.libsonnet') + {
  _config+:: {
    bugEscapeSelector: 'job="quality-exporter", env="prod"',
    targetLabels: ['cluster', 'job', 'instance'],
    runbookURLBase: 'https://runbooks.example.com/bug-escape',
    causeConcentrationLimit: 0.7,
    releaseAlertWindow: '30d',
    releaseAlertNewest: 5,
    alertFor+:: { BugEscapeExporterDown: '7m' },
    prometheusRuleLabels+:: { release: 'kube-prometheus-stack' },
  },
}
JSONNET
MIXIN="$tmp/override.jsonnet" bash "$here/generate.sh" "$tmp/override"
alerts="$tmp/override/alerts/bug-escape.alerts.yml"
rules="$tmp/override/alerts/bug-escape.rules.yml"
expect() { # file fixed-string what
  grep -qF -- "$2" "$1" || fail "override: $3 ($2) not in ${1#"$tmp"/}"
}
expect "$alerts" 'up{job="quality-exporter", env="prod"} == 0' "the selector"
expect "$alerts" 'absent(up{job="quality-exporter", env="prod"})' "the selector in absent()"
expect "$alerts" 'runbook_url: https://runbooks.example.com/bug-escape#bugescapeexporterdown' "the runbook URL"
expect "$alerts" 'on(cluster, job, instance, product, release)' "the target labels in joins"
expect "$alerts" 'printf `bug_escape_rate_lower_ratio{cluster=%q,job=%q,instance=%q,product=%q,release=%q}`' "the target labels in annotation queries"
expect "$rules" 'sum by (cluster, job, instance, product)' "the target labels in aggregations"
expect "$rules" '(bug_escape_min_defects) * 0 + 0.7' "the cause concentration level"
expect "$rules" '(time() - bug_escape_release_timestamp_seconds > 2592000)' "the release alert window"
expect "$rules" 'bug_escape_release_rank >= 5' "the newest releases alerted without a release time"
expect "$alerts" 'for: 7m' "a changed for:"
expect "$alerts" 'for 7 minutes.' "the changed for: in the description"
expect "$tmp/override/deploy/kubernetes/prometheusrule.yaml" 'release: kube-prometheus-stack' "a PrometheusRule label"
if grep -q 'job="bug-escape-exporter"\|blob/main/docs/runbook.md' "$alerts"; then
  fail "override: the default selector or runbook URL is still in the alerts"
fi
if command -v "$PROMTOOL" >/dev/null; then
  "$PROMTOOL" check rules "$alerts" "$rules" >/dev/null || fail "override: promtool check rules"
fi
echo "a changed _config changes selector, target labels, runbook URL, level, release alert window, for and labels"
