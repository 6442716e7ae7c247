// Settings of the bug-escape-exporter mixin. Override any of them:
//
//   (import 'mixin.libsonnet') + {
//     _config+:: {
//       bugEscapeSelector: 'job="bug-escape"',
//       runbookURLBase: 'https://wiki.example.com/bug-escape/runbook',
//     },
//   }
//
// Thresholds, owners, leak targets and the minimum sample are not settings of
// the mixin: the rules read them from the exporter's configuration-as-data
// series (bug_escape_band_threshold_ratio, bug_escape_min_defects, ...), so
// the exporter's TOML is the one place to change them.
{
  _config+:: {
    // Selects the exporter's scrape targets in the alerts on `up`
    // (BugEscapeExporterDown, BugEscapeExporterAbsent).
    bugEscapeSelector: 'job="bug-escape-exporter"',

    // The labels that tell one scrape target from another. Every join and
    // every aggregation of the rules keeps them, so the same exporter scraped
    // as several targets (replicas, two Prometheus jobs) never makes a join
    // ambiguous, and every alert says which target it is about.
    targetLabels: ['job', 'instance'],

    // Where the runbook lives; each alert links to `<base>#<alertname in
    // lower case>`.
    runbookURLBase: 'https://github.com/bug-escape-exporter/bug-escape-exporter/blob/main/docs/runbook.md',

    // The three levels that have no exporter setting. They are recorded per
    // product (product:bug_escape_*_limit:ratio), so dashboards and alerts
    // read the same value.
    causeConcentrationLimit: 0.5,  // BugEscapeCauseConcentrated: share of a release's escapes with one cause
    unattributedLimit: 0.2,  // BugEscapeUnattributedDefects: share of a product's defects without a release
    unknownCauseLimit: 0.2,  // BugEscapeUnknownCause: share of a product's escapes with cause "unknown"

    // Alerts only where action is possible. The release alerts
    // (BugEscapeReleaseLeaking, BugEscapeReleaseAttention,
    // BugEscapeStageLeakAboveTarget, BugEscapeCauseConcentrated) consider a
    // release shipped within the last `releaseAlertWindow` (by
    // bug_escape_release_timestamp_seconds), or, when its release time is
    // unknown, one of the newest `releaseAlertNewest` exported releases of its
    // product (bug_escape_release_rank). The product alerts
    // (BugEscapeRecentRate*, BugEscapeTrendWorsening, BugEscapeDefectVolumeDrop,
    // BugEscapeUserReportsDrop, BugEscapeUnattributedDefects,
    // BugEscapeUnknownCause) go quiet for a product none of whose releases
    // qualifies: imported history of a product that no longer ships.
    // Recorded once: product_release:bug_escape_release_actionable:bool.
    // Units s, m, h, d, w.
    releaseAlertWindow: '90d',
    releaseAlertNewest: 3,

    // BugEscapeSourceQuiet: a source that used to send is silent this long.
    sourceQuietDays: 3,

    // The `owner` of the data-quality alerts about under-reporting
    // (BugEscapeDefectVolumeDrop, BugEscapeUserReportsDrop): a team, never
    // a person. examples/alertmanager.yml routes it to the quality leads.
    dataQualityOwner: 'quality-leads',

    // Sync (reconcile passes over the vendors' APIs).
    // BugEscapeSyncFailing: no successful pass of a source for
    // `failingIntervals` times the exporter's sync interval (keep `interval`
    // equal to it), or the latest pass serve ran failed.
    sync: { interval: '1h', failingIntervals: 3 },
    // BugEscapeSyncMissedDeliveries: more than `threshold` items within
    // `window` whose stored state was behind the vendor's (deliveries the
    // webhooks missed, found by sync).
    syncDifferences: { window: '1d', threshold: 3 },

    // BugEscapeWebhookAuthRejected: requests of a source rejected for
    // authentication within `rejected`, and no delivery of that source
    // accepted within `accepted`.
    webhookAuthWindow: { rejected: '10m', accepted: '1h' },

    // BugEscapeStoreErrors: store errors within this window.
    storeErrorsWindow: '5m',

    // `for` and `keep_firing_for` of each alert.
    alertFor: {
      BugEscapeReleaseLeaking: '1h',
      BugEscapeReleaseAttention: '1h',
      BugEscapeRecentRateLeaking: '1h',
      BugEscapeRecentRateAttention: '1h',
      BugEscapeTrendWorsening: '1h',
      BugEscapeStageLeakAboveTarget: '1h',
      BugEscapeCauseConcentrated: '1h',
      BugEscapeUnattributedDefects: '6h',
      BugEscapeUnknownCause: '6h',
      BugEscapeDefectVolumeDrop: '6h',
      BugEscapeUserReportsDrop: '6h',
      BugEscapeExporterDown: '5m',
      BugEscapeExporterAbsent: '10m',
      BugEscapeWebhookAuthRejected: '15m',
      BugEscapeSourceQuiet: '30m',
      BugEscapeStoreErrors: '10m',
      BugEscapeStoreNotWritable: '5m',
      BugEscapeProductsLeftOut: '1h',
      BugEscapeSyncFailing: '15m',
      BugEscapeSyncMissedDeliveries: '15m',
    },
    alertKeepFiringFor: {
      BugEscapeReleaseLeaking: '1h',
      BugEscapeReleaseAttention: '1h',
      BugEscapeRecentRateLeaking: '1h',
      BugEscapeRecentRateAttention: '1h',
      BugEscapeTrendWorsening: '1h',
      BugEscapeStageLeakAboveTarget: '1h',
      BugEscapeCauseConcentrated: '1h',
      BugEscapeUnattributedDefects: '1h',
      BugEscapeUnknownCause: '1h',
      BugEscapeDefectVolumeDrop: '1h',
      BugEscapeUserReportsDrop: '1h',
      BugEscapeWebhookAuthRejected: '15m',
      BugEscapeSyncMissedDeliveries: '1h',
    },

    // LitestreamReplicaLagging: Litestream (scraped as `selector`) has
    // copied new WAL of the database for `replicaLag` and written none of it
    // to its replica, for `for` more (docs/operations.md).
    litestream: { selector: 'job="litestream"', replicaLag: '10m', 'for': '5m' },

    // Grafana.
    grafanaTags: ['bug-escape'],
    // Colour steps of rates on the dashboards, in percent: the upper bounds
    // of the exporter's default bands (strong < 5, healthy <= 10,
    // attention <= 20, leaking above). Alerts never use them: they judge
    // each product by its own configured bands.
    dashboardBands: { strong: 5, healthy: 10, attention: 20 },

    // The Kubernetes PrometheusRule (prometheus-operator).
    prometheusRuleName: 'bug-escape-exporter',
    // Add the labels your Prometheus' ruleSelector needs (e.g. `release:`
    // for kube-prometheus-stack).
    prometheusRuleLabels: {
      'app.kubernetes.io/name': 'bug-escape-exporter',
      'app.kubernetes.io/component': 'monitoring',
    },
  },
}
