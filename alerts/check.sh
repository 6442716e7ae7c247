#!/usr/bin/env bash
# Checks the monitoring mixin: the generated files against mixin/ (one source
# of truth), rule files, rule unit tests, the example Prometheus and
# Alertmanager configurations, and the Grafana dashboards.
# Exits non-zero on the first failure. Run from anywhere:
#
#   bash alerts/check.sh
#
# Needs promtool (Prometheus >= 2.42, for keep_firing_for), amtool
# (Alertmanager >= 0.24, for time_intervals) and jsonnet. Override the tool
# paths with PROMTOOL=... AMTOOL=... JSONNET=...
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PROMTOOL=${PROMTOOL:-promtool}
AMTOOL=${AMTOOL:-amtool}
JSONNET=${JSONNET:-jsonnet}
export PROMTOOL JSONNET

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

step "mixin: generated files are up to date, _config is honoured"
bash mixin/check.sh

step "promtool check rules"
"$PROMTOOL" check rules alerts/*.yml

step "promtool test rules"
"$PROMTOOL" test rules alerts/tests/*.yml

step "every alert has a unit test and a runbook section"
alerts=$(sed -n 's/^ *- alert: *\([A-Za-z0-9_]*\).*/\1/p' alerts/*.yml)
[ -n "$alerts" ] || fail "no alerts found in alerts/*.yml"
for alert in $alerts; do
  grep -q "alertname: ${alert}\$" alerts/tests/*.yml || fail "no unit test for ${alert}"
  grep -q "^## ${alert}\$" docs/runbook.md || fail "no '## ${alert}' section in docs/runbook.md"
  anchor=$(printf '%s' "$alert" | tr '[:upper:]' '[:lower:]')
  grep -q "docs/runbook.md#${anchor}\$" alerts/*.yml || fail "${alert}: runbook_url does not point at #${anchor}"
done
echo "$(echo "$alerts" | wc -w) alerts: ok"

step "promtool check config examples/prometheus.yml"
# rule_files in the example are relative to the example's directory.
"$PROMTOOL" check config examples/prometheus.yml
grep -q '^ *honor_labels: true' examples/prometheus.yml || fail "examples/prometheus.yml must set honor_labels: true"

step "amtool check-config examples/alertmanager.yml"
"$AMTOOL" check-config examples/alertmanager.yml

step "alertmanager routing"
route() { # expected-receiver labels...
  local want=$1; shift
  "$AMTOOL" config routes test --config.file=examples/alertmanager.yml \
    --verify.receivers="$want" "$@" >/dev/null 2>&1 \
    || fail "alert {$*} is not routed to ${want}"
  echo "{$*} -> ${want}"
}
# The mixin's alerts.
route oncall category=operational severity=critical alertname=BugEscapeExporterDown
route platform-team category=operational severity=warning alertname=BugEscapeProductsLeftOut
route platform-team category=operational severity=warning alertname=BugEscapeWebhookAuthRejected source=github
route qa category=quality severity=warning alertname=BugEscapeStageLeakAboveTarget owner=qa
route quality-leads category=quality severity=warning alertname=BugEscapeStageLeakAboveTarget owner=no-such-team
route quality-leads category=quality severity=warning alertname=BugEscapeReleaseLeaking band=leaking
route quality-leads category=quality severity=warning alertname=BugEscapeDefectVolumeDrop owner=quality-leads
route quality-leads category=quality severity=warning alertname=BugEscapeUserReportsDrop owner=quality-leads detected_by=user
route platform-team category=operational severity=warning alertname=BugEscapeSyncFailing source=github
route platform-team category=operational severity=warning alertname=BugEscapeSyncMissedDeliveries source=gitlab
route null category=quality severity=info alertname=BugEscapeUnknownCause owner=engineering
route null category=quality severity=info alertname=BugEscapeCauseConcentrated owner=no-such-team
route null category=quality severity=info alertname=BugEscapeReleaseAttention band=attention
# Anything else stays with the existing configuration's default receiver,
# even with the labels the mixin routes on.
route default alertname=NodeDown severity=critical category=operational
route default alertname=KubePodCrashLooping severity=warning owner=qa category=quality
route default alertname=Watchdog severity=info
route default alertname=BugEscape severity=critical category=operational

step "grafana dashboards"
for f in grafana/dashboards/*.json; do
  # JSON is jsonnet: this parses it.
  "$JSONNET" "$f" >/dev/null || fail "$f is not valid JSON"
  echo "$f: valid JSON"
done

printf '\nall checks passed\n'
