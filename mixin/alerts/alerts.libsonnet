// Alerting rules of the bug-escape-exporter mixin.
//
// Two kinds of alerts, told apart by the `category` label:
//
// * category="quality" (severity info or warning) — never pages. The escape
//   rate moves over days and nothing can be fixed at 3 a.m. In the example
//   routing (examples/alertmanager.yml) warnings go to the owning team in
//   business hours, at most daily; info alerts are for the dashboards only.
// * category="operational" (severity critical pages; warning does not) — the
//   exporter itself: down, not scraped, webhooks rejected, a source gone
//   quiet, a failing store.
//
// Thresholds, owners, leak targets and the minimum sample come from the
// exporter's configuration-as-data series, joined in with
// `on(job, instance, product) group_left` / `on(job, instance, product,
// stage) group_left(owner)`; see rules/rules.libsonnet for the recorded
// building blocks. Every alert keeps the target labels (job, instance).
//
// How the quality alerts avoid flapping at a boundary (docs/runbook.md,
// "How quality alerts fire and clear"):
//   enter  when the sample is large enough (T >= bug_escape_min_defects) and the
//          lower bound of the 95 % Wilson interval is above the line — the rate
//          is above it beyond reasonable doubt;
//   hold   while the point estimate is still above the line: the alert reads
//          its own ALERTS series, so a firing alert does not clear just because
//          one more defect caught before release pulls the lower bound under
//          the line (hysteresis between lower bound and estimate);
//   keep_firing_for bridges gaps in the series (exporter restart, a missed
//          scrape) that would otherwise resolve the alert and make it re-enter
//          through the stricter lower-bound condition.
// `for` makes a crossing survive a little while before anyone is notified, so
// a re-classification in progress (several events in a row) does not notify.
local u = import '../lib/util.libsonnet';

