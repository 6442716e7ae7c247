// The bug-escape-exporter monitoring mixin: prometheusRules,
// prometheusAlerts and grafanaDashboards, driven by _config
// (config.libsonnet). generate.sh renders it into the repository's files.
(import 'config.libsonnet')
+ (import 'rules/rules.libsonnet')
+ (import 'alerts/alerts.libsonnet')
+ (import 'alerts/litestream.libsonnet')
+ (import 'dashboards/dashboards.libsonnet')
