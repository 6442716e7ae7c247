// The Grafana dashboards, by file name (grafana/dashboards/<name>).
{
  grafanaDashboards+:: {
    'bug-escape-overview.json': (import 'overview.libsonnet')($._config),
    'bug-escape-exporter-health.json': (import 'health.libsonnet')($._config),
  },
}