{
  prometheusAlerts+:: {
    local c = $._config,
    local t = u.targets(c),
    local q = function(metric, labels, extra=[], wrap='%s', format=' | humanizePercentage')
      u.query(c, metric, labels, extra, wrap, format),

    local alert(name, expr, severity, category, annotations, labels={}, comment=null) = {
      [if comment != null then '_comment']:: comment,
      alert: name,
      expr: expr,
      'for': c.alertFor[name],
      [if std.objectHas(c.alertKeepFiringFor, name) then 'keep_firing_for']: c.alertKeepFiringFor[name],
      labels: { severity: severity, category: category } + labels,
      annotations: {
        summary: u.oneLine(annotations.summary),
        description: u.oneLine(annotations.description),
        runbook_url: u.runbook(c, name),
        _lines:: { description: u.lines(annotations.description) },
      },
    },

    // Alerts only where action is possible (_config releaseAlertWindow,
    // releaseAlertNewest; rules/rules.libsonnet records both gates): a
    // release alert leaves out the releases outside the window, a product
    // alert the products none of whose releases is inside it. `unless ... ==
    // 0`, not `and ... == 1`: only what is known to be out of the window is
    // left out, so a missing series never silences an alert.
    local releaseGate = |||
      unless on(%(t)s, product, release)
        (product_release:bug_escape_release_actionable:bool == 0)
    ||| % { t: t },
    local productGate = |||
      unless on(%(t)s, product)
        (product:bug_escape_release_actionable:max == 0)
    ||| % { t: t },

    // The release's failing stage and its owner, when the exporter names one
    // (bug_escape_release_failing_stage_info; docs/semantics.md); otherwise a
    // sentence that claims nothing about the stages.
    local failingStage =
      local names = c.targetLabels + ['product', 'release'];
      '{{ with printf `bug_escape_release_failing_stage_info{%s}` %s | query }}' % [
        std.join(',', ['%s=%%q' % l for l in names]),
        std.join(' ', ['$labels.' + l for l in names]),
      ]
      + '{{ with first . }}Failing stage: {{ .Labels.stage }} (owner: {{ .Labels.owner }}),'
      + ' the stage furthest above its {{ .Labels.basis }}; start there.{{ end }}'
      + '{{ else }}The exporter names no failing stage for this release'
      + ' (bug_escape_release_failing_stage_info); its stage leaks are on the Overview dashboard.{{ end }}',

    // A band crossing with hysteresis: enters on the lower bound of the
    // Wilson interval (with a large enough sample), holds on the estimate.
    local bandExpr(name, rate, lower, sample, keys, threshold) = |||
      %(rate)s
      and on(%(keys)s)
      (
        (
            %(lower)s
              > on(%(t)s, product) group_left() %(threshold)s
          and on(%(keys)s)
            %(sample)s
              >= on(%(t)s, product) group_left() bug_escape_min_defects
        )
        or
        (
            %(rate)s
              > on(%(t)s, product) group_left() %(threshold)s
          and on(%(keys)s)
            ALERTS{alertname="%(name)s", alertstate="firing"}
        )
      )
    ||| % { name: name, rate: rate, lower: lower, sample: sample, keys: t + ', ' + keys, threshold: threshold, t: t },

    local releaseBand(name, band, over, severity, headline) = alert(
      name,
      bandExpr(
        name,
        'bug_escape_rate_ratio',
        'bug_escape_rate_lower_ratio',
        'bug_escape_release_defects',
        'product, release',
        'bug_escape_band_threshold_ratio{band="%s"}' % over
      ) + releaseGate,
      severity,
      'quality',
      {
        summary: 'Release {{ $labels.product }} {{ $labels.release }} %s: {{ $value | humanizePercentage }} of its defects reached production.' % headline,
        description: |||
          {{ $value | humanizePercentage }} of the defects of {{ $labels.product }} {{ $labels.release }} were found in production
          (95%% interval %s
          to %s,
          %s defects),
          above the upper bound of the %s band
          (%s).
          %s
        ||| % [
          q('bug_escape_rate_lower_ratio', ['product', 'release']),
          q('bug_escape_rate_upper_ratio', ['product', 'release']),
          q('bug_escape_release_defects', ['product', 'release'], format=''),
          over,
          q('bug_escape_band_threshold_ratio', ['product'], ['band="%s"' % over]),
          failingStage,
        ],
      },
      { band: band },
      if name == 'BugEscapeReleaseLeaking' then 'Band crossings of one release.' else null,
    ),

    local recentBand(name, band, over, severity, headline) = alert(
      name,
      bandExpr(
        name,
        'bug_escape_recent_rate_ratio',
        'bug_escape_recent_rate_lower_ratio',
        'bug_escape_recent_defects',
        'product',
        'bug_escape_band_threshold_ratio{band="%s"}' % over
      ) + productGate,
      severity,
      'quality',
      {
        summary: '{{ $labels.product }} %s: {{ $value | humanizePercentage }} of the defects of its recent releases reached production.' % headline,
        description: |||
          Pooled over its recent releases, {{ $value | humanizePercentage }} of the defects of {{ $labels.product }} were found in production
          (95%% interval %s
          to %s,
          %s defects),
          above the upper bound of the %s band
          (%s).
        ||| % [
          q('bug_escape_recent_rate_lower_ratio', ['product']),
          q('bug_escape_recent_rate_upper_ratio', ['product']),
          q('bug_escape_recent_defects', ['product'], format=''),
          over,
          q('bug_escape_band_threshold_ratio', ['product'], ['band="%s"' % over]),
        ],
      },
      { band: band },
      if name == 'BugEscapeRecentRateLeaking' then 'Band crossings of the pooled rate of a product\'s recent releases.' else null,
    ),

    // The newest release's monitoring-detected escapes at an age fell below
    // their drop line: the release is quiet, not under-reported.
    local monitoringDropped = |||
      (
          product_release_age_detected_by:bug_escape_escaped_defects_at_age_newest:count{detected_by="monitoring"}
            < on(%(t)s, product, age, detected_by) group_left()
          product_age_detected_by:bug_escape_escaped_defects_at_age_drop_limit:count
      )
    ||| % { t: t },

    groups+: [
      {
        name: 'bug-escape.quality',
        rules: [
          releaseBand('BugEscapeReleaseLeaking', 'leaking', 'attention', 'warning', 'is leaking'),
          releaseBand('BugEscapeReleaseAttention', 'attention', 'healthy', 'info', 'needs attention'),
          recentBand('BugEscapeRecentRateLeaking', 'leaking', 'attention', 'warning', 'is leaking'),
          recentBand('BugEscapeRecentRateAttention', 'attention', 'healthy', 'info', 'needs attention'),

          alert(
            'BugEscapeTrendWorsening',
            |||
              product_release_age:bug_escape_rate_at_age_newest:ratio
              and on(%(t)s, product, release, age)
              (
                  product_release_age:bug_escape_rate_at_age_newest_band:index
                    > on(%(t)s, product, age) group_left()
                  product_age:bug_escape_rate_at_age_previous_band:index
              )
              and on(%(t)s, product, age)
                product_age:bug_escape_rate_at_age_previous:count >= 2
              and on(%(t)s, product, release)
              (
                bug_escape_release_defects
                  >= on(%(t)s, product) group_left() bug_escape_min_defects
              )
            ||| % { t: t } + productGate,
            'info',
            'quality',
            {
              summary: 'Escape rate of {{ $labels.product }} is getting worse: {{ $labels.release }} is in a worse band at {{ $labels.age }} than the releases before it.',
              description: |||
                {{ $labels.age }} after it shipped, {{ $labels.product }} {{ $labels.release }} had an escape rate of {{ $value | humanizePercentage }},
                against an average of %s
                for the %s releases before it at the same age.
              ||| % [
                q('product_age:bug_escape_rate_at_age_previous:avg_ratio', ['product', 'age']),
                q('product_age:bug_escape_rate_at_age_previous:count', ['product', 'age'], format=''),
              ],
            },
            comment=|||
              Worsening trend, compared at equal age: the newest release that has
              reached an age (label `age`) sits in a worse band than the average of
              the releases before it at that same age. Needs at least two earlier
              releases and T >= min_defects for every release compared.
            |||,
          ),

          alert(
            'BugEscapeStageLeakAboveTarget',
            |||
              product_release_stage:bug_escape_stage_leak:ratio
              and on(%(t)s, product, release, stage)
              (
                (
                    product_release_stage:bug_escape_stage_leak_lower:ratio
                      > on(%(t)s, product, stage) group_left() bug_escape_stage_leak_target_ratio
                  and on(%(t)s, product, release, stage)
                    product_release_stage:bug_escape_stage_reached_defects:count
                      >= on(%(t)s, product) group_left() bug_escape_min_defects
                )
                or
                (
                    bug_escape_stage_leak_ratio
                      > on(%(t)s, product, stage) group_left() bug_escape_stage_leak_target_ratio
                  and on(%(t)s, product, release, stage)
                    ALERTS{alertname="BugEscapeStageLeakAboveTarget", alertstate="firing"}
                )
              )
            ||| % { t: t } + releaseGate,
            'warning',
            'quality',
            {
              summary: 'Stage {{ $labels.stage }} let {{ $value | humanizePercentage }} of the defects of {{ $labels.product }} {{ $labels.release }} through, above its target.',
              description: |||
                Of the %s
                defects of {{ $labels.product }} {{ $labels.release }} that reached stage {{ $labels.stage }} (owner: {{ or $labels.owner "none configured" }}),
                {{ $value | humanizePercentage }} went on undetected (leak target
                %s).
              ||| % [
                q('product_release_stage:bug_escape_stage_reached_defects:count', ['product', 'release', 'stage'], format=''),
                q('bug_escape_stage_leak_target_ratio', ['product', 'stage']),
              ],
            },
            comment=|||
              One stage of the quality net leaking more than its target; routed to
              the stage's owner. Untracked stages have no leak series, hence no
              alert. Sample: defects that reached the stage >= min_defects.
            |||,
          ),

          alert(
            'BugEscapeCauseConcentrated',
            |||
              product_release_cause:bug_escape_escaped_cause_share:ratio{cause!="unknown"}
              and on(%(t)s, product, release, cause)
              (
                (
                    product_release_cause:bug_escape_escaped_cause_share_lower:ratio
                      > on(%(t)s, product) group_left() product:bug_escape_cause_concentration_limit:ratio
                  and on(%(t)s, product, release)
                    bug_escape_release_escaped_defects
                      >= on(%(t)s, product) group_left() bug_escape_min_defects
                )
                or
                (
                    product_release_cause:bug_escape_escaped_cause_share:ratio
                      > on(%(t)s, product) group_left() product:bug_escape_cause_concentration_limit:ratio
                  and on(%(t)s, product, release, cause)
                    ALERTS{alertname="BugEscapeCauseConcentrated", alertstate="firing"}
                )
              )
            ||| % { t: t } + releaseGate,
            'info',
            'quality',
            {
              summary: '{{ $value | humanizePercentage }} of the escaped defects of {{ $labels.product }} {{ $labels.release }} have cause {{ $labels.cause }}.',
              description: |||
                {{ $value | humanizePercentage }} of the
                %s
                production defects of {{ $labels.product }} {{ $labels.release }} have cause {{ $labels.cause }} (owner: {{ or $labels.owner "none configured" }}),
                above the concentration level of
                %s.
              ||| % [
                q('bug_escape_release_escaped_defects', ['product', 'release'], format=''),
                q('product:bug_escape_cause_concentration_limit:ratio', ['product']),
              ],
            },
            comment=|||
              Escaped defects concentrated in one cause (not "unknown", which is the
              data-quality alert below); routed to the cause's owner. Level:
              product:bug_escape_cause_concentration_limit:ratio (_config
              causeConcentrationLimit). Sample: the release's escaped defects
              P >= min_defects.
            |||,
          ),

          alert(
            'BugEscapeUnattributedDefects',
            |||
              product:bug_escape_unattributed_share:ratio
                > on(%(t)s, product) product:bug_escape_unattributed_limit:ratio
              and on(%(t)s, product)
              (
                product:bug_escape_defects_with_unattributed:count
                  >= on(%(t)s, product) group_left() bug_escape_min_defects
              )
            ||| % { t: t } + productGate,
            'info',
            'quality',
            {
              summary: '{{ $value | humanizePercentage }} of the defects of {{ $labels.product }} have no release and are left out of its escape rate.',
              description: |||
                %s
                of the %s
                defects of {{ $labels.product }} ({{ $value | humanizePercentage }}) carry no release, above the level of
                %s.
                They are stored but count in no rate.
              ||| % [
                q('bug_escape_unattributed_defects', ['product'], wrap='sum(%s)', format=''),
                q('product:bug_escape_defects_with_unattributed:count', ['product'], format=''),
                q('product:bug_escape_unattributed_limit:ratio', ['product']),
              ],
            },
            comment=|||
              Data quality: the rates can only be as good as the classification.
              Defects with no release are left out of every rate. Adapters attribute
              some of them later (Sentry: first error event or issue API), hence the
              long `for`.
            |||,
          ),

          alert(
            'BugEscapeDefectVolumeDrop',
            |||
              product_release_age:bug_escape_release_defects_at_age_newest:count
                < on(%(t)s, product, age) group_left()
              product_age:bug_escape_release_defects_at_age_drop_limit:count
              and on(%(t)s, product, age)
              (
                product_age:bug_escape_release_defects_at_age_previous:count
                  >= on(%(t)s, product) group_left() bug_escape_volume_min_predecessors
              )
              unless on(%(t)s, product, release, age)
              %(monitoringDropped)s
            ||| % { t: t, monitoringDropped: std.rstripChars(monitoringDropped, '\n') } + productGate,
            'warning',
            'quality',
            {
              summary: '{{ $labels.product }} {{ $labels.release }} logged far fewer defects by {{ $labels.age }} than the releases before it: {{ $value }}.',
              description: |||
                {{ $labels.age }} after it shipped, {{ $labels.product }} {{ $labels.release }} had {{ $value }} defects,
                against a median of %s
                for the %s releases before it at the same age
                (a drop is below %s
                of it), while the production defects found by monitoring did not fall as far (in a quiet release they
                would). Its escape rate looks better than it is if defects stopped being logged.
              ||| % [
                q('product_age:bug_escape_release_defects_at_age_previous:median', ['product', 'age'], format=''),
                q('product_age:bug_escape_release_defects_at_age_previous:count', ['product', 'age'], format=''),
                q('bug_escape_volume_drop_threshold_ratio', ['product']),
              ],
            },
            { owner: c.dataQualityOwner },
            comment=|||
              Under-reporting (data quality): the common way to "improve" the rate
              without improving quality is to stop logging minor defects. The
              newest release that has reached an age logged far fewer defects by
              then than the median of the releases before it at that age (below
              the product's fraction, bug_escape_volume_drop_threshold_ratio, and
              beyond chance), with at least bug_escape_volume_min_predecessors
              earlier releases to compare with. A release whose monitoring-detected
              escapes fell as far is a quiet release, not an under-reported one:
              no alert. Routed to the quality leads (never to a person).
            |||,
          ),

          alert(
            'BugEscapeUserReportsDrop',
            |||
              product_release_age_detected_by:bug_escape_escaped_defects_at_age_newest:count{detected_by="user"}
                < on(%(t)s, product, age, detected_by) group_left()
              product_age_detected_by:bug_escape_escaped_defects_at_age_drop_limit:count
              and on(%(t)s, product, age)
              (
                product_age:bug_escape_release_defects_at_age_previous:count
                  >= on(%(t)s, product) group_left() bug_escape_volume_min_predecessors
              )
              and on(%(t)s, product, age)
                product_age_detected_by:bug_escape_escaped_defects_at_age_previous:median{detected_by="monitoring"} > 0
              unless on(%(t)s, product, release, age)
              %(monitoringDropped)s
            ||| % { t: t, monitoringDropped: std.rstripChars(monitoringDropped, '\n') } + productGate,
            'warning',
            'quality',
            {
              summary: 'Users reported far fewer production defects of {{ $labels.product }} {{ $labels.release }} by {{ $labels.age }} than before, while monitoring found as many.',
              description: |||
                {{ $labels.age }} after it shipped, users had reported {{ $value }} production defects of {{ $labels.product }} {{ $labels.release }},
                against a median of %s
                for the releases before it at the same age, while monitoring found
                %s
                (median %s).
                Monitoring is the witness nobody chooses to log: user reports that stop while it holds are usually reports not filed.
              ||| % [
                q('product_age_detected_by:bug_escape_escaped_defects_at_age_previous:median', ['product', 'age'], ['detected_by="user"'], format=''),
                q('product_release_age_detected_by:bug_escape_escaped_defects_at_age_newest:count', ['product', 'release', 'age'], ['detected_by="monitoring"'], format=''),
                q('product_age_detected_by:bug_escape_escaped_defects_at_age_previous:median', ['product', 'age'], ['detected_by="monitoring"'], format=''),
              ],
            },
            { owner: c.dataQualityOwner },
            comment=|||
              Under-reporting of production defects: the newest release's
              user-reported escapes at an age fell far below the median of the
              releases before it (same line as BugEscapeDefectVolumeDrop) while
              the monitoring-detected ones held. Needs monitoring to have found
              something before (median > 0): without the witness, a fall in user
              reports cannot be told from a quiet release.
            |||,
          ),

          alert(
            'BugEscapeUnknownCause',
            |||
              product:bug_escape_unknown_cause_share:ratio
                > on(%(t)s, product) group_left() product:bug_escape_unknown_cause_limit:ratio
              and on(%(t)s, product)
              (
                product:bug_escape_escaped_defects:sum
                  >= on(%(t)s, product) group_left() bug_escape_min_defects
              )
            ||| % { t: t } + productGate,
            'info',
            'quality',
            {
              summary: '{{ $value | humanizePercentage }} of the escaped defects of {{ $labels.product }} have no cause.',
              description: |||
                %s
                of the %s
                production defects of {{ $labels.product }} ({{ $value | humanizePercentage }}) have cause "unknown"
                (owner: {{ or $labels.owner "none configured" }}), above the level of
                %s.
              ||| % [
                q('bug_escape_escaped_defects_by_cause', ['product'], ['cause="unknown"'], wrap='sum(%s)', format=''),
                q('product:bug_escape_escaped_defects:sum', ['product'], format=''),
                q('product:bug_escape_unknown_cause_limit:ratio', ['product']),
              ],
            },
            comment=|||
              Production defects with cause "unknown" say nothing about which part
              of the net failed. Routed to the owner of cause "unknown" (triage).
            |||,
          ),
        ],
      },

      {
        name: 'bug-escape.operational',
        rules: [
          alert(
            'BugEscapeExporterDown',
            'up{%s} == 0' % c.bugEscapeSelector,
            'critical',
            'operational',
            {
              summary: 'bug-escape-exporter {{ $labels.instance }} is down.',
              description: |||
                Prometheus has failed to scrape {{ $labels.instance }} (job {{ $labels.job }}) for %s.
                Webhook deliveries to it are failing; GitHub never redelivers a failed webhook.
              ||| % u.duration(c.alertFor.BugEscapeExporterDown),
            },
            comment='The scrape targets are selected by _config.bugEscapeSelector.',
          ),

          alert(
            'BugEscapeExporterAbsent',
            'absent(up{%s})' % c.bugEscapeSelector,
            'critical',
            'operational',
            {
              summary: 'No bug-escape-exporter is being scraped.',
              description: |||
                Prometheus has no target of job {{ $labels.job }} for %s: the scrape configuration or
                service discovery lost the exporter, so every bug escape alert is blind.
              ||| % u.duration(c.alertFor.BugEscapeExporterAbsent),
            },
          ),

          alert(
            'BugEscapeWebhookAuthRejected',
            |||
              sum by (%(t)s, source) (
                increase(bug_escape_events_rejected_total{reason="auth"}[%(rejected)s])
              ) > 0
              unless on(%(t)s, source)
              sum by (%(t)s, source) (
                increase(bug_escape_events_received_total[%(accepted)s])
              ) > 0
            ||| % ({ t: t } + c.webhookAuthWindow),
            'warning',
            'operational',
            {
              summary: 'bug-escape-exporter {{ $labels.instance }} rejects {{ $labels.source }} deliveries for bad credentials.',
              description: |||
                {{ $value | humanize }} {{ $labels.source }} requests were rejected for authentication on {{ $labels.instance }}
                in %s, rejections have gone on for at least %s,
                and no {{ $labels.source }} delivery has been accepted in %s: the secret or token
                the source signs with is probably wrong or was rotated. Defects from that source are being lost.
              ||| % [
                u.last(c.webhookAuthWindow.rejected),
                u.duration(c.alertFor.BugEscapeWebhookAuthRejected),
                u.last(c.webhookAuthWindow.accepted),
              ],
            },
            comment=|||
              A wrong or rotated secret rejects every delivery of a source: requests
              rejected for authentication while none of the source's deliveries is
              accepted (bug_escape_events_received_total counts the signed, parsed
              ones). A 401 alone proves nothing: anyone can send one, so unsigned
              traffic while the source's real deliveries get through raises nothing,
              and the alert is a warning, not a page (docs/runbook.md).
            |||,
          ),

          alert(
            'BugEscapeSourceQuiet',
            |||
              (time() - bug_escape_last_event_timestamp_seconds > %d * 86400)
              and bug_escape_last_event_timestamp_seconds > 0
            ||| % c.sourceQuietDays,
            'critical',
            'operational',
            {
              summary: 'No {{ $labels.source }} event has reached bug-escape-exporter for {{ $value | humanizeDuration }}.',
              description: |||
                The last {{ $labels.source }} event reached {{ $labels.instance }} {{ $value | humanizeDuration }} ago.
                A source that used to send has gone quiet: its webhook may be disabled (GitLab disables failing hooks),
                deleted, or pointing elsewhere.
              |||,
            },
            comment=|||
              Only sources that have sent at least once (timestamp > 0). Three days
              by default (_config.sourceQuietDays), so that a quiet weekend does not
              page; lower it for busy sources.
            |||,
          ),

          alert(
            'BugEscapeStoreErrors',
            |||
              sum by (%(t)s, operation) (
                increase(bug_escape_store_errors_total[%(w)s])
              ) > 0
            ||| % { t: t, w: c.storeErrorsWindow },
            'critical',
            'operational',
            {
              summary: 'bug-escape-exporter {{ $labels.instance }} fails to {{ $labels.operation }} its store.',
              description: |||
                {{ $value | humanize }} store errors (operation {{ $labels.operation }}) on {{ $labels.instance }} in %s,
                going on for at least %s. Writes are refused with 503 until the store recovers.
              ||| % [u.last(c.storeErrorsWindow), u.duration(c.alertFor.BugEscapeStoreErrors)],
            },
            comment=|||
              The store refuses writes: the write API answers 503 and sources that
              do not retry lose events.
            |||,
          ),

          alert(
            'BugEscapeStoreNotWritable',
            'bug_escape_store_writable == 0',
            'critical',
            'operational',
            {
              summary: 'bug-escape-exporter {{ $labels.instance }} cannot write to its store.',
              description: |||
                /readyz on {{ $labels.instance }} has said for at least %s that the store does not take a write
                (full disk, I/O error, or a writer that keeps restarting). Every write is refused with 503.
              ||| % u.duration(c.alertFor.BugEscapeStoreNotWritable),
            },
          ),

          alert(
            'BugEscapeSyncFailing',
            |||
              (time() - bug_escape_sync_last_success_timestamp_seconds > %(age)d)
              or
              (
                (time() - process_start_time_seconds)
                  > on (%(t)s) group_right ()
                %(n)d * (
                  (bug_escape_sync_interval_seconds > 0)
                    unless on (%(t)s, source) bug_escape_sync_last_success_timestamp_seconds
                )
              )
              or
              (
                (time() - bug_escape_sync_last_success_timestamp_seconds)
                  and on (%(t)s, source)
                (
                  bug_escape_sync_last_failure_timestamp_seconds
                    > on (%(t)s, source) bug_escape_sync_last_success_timestamp_seconds
                )
              )
              or
              (
                (time() - process_start_time_seconds)
                  + on (%(t)s) group_right ()
                0 * (
                  bug_escape_sync_last_failure_timestamp_seconds
                    unless on (%(t)s, source) bug_escape_sync_last_success_timestamp_seconds
                )
              )
            ||| % { age: c.sync.failingIntervals * u.seconds(c.sync.interval), n: c.sync.failingIntervals, t: t },
            'warning',
            'operational',
            {
              summary: 'bug-escape-exporter {{ $labels.instance }} has not synced {{ $labels.source }} for {{ $value | humanizeDuration }}.',
              description: |||
                The last successful sync pass of {{ $labels.source }} on {{ $labels.instance }} ended {{ $value | humanizeDuration }} ago
                (or none has completed since the exporter started that long ago): more than %d sync intervals (%s), or the latest
                pass the exporter ran since has failed. Deliveries the webhooks miss are not being recovered until a pass succeeds
                again: the vendor's API token, rate limit or reachability is the usual cause; the exporter's log names the failing call.
              ||| % [c.sync.failingIntervals, u.duration(c.sync.interval)],
            },
            comment=|||
              Sync, the reconcile pass over a vendor's API, is the safety net for
              webhook deliveries that never arrive (GitHub never redelivers; GitLab
              disables failing hooks). Fires when its last success is older than
              _config.sync.failingIntervals times _config.sync.interval (keep it
              equal to the exporter's sync interval); when a source serve
              reconciles (bug_escape_sync_interval_seconds > 0) has never completed
              a pass once the exporter has run for failingIntervals of its own
              interval; and when the latest pass serve ran failed or panicked
              (bug_escape_sync_last_failure_timestamp_seconds after the last
              success, or with none), whatever the interval. The value is the age
              of the last success, or the uptime when there is none. Not a page:
              webhooks still deliver.
            |||,
          ),

          alert(
            'BugEscapeSyncMissedDeliveries',
            |||
              sum by (%(t)s, source) (
                increase(bug_escape_sync_differences_total[%(window)s])
              ) > %(threshold)s
            ||| % { t: t, window: c.syncDifferences.window, threshold: u.number(c.syncDifferences.threshold) },
            'warning',
            'operational',
            {
              summary: 'Sync found {{ $value | humanize }} {{ $labels.source }} items the webhooks missed on bug-escape-exporter {{ $labels.instance }}.',
              description: |||
                In %s, sync passes of {{ $labels.source }} on {{ $labels.instance }} found {{ $value | humanize }} items whose stored state
                was behind the vendor's (above %s): webhook deliveries are being lost. Sync repaired them;
                find out why the deliveries fail before it is the only path left.
              ||| % [u.last(c.syncDifferences.window), u.number(c.syncDifferences.threshold)],
            },
            comment=|||
              Webhooks miss deliveries that sync finds: items a sync pass found
              behind the vendor's state (bug_escape_sync_differences_total) within
              _config.syncDifferences.window, above a small threshold (a missed
              delivery now and then is what sync is for). Operational, to whoever
              runs the exporter; not a page: sync has already repaired the counts.
            |||,
          ),

          alert(
            'BugEscapeProductsLeftOut',
            'bug_escape_products_left_out > 0',
            'warning',
            'operational',
            {
              summary: 'bug-escape-exporter {{ $labels.instance }} leaves {{ $value }} products out of /metrics.',
              description: |||
                {{ $value }} products exceed max_products on {{ $labels.instance }} and have no series, so no dashboard
                or alert sees them. Raise max_products or pin the products that matter with the allowlist.
              |||,
            },
            comment='Not a page: more products than max_products, so some are not exported.',
          ),
        ],
      },
    ],
  },
}
