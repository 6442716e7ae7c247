#!/usr/bin/env bash
# Renders the mixin into the repository's files:
#
#   alerts/bug-escape.rules.yml, alerts/bug-escape.alerts.yml
#   grafana/dashboards/*.json
#   deploy/kubernetes/prometheusrule.yaml
#
# Usage: bash mixin/generate.sh [OUTDIR]   (default: the repository's root)
#
# Needs jsonnet (the C++ `jsonnet` of Debian's jsonnet package, or go-jsonnet).
# JSONNET=... overrides the binary. MIXIN=file.jsonnet renders another mixin,
# e.g. one with a changed _config (what mixin/check.sh does).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/..}"
JSONNET=${JSONNET:-jsonnet}

args=()
if [ -n "${MIXIN:-}" ]; then
  args+=(--tla-code-file "mixin=$MIXIN")
fi

# jsonnet -m writes files but creates no directories.
files=$("$JSONNET" -J "$here" "${args[@]}" -S -e \
  "function(mixin=import 'mixin.libsonnet') std.join('\n', std.objectFields((import 'generate.jsonnet')(mixin)))")
for f in $files; do mkdir -p "$out/$(dirname "$f")"; done
"$JSONNET" -J "$here" "${args[@]}" -S -m "$out" "$here/generate.jsonnet" >/dev/null
