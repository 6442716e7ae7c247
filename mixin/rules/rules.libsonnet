// Recording rules of the bug-escape-exporter mixin.
//
// Everything the alerts and the Grafana dashboards would otherwise repeat is
// computed once here. Thresholds, owners, targets and the minimum sample are
// never copied in: they are read from the exporter's configuration-as-data
// series (bug_escape_band_threshold_ratio, bug_escape_stage_owner_info,
// bug_escape_cause_owner_info, bug_escape_stage_leak_target_ratio,
// bug_escape_min_defects, bug_escape_volume_drop_threshold_ratio,
// bug_escape_volume_min_predecessors), so changing the exporter's TOML
// changes alerts and dashboards alike.
//
// Every join is `on(<target labels>, ...)` and every aggregation `by
// (<target labels>, ...)`: one exporter's series only ever meet that
// exporter's configuration series, however many targets Prometheus scrapes.
//
// Naming follows level:metric:operations
// (https://prometheus.io/docs/practices/rules/).
local u = import '../lib/util.libsonnet';

{
  prometheusRules+:: {
    local c = $._config,
    local v = { t: u.targets(c) },

    // Band index of a rate: 0 strong, 1 healthy, 2 attention, 3 leaking, by
    // the product's own band thresholds (upper bounds):
    //   strong E < strong · healthy E <= healthy · attention E <= attention.
    local bandIndex(metric) = |||
      (%(m)s >= bool on(%(t)s, product) group_left() bug_escape_band_threshold_ratio{band="strong"})
      + (%(m)s >  bool on(%(t)s, product) group_left() bug_escape_band_threshold_ratio{band="healthy"})
      + (%(m)s >  bool on(%(t)s, product) group_left() bug_escape_band_threshold_ratio{band="attention"})
    ||| % (v { m: metric }),

    // The line below which a count is a drop from the trailing median `m`:
    // the product's fraction of it, and beyond chance (one-sided 95 %, the
    // count's spread taken as sqrt(median)); the lower of the two.
    local dropLimit(m) = |||
      (
          %(m)s * on(%(t)s, product) group_left() bug_escape_volume_drop_threshold_ratio
        <=
          %(m)s - 1.645 * sqrt(%(m)s)
      )
      or
      (%(m)s - 1.645 * sqrt(%(m)s))
    ||| % (v { m: m }),

    local limit(name, value, comment) = {
      [if comment != null then '_comment']:: comment,
      record: 'product:bug_escape_%s_limit:ratio' % name,
      expr: 'max by (%s, product) (bug_escape_min_defects) * 0 + %s' % [v.t, u.number(value)],
    },

    groups+: [
      {
        name: 'bug-escape.rules',
        rules: [
          {
            _comment:: 'Percent views for dashboards (the exporter exports ratios 0..1).',
            record: 'product_release:bug_escape_rate:percent',
            expr: '100 * bug_escape_rate_ratio',
          },
          { record: 'product_release:bug_escape_rate_lower:percent', expr: '100 * bug_escape_rate_lower_ratio' },
          { record: 'product_release:bug_escape_rate_upper:percent', expr: '100 * bug_escape_rate_upper_ratio' },
          { record: 'product:bug_escape_recent_rate:percent', expr: '100 * bug_escape_recent_rate_ratio' },
          { record: 'product:bug_escape_recent_rate_lower:percent', expr: '100 * bug_escape_recent_rate_lower_ratio' },
          { record: 'product:bug_escape_recent_rate_upper:percent', expr: '100 * bug_escape_recent_rate_upper_ratio' },
          { record: 'product_release_age:bug_escape_rate_at_age:percent', expr: '100 * bug_escape_rate_at_age_ratio' },
          { record: 'product_band:bug_escape_band_threshold:percent', expr: '100 * bug_escape_band_threshold_ratio' },

          {
            _comment:: |||
              Band index of a rate: 0 strong, 1 healthy, 2 attention, 3 leaking,
              with the product's own band thresholds (upper bounds):
                strong E < strong · healthy E <= healthy · attention E <= attention.
            |||,
            record: 'product_release:bug_escape_band:index',
            expr: bandIndex('bug_escape_rate_ratio'),
          },
          {
            record: 'product:bug_escape_recent_band:index',
            expr: bandIndex('bug_escape_recent_rate_ratio'),
          },

          {
            _comment:: |||
              Stage leaks (the metric tree), with the stage's owner joined in.
              L_k with the owner of the stage; a stage without owner info keeps its
              series (alerts then go to the default quality receiver).
            |||,
            record: 'product_release_stage:bug_escape_stage_leak:ratio',
            expr: |||
              bug_escape_stage_leak_ratio
                * on(%(t)s, product, stage) group_left(owner) bug_escape_stage_owner_info
              or
              (bug_escape_stage_leak_ratio unless on(%(t)s, product, stage) bug_escape_stage_owner_info)
            ||| % v,
          },
          {
            _comment:: |||
              N_{>=k}: the defects that reached stage k (its sample size). The
              exporter exports N_k (bug_escape_defects) and L_k = N_{>k} / N_{>=k},
              so N_{>=k} = N_k / (1 - L_k). When L_k = 1 the stage caught nothing
              (0/0 above); then every escaped defect still passed it, so the
              release's escaped count P is used as a lower bound.
            |||,
            record: 'product_release_stage:bug_escape_stage_reached_defects:count',
            expr: |||
              round(bug_escape_defects / (1 - bug_escape_stage_leak_ratio)) > 0
              or on(%(t)s, product, release, stage)
              (bug_escape_stage_leak_ratio == 1)
                * on(%(t)s, product, release) group_left() bug_escape_release_escaped_defects
            ||| % v,
          },
          {
            _comment:: |||
              Lower bound of the 95 % Wilson score interval (z = 1.96) of L_k, the
              same statistic the exporter exports for the escape rate. Alerts enter
              on it so that a stage with few defects does not alert on noise.
            |||,
            record: 'product_release_stage:bug_escape_stage_leak_lower:ratio',
            expr: |||
              (
                  bug_escape_stage_leak_ratio
                + 3.8416 / (2 * product_release_stage:bug_escape_stage_reached_defects:count)
                - 1.96 * sqrt(
                      bug_escape_stage_leak_ratio * (1 - bug_escape_stage_leak_ratio)
                        / product_release_stage:bug_escape_stage_reached_defects:count
                    + 3.8416 / (4 * product_release_stage:bug_escape_stage_reached_defects:count ^ 2)
                  )
              )
              / (1 + 3.8416 / product_release_stage:bug_escape_stage_reached_defects:count)
            |||,
          },
          {
            _comment:: 'L_k / target: above 1 means the stage leaks more than its owner aims for.',
            record: 'product_release_stage:bug_escape_stage_leak_over_target:ratio',
            expr: |||
              product_release_stage:bug_escape_stage_leak:ratio
                / on(%(t)s, product, stage) group_left() bug_escape_stage_leak_target_ratio
            ||| % v,
          },

          {
            _comment:: |||
              Escaped defects by cause, as a share of the release's production
              defects, with the cause's owner joined in.
            |||,
            record: 'product_release_cause:bug_escape_escaped_cause_share:ratio',
            expr: |||
              (
                bug_escape_escaped_defects_by_cause
                  / on(%(t)s, product, release) group_left() (bug_escape_release_escaped_defects > 0)
              )
                * on(%(t)s, product, cause) group_left(owner) bug_escape_cause_owner_info
              or
              (
                bug_escape_escaped_defects_by_cause
                  / on(%(t)s, product, release) group_left() (bug_escape_release_escaped_defects > 0)
              )
                unless on(%(t)s, product, cause) bug_escape_cause_owner_info
            ||| % v,
          },
          {
            _comment:: "Wilson lower bound of that share (n = the release's escaped defects).",
            record: 'product_release_cause:bug_escape_escaped_cause_share_lower:ratio',
            expr: |||
              (
                  product_release_cause:bug_escape_escaped_cause_share:ratio
                + on(%(t)s, product, release) group_left()
                  (3.8416 / (2 * bug_escape_release_escaped_defects))
                - 1.96 * sqrt(
                      product_release_cause:bug_escape_escaped_cause_share:ratio
                        * (1 - product_release_cause:bug_escape_escaped_cause_share:ratio)
                        / on(%(t)s, product, release) group_left() bug_escape_release_escaped_defects
                    + on(%(t)s, product, release) group_left()
                      (3.8416 / (4 * bug_escape_release_escaped_defects ^ 2))
                  )
              )
              / on(%(t)s, product, release) group_left()
                (1 + 3.8416 / bug_escape_release_escaped_defects)
            ||| % v,
          },

          {
            _comment:: |||
              Alerts only where action is possible (_config releaseAlertWindow,
              releaseAlertNewest): 1 for an exported release shipped within the
              last %(window)s (by bug_escape_release_timestamp_seconds; a release
              time in the future counts as within) or, its release time unknown,
              among the newest %(newest)d exported releases of its product
              (bug_escape_release_rank < %(newest)d); 0 for every other exported
              release. The release alerts consider the releases at 1 only. An
              exporter without bug_escape_release_rank leaves releases without a
              release time at 1.
            ||| % { window: c.releaseAlertWindow, newest: c.releaseAlertNewest },
            record: 'product_release:bug_escape_release_actionable:bool',
            expr: |||
              (
                bug_escape_release_defects * 0 + 1
                  unless on(%(t)s, product, release)
                (time() - bug_escape_release_timestamp_seconds > %(seconds)d)
                  unless on(%(t)s, product, release)
                (
                  bug_escape_release_rank >= %(newest)d
                    unless on(%(t)s, product, release) bug_escape_release_timestamp_seconds
                )
              )
              or
              bug_escape_release_defects * 0
            ||| % (v { seconds: u.seconds(c.releaseAlertWindow), newest: c.releaseAlertNewest }),
          },
          {
            _comment:: |||
              1 for a product with at least one release at 1 above, else 0: the
              product alerts (recent rate, trend, under-reporting, unattributed and
              unknown-cause shares) go quiet for a
              product none of whose releases is within the window, such as the
              imported history of a product that no longer ships.
            |||,
            record: 'product:bug_escape_release_actionable:max',
            expr: 'max by (%(t)s, product) (product_release:bug_escape_release_actionable:bool)' % v,
          },

          limit('cause_concentration', c.causeConcentrationLimit, |||
            Levels that are not part of the exporter's configuration, from the
            mixin's _config (causeConcentrationLimit, unattributedLimit,
            unknownCauseLimit). They are per product so that an override for one
            product is a single extra `or` clause, e.g.
              (... * 0 + 0.7) and on(%(t)s, product) bug_escape_min_defects{product="payments"}
          ||| % v),
          limit('unattributed', c.unattributedLimit, null),
          limit('unknown_cause', c.unknownCauseLimit, null),

          {
            _comment:: |||
              Data quality.
              All stored valid defects of the product's exported releases plus the
              unattributed ones (no release yet).
            |||,
            record: 'product:bug_escape_defects_with_unattributed:count',
            expr: |||
              (
                  sum by (%(t)s, product) (bug_escape_unattributed_defects)
                or
                  0 * sum by (%(t)s, product) (bug_escape_release_defects)
              )
              + (
                  sum by (%(t)s, product) (bug_escape_release_defects)
                or
                  0 * sum by (%(t)s, product) (bug_escape_unattributed_defects)
              )
            ||| % v,
          },
          {
            record: 'product:bug_escape_unattributed_share:ratio',
            expr: |||
              sum by (%(t)s, product) (bug_escape_unattributed_defects)
                / (product:bug_escape_defects_with_unattributed:count > 0)
            ||| % v,
          },
          {
            _comment:: |||
              Production defects without a cause (cause "unknown") among the
              product's exported releases.
            |||,
            record: 'product:bug_escape_escaped_defects:sum',
            expr: 'sum by (%(t)s, product) (bug_escape_release_escaped_defects)' % v,
          },
          {
            _comment:: 'The owner of cause "unknown" (whoever triages escapes) is joined in.',
            record: 'product:bug_escape_unknown_cause_share:ratio',
            expr: |||
              (
                sum by (%(t)s, product) (bug_escape_escaped_defects_by_cause{cause="unknown"})
                  / (product:bug_escape_escaped_defects:sum > 0)
              )
                * on(%(t)s, product) group_left(owner) bug_escape_cause_owner_info{cause="unknown"}
              or
              (
                sum by (%(t)s, product) (bug_escape_escaped_defects_by_cause{cause="unknown"})
                  / (product:bug_escape_escaped_defects:sum > 0)
              )
                unless on(%(t)s, product) bug_escape_cause_owner_info{cause="unknown"}
            ||| % v,
          },

          {
            _comment:: |||
              Trend at equal age: the newest release that has reached an age
              against the releases before it at that same age.
              Release time of each release that has an at-age rate.
            |||,
            record: 'product_release_age:bug_escape_release_timestamp:seconds',
            expr: |||
              bug_escape_rate_at_age_ratio * 0
                + on(%(t)s, product, release) group_left() bug_escape_release_timestamp_seconds
            ||| % v,
          },
          {
            _comment:: 'The newest of them, per product and age (value: its at-age rate).',
            record: 'product_release_age:bug_escape_rate_at_age_newest:ratio',
            expr: |||
              bug_escape_rate_at_age_ratio
                and on(%(t)s, product, release, age)
              (
                  product_release_age:bug_escape_release_timestamp:seconds
                == on(%(t)s, product, age) group_left()
                  max by (%(t)s, product, age) (product_release_age:bug_escape_release_timestamp:seconds)
              )
            ||| % v,
          },
          {
            _comment:: 'The releases before it with a sufficient sample (T >= min_defects).',
            record: 'product_release_age:bug_escape_rate_at_age_previous:ratio',
            expr: |||
              (
                  bug_escape_rate_at_age_ratio
                unless on(%(t)s, product, release, age)
                  product_release_age:bug_escape_rate_at_age_newest:ratio
              )
              and on(%(t)s, product, release) (
                bug_escape_release_defects >= on(%(t)s, product) group_left() bug_escape_min_defects
              )
              and on(%(t)s, product, release, age) product_release_age:bug_escape_release_timestamp:seconds
            ||| % v,
          },
          {
            record: 'product_age:bug_escape_rate_at_age_previous:avg_ratio',
            expr: 'avg by (%(t)s, product, age) (product_release_age:bug_escape_rate_at_age_previous:ratio)' % v,
          },
          {
            record: 'product_age:bug_escape_rate_at_age_previous:count',
            expr: 'count by (%(t)s, product, age) (product_release_age:bug_escape_rate_at_age_previous:ratio)' % v,
          },
          {
            record: 'product_release_age:bug_escape_rate_at_age_newest_band:index',
            expr: bandIndex('product_release_age:bug_escape_rate_at_age_newest:ratio'),
          },
          {
            record: 'product_age:bug_escape_rate_at_age_previous_band:index',
            expr: bandIndex('product_age:bug_escape_rate_at_age_previous:avg_ratio'),
          },

          {
            _comment:: |||
              Under-reporting at equal age: the newest release that has reached an
              age against the median of the releases before it at that age.
              Built on bug_escape_release_defects_at_age, which is present (0
              included) once a release is that old: the rate at age is absent at
              0 defects, exactly when logging stopped altogether.
              Release time of each release that has an at-age volume.
            |||,
            record: 'product_release_age:bug_escape_volume_release_timestamp:seconds',
            expr: |||
              bug_escape_release_defects_at_age * 0
                + on(%(t)s, product, release) group_left() bug_escape_release_timestamp_seconds
            ||| % v,
          },
          {
            _comment:: 'The newest of them, per product and age (value: its defects at that age).',
            record: 'product_release_age:bug_escape_release_defects_at_age_newest:count',
            expr: |||
              bug_escape_release_defects_at_age
                and on(%(t)s, product, release, age)
              (
                  product_release_age:bug_escape_volume_release_timestamp:seconds
                == on(%(t)s, product, age) group_left()
                  max by (%(t)s, product, age) (product_release_age:bug_escape_volume_release_timestamp:seconds)
              )
            ||| % v,
          },
          {
            _comment:: 'Its predecessors: the releases shipped before it, at the same age.',
            record: 'product_release_age:bug_escape_release_defects_at_age_previous:count',
            expr: |||
              bug_escape_release_defects_at_age
                and on(%(t)s, product, release, age)
              (
                  product_release_age:bug_escape_volume_release_timestamp:seconds
                < on(%(t)s, product, age) group_left()
                  max by (%(t)s, product, age) (product_release_age:bug_escape_volume_release_timestamp:seconds)
              )
            ||| % v,
          },
          {
            record: 'product_age:bug_escape_release_defects_at_age_previous:median',
            expr: 'quantile by (%(t)s, product, age) (0.5, product_release_age:bug_escape_release_defects_at_age_previous:count)' % v,
          },
          {
            _comment:: 'How many predecessors the median is over (too few: nothing is judged).',
            record: 'product_age:bug_escape_release_defects_at_age_previous:count',
            expr: 'count by (%(t)s, product, age) (product_release_age:bug_escape_release_defects_at_age_previous:count)' % v,
          },
          {
            _comment:: |||
              The line below which the newest release's volume is a drop: the
              product's fraction of the trailing median
              (bug_escape_volume_drop_threshold_ratio), and beyond chance, i.e. also
              below median - 1.645 sqrt(median) (one-sided 95 % for a count whose
              expected value is the median), so that a median of 3 falling to 1
              is not called a drop. The lower of the two.
            |||,
            record: 'product_age:bug_escape_release_defects_at_age_drop_limit:count',
            expr: dropLimit('product_age:bug_escape_release_defects_at_age_previous:median'),
          },

          {
            _comment:: |||
              The same for the production defects reported by users and found by
              monitoring. Monitoring is the witness nobody chooses to log or not:
              user reports falling while monitoring holds is under-reporting;
              both falling is a quiet release.
            |||,
            record: 'product_release_age_detected_by:bug_escape_escaped_defects_at_age_newest:count',
            expr: |||
              bug_escape_escaped_defects_at_age_by_detector{detected_by=~"user|monitoring"}
                and on(%(t)s, product, release, age)
              product_release_age:bug_escape_release_defects_at_age_newest:count
            ||| % v,
          },
          {
            record: 'product_release_age_detected_by:bug_escape_escaped_defects_at_age_previous:count',
            expr: |||
              bug_escape_escaped_defects_at_age_by_detector{detected_by=~"user|monitoring"}
                and on(%(t)s, product, release, age)
              product_release_age:bug_escape_release_defects_at_age_previous:count
            ||| % v,
          },
          {
            record: 'product_age_detected_by:bug_escape_escaped_defects_at_age_previous:median',
            expr: 'quantile by (%(t)s, product, age, detected_by) (0.5, product_release_age_detected_by:bug_escape_escaped_defects_at_age_previous:count)' % v,
          },
          {
            record: 'product_age_detected_by:bug_escape_escaped_defects_at_age_drop_limit:count',
            expr: dropLimit('product_age_detected_by:bug_escape_escaped_defects_at_age_previous:median'),
          },
        ],
      },
    ],
  },
}
