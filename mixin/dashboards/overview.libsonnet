// The Overview dashboard (uid bug-escape-overview): escape rate, its
// confidence, trend at equal age, stage leaks, causes, data quality.
// Queries read the recording rules where one exists, so dashboards and
// alerts compute the same thing once.
local g = import 'lib.libsonnet';

function(c)
  local P = 'product="$product"';
  local PR = 'product="$product", release="$release"';
  local bandSteps = g.bandSteps(c);
  local bandNote = g.bandNote(c);
  local panel = g.panel;
  local targets = g.targets;

  local panels = g.layout([
    g.row('Escape rate of $product'),
    [
      panel(
        'stat', 'Recent escape rate (pooled)',
        "What share of the defects of $product's recent releases reached production? "
        + 'Pooled ΣP/ΣT over the newest releases (default 5): the steadier figure that the '
        + 'BugEscapeRecentRate* alerts watch.' + bandNote,
        [0, 6, 5],
        targets([['product:bug_escape_recent_rate:percent{%s}' % P, 'recent rate']]),
        unit='percent', steps=bandSteps, decimals=1, options=g.statOptions('value')
      ),
      panel(
        'stat', 'Recent band',
        "Which band is $product's pooled recent rate in, judged by the product's own "
        + 'configured band thresholds (bug_escape_band_threshold_ratio)?',
        [6, 4, 5],
        targets([['product:bug_escape_recent_band:index{%s}' % P, 'band']]),
        steps=[
          { color: 'dark-green', value: null },
          { color: 'green', value: 1 },
          { color: 'orange', value: 2 },
          { color: 'red', value: 3 },
        ],
        mappings=g.bandIndexMappings, options=g.statOptions('value')
      ),
      panel(
        'stat', 'Sample size',
        'Is the sample big enough to trust the rate? Defects pooled into the recent rate '
        + 'against the minimum sample (bug_escape_min_defects) that alerts require.',
        [10, 6, 5],
        targets([
          ['bug_escape_recent_defects{%s}' % P, 'pooled defects'],
          ['bug_escape_min_defects{%s}' % P, 'min_defects'],
        ]),
        options=g.statOptions('value_and_name', 'none')
      ),
      panel(
        'stat', 'Releases with a band alert',
        'How many releases of $product are firing BugEscapeReleaseAttention or '
        + 'BugEscapeReleaseLeaking right now?',
        [16, 8, 5],
        targets([
          ['count(ALERTS{alertname="BugEscapeReleaseLeaking", alertstate="firing", %s}) or vector(0)' % P, 'leaking'],
          ['count(ALERTS{alertname="BugEscapeReleaseAttention", alertstate="firing", %s}) or vector(0)' % P, 'attention or worse'],
        ]),
        steps=[{ color: 'green', value: null }, { color: 'orange', value: 1 }],
        options=g.statOptions('value_and_name')
      ),
    ],
    [
      panel(
        'timeseries', 'Pooled recent rate, 95 % interval and band thresholds',
        "Is $product's recent rate moving across a band line, and is the move beyond "
        + 'doubt? The shaded area is the 95 % Wilson interval; alerts enter when its lower '
        + 'edge crosses a line and clear when the estimate falls back. Dashed lines are '
        + "the product's configured band thresholds (upper bounds of strong, healthy, "
        + 'attention).' + bandNote,
        [0, 12, 9],
        targets([
          ['product:bug_escape_recent_rate:percent{%s}' % P, 'recent rate'],
          ['product:bug_escape_recent_rate_lower:percent{%s}' % P, 'lower bound'],
          ['product:bug_escape_recent_rate_upper:percent{%s}' % P, 'upper bound'],
          ['product_band:bug_escape_band_threshold:percent{%s}' % P, '{{band}} upper bound'],
        ]),
        unit='percent', custom=g.lineCustom(), options=g.timeseriesOptions, min=0,
        overrides=g.intervalOverrides
      ),
      panel(
        'bargauge', 'Escape rate by release',
        'Which releases of $product let the most defects through? E(R) = P(R)/T(R) per '
        + 'exported release. The newest releases always look best (production defects keep '
        + 'arriving for weeks): compare releases at equal age below.' + bandNote,
        [12, 12, 9],
        targets([['product_release:bug_escape_rate:percent{%s}' % P, '{{release}}']], instant=true),
        unit='percent', steps=bandSteps, decimals=1, min=0, max=100,
        options=g.bargaugeOptions
      ),
    ],
    panel(
      'table', 'Releases: rate, interval, sample, band',
      "How confident is each release's rate? Escape rate with its 95 % Wilson "
      + "interval, T (all defects), P (escaped) and the band by the product's own "
      + 'thresholds. Releases with T below min_defects raise no band alert.',
      [0, 24, 8],
      targets([
        ['product_release:bug_escape_rate:percent{%s}' % P, 'rate'],
        ['product_release:bug_escape_rate_lower:percent{%s}' % P, 'lower'],
        ['product_release:bug_escape_rate_upper:percent{%s}' % P, 'upper'],
        ['bug_escape_release_defects{%s}' % P, 'T'],
        ['bug_escape_release_escaped_defects{%s}' % P, 'P'],
        ['product_release:bug_escape_band:index{%s}' % P, 'band'],
      ], instant=true, format='table'),
      transformations=[
        { id: 'merge', options: {} },
        {
          id: 'organize',
          options: {
            excludeByName: { Time: true, job: true, instance: true, product: true },
            indexByName: {
              release: 0,
              'Value #A': 1,
              'Value #B': 2,
              'Value #C': 3,
              'Value #D': 4,
              'Value #E': 5,
              'Value #F': 6,
            },
            renameByName: {
              'Value #A': 'escape rate',
              'Value #B': 'lower 95 %',
              'Value #C': 'upper 95 %',
              'Value #D': 'T (defects)',
              'Value #E': 'P (escaped)',
              'Value #F': 'band',
            },
          },
        },
        { id: 'sortBy', options: { sort: [{ field: 'release', desc: true }] } },
      ],
      overrides=[
        {
          matcher: { id: 'byRegexp', options: 'escape rate|lower 95 %|upper 95 %' },
          properties: [
            { id: 'unit', value: 'percent' },
            { id: 'decimals', value: 1 },
            { id: 'thresholds', value: g.thresholds(bandSteps) },
            { id: 'custom.cellOptions', value: { type: 'color-text' } },
          ],
        },
        {
          matcher: { id: 'byName', options: 'band' },
          properties: [
            { id: 'mappings', value: g.bandIndexMappings },
            { id: 'custom.cellOptions', value: { type: 'color-background' } },
          ],
        },
      ],
      options=g.tableOptions
    ),
    panel(
      'timeseries', 'Release $release: escape rate and 95 % interval',
      'How has the rate of release $release moved as its defects arrived? Estimate, '
      + "Wilson interval (shaded) and the product's band thresholds (dashed)." + bandNote,
      [0, 24, 8],
      targets([
        ['product_release:bug_escape_rate:percent{%s}' % PR, 'escape rate'],
        ['product_release:bug_escape_rate_lower:percent{%s}' % PR, 'lower bound'],
        ['product_release:bug_escape_rate_upper:percent{%s}' % PR, 'upper bound'],
        ['product_band:bug_escape_band_threshold:percent{%s}' % P, '{{band}} upper bound'],
      ]),
      unit='percent', custom=g.lineCustom(), options=g.timeseriesOptions, min=0,
      overrides=g.intervalOverrides
    ),

    g.row('Trend at equal age'),
    [
      panel(
        'bargauge', 'Escape rate at equal age, by release',
        "Is $product getting better or worse? Each release's escape rate counting only "
        + 'the defects found within the same age after its release time (label age, '
        + 'default 30d), so young releases are not flattered. Only releases with a known '
        + 'release time that are at least that old appear.' + bandNote,
        [0, 12, 9],
        targets([['product_release_age:bug_escape_rate_at_age:percent{%s}' % P, '{{release}} at {{age}}']], instant=true),
        unit='percent', steps=bandSteps, decimals=1, min=0, max=100,
        options=g.bargaugeOptions
      ),
      panel(
        'stat', 'Newest release vs earlier ones, at equal age',
        'Is the newest release that has reached the age worse than the releases before it '
        + 'at the same age? BugEscapeTrendWorsening fires when it sits in a worse band than '
        + 'their average (with enough defects).' + bandNote,
        [12, 12, 9],
        targets([
          ['100 * product_release_age:bug_escape_rate_at_age_newest:ratio{%s}' % P, 'newest: {{release}} at {{age}}'],
          ['100 * product_age:bug_escape_rate_at_age_previous:avg_ratio{%s}' % P, 'earlier releases, mean at {{age}}'],
        ]),
        unit='percent', steps=bandSteps, decimals=1, options=g.statOptions('value_and_name')
      ),
    ],

    g.row('Where the net leaks: release $release'),
    [
      panel(
        'barchart', 'Stage funnel: defects found at each stage',
        'Where in the pipeline were the defects of $product $release found? Valid '
        + 'defects per stage, in pipeline order (bug_escape_stage_info order); the last '
        + 'bars are production, i.e. escapes.',
        [0, 8, 9],
        targets([[
          'bug_escape_defects{%s} * on(stage) group_left(order, phase) max by (stage, order, phase) (bug_escape_stage_info)' % PR,
          '{{stage}}',
        ]], instant=true, format='table'),
        transformations=[
          {
            id: 'convertFieldType',
            options: { conversions: [{ targetField: 'order', destinationType: 'number' }] },
          },
          { id: 'sortBy', options: { sort: [{ field: 'order', desc: false }] } },
          {
            id: 'organize',
            options: {
              excludeByName: {
                Time: true,
                job: true,
                instance: true,
                product: true,
                release: true,
                order: true,
                phase: true,
              },
              renameByName: { Value: 'defects' },
            },
          },
        ],
        options={
          xField: 'stage',
          orientation: 'horizontal',
          showValue: 'always',
          legend: { showLegend: false, displayMode: 'list', placement: 'bottom' },
          tooltip: { mode: 'single', sort: 'none' },
          barWidth: 0.8,
          groupWidth: 0.7,
          stacking: 'none',
          xTickLabelRotation: 0,
        },
        custom={ fillOpacity: 80, lineWidth: 1, gradientMode: 'none' },
        color={ mode: 'fixed', fixedColor: 'blue' }
      ),
      panel(
        'bargauge', 'Stage leak factors',
        'Which stage of the quality net let the most through? L_k = of the defects that '
        + 'reached stage k, the share it did not catch; the product of the factors is the '
        + "escape rate. Labelled with the stage's owner (bug_escape_stage_owner_info).",
        [8, 8, 9],
        targets([['product_release_stage:bug_escape_stage_leak:ratio{%s}' % PR, '{{stage}} ({{owner}})']], instant=true),
        unit='percentunit', decimals=0, min=0, max=1,
        steps=[{ color: 'blue', value: null }], options=g.bargaugeOptions
      ),
      panel(
        'bargauge', 'Stage leak vs its target',
        'Is a stage leaking more than its owner aims for? Leak factor divided by the '
        + "stage's configured leak target (bug_escape_stage_leak_target_ratio): above 1 "
        + '(red) the stage misses its target, and BugEscapeStageLeakAboveTarget goes to '
        + 'the owner named here once the sample is big enough. Stages without a target '
        + 'are not shown.',
        [16, 8, 9],
        targets([['product_release_stage:bug_escape_stage_leak_over_target:ratio{%s}' % PR, '{{stage}} ({{owner}})']], instant=true),
        unit='none', decimals=2, min=0, max=2,
        steps=[{ color: 'green', value: null }, { color: 'red', value: 1.000001 }],
        options=g.bargaugeOptions
      ),
    ],
    panel(
      'table', 'Stage leaks: sample and confidence',
      "Is a stage's leak figure trustworthy? For each tracked pre-release stage of "
      + '$release: the defects that reached it (its sample), its leak factor and the '
      + 'lower bound of the 95 % Wilson interval, which the stage alert must see above '
      + 'the target before it fires.',
      [0, 24, 7],
      targets([
        ['product_release_stage:bug_escape_stage_reached_defects:count{%s}' % PR, 'reached'],
        ['bug_escape_stage_leak_ratio{%s}' % PR, 'leak'],
        ['product_release_stage:bug_escape_stage_leak_lower:ratio{%s}' % PR, 'lower'],
      ], instant=true, format='table'),
      transformations=[
        { id: 'merge', options: {} },
        {
          id: 'organize',
          options: {
            excludeByName: {
              Time: true,
              job: true,
              instance: true,
              product: true,
              release: true,
              __name__: true,
            },
            indexByName: { stage: 0, 'Value #A': 1, 'Value #B': 2, 'Value #C': 3 },
            renameByName: {
              'Value #A': 'defects that reached it',
              'Value #B': 'leak',
              'Value #C': 'leak, lower 95 %',
            },
          },
        },
      ],
      overrides=[
        {
          matcher: { id: 'byRegexp', options: 'leak.*' },
          properties: [{ id: 'unit', value: 'percentunit' }, { id: 'decimals', value: 1 }],
        },
      ],
      options=g.tableOptions
    ),

    g.row('Escaped defects'),
    [
      panel(
        'piechart', 'Escaped defects of $release by cause',
        "Which branch of the quality net let $release's production defects through "
        + '(coverage, review, requirements, release, unknown)? Each cause has an owner, '
        + 'who gets BugEscapeCauseConcentrated when one cause dominates.',
        [0, 8, 9],
        targets([['bug_escape_escaped_defects_by_cause{%s} > 0' % PR, '{{cause}}']], instant=true),
        options={
          reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
          pieType: 'donut',
          displayLabels: ['name', 'value'],
          legend: { showLegend: true, displayMode: 'table', placement: 'right', values: ['value', 'percent'] },
          tooltip: { mode: 'single', sort: 'none' },
        }
      ),
      panel(
        'bargauge', 'Escaped defects of $release by detector',
        "Who found $release's escapes: users, monitoring or someone else? Escapes "
        + 'found by users are the ones customers felt.',
        [8, 8, 9],
        targets([['bug_escape_escaped_defects_by_detector{%s}' % PR, '{{detected_by}}']], instant=true),
        steps=[{ color: 'purple', value: null }], options=g.bargaugeOptions, decimals=0
      ),
      panel(
        'bargauge', 'Escaped defects of $release by severity',
        "How bad were $release's escapes? Production defects by configured severity.",
        [16, 8, 9],
        targets([['bug_escape_escaped_defects_by_severity{%s}' % PR, '{{severity}}']], instant=true),
        steps=[{ color: 'purple', value: null }], options=g.bargaugeOptions, decimals=0
      ),
    ],
    [
      panel(
        'bargauge', 'Escaped defects by cause, all exported releases',
        'Across the exported releases of $product, which cause lets most defects '
        + 'escape? Production defects summed by cause.',
        [0, 12, 8],
        targets([['sum by (cause) (bug_escape_escaped_defects_by_cause{%s})' % P, '{{cause}}']], instant=true),
        steps=[{ color: 'purple', value: null }], options=g.bargaugeOptions, decimals=0
      ),
      panel(
        'table', 'Share of each cause per release, with owner',
        'Is one cause concentrated in a release, and who owns it? Share of the '
        + "release's production defects per cause (releases with escapes only).",
        [12, 12, 8],
        targets([['product_release_cause:bug_escape_escaped_cause_share:ratio{%s}' % P, '{{cause}}']], instant=true, format='table'),
        transformations=[
          {
            id: 'organize',
            options: {
              excludeByName: { Time: true, job: true, instance: true, product: true, __name__: true },
              indexByName: { release: 0, cause: 1, owner: 2, Value: 3 },
              renameByName: { Value: 'share of escapes' },
            },
          },
          { id: 'sortBy', options: { sort: [{ field: 'share of escapes', desc: true }] } },
        ],
        overrides=[
          {
            matcher: { id: 'byName', options: 'share of escapes' },
            properties: [
              { id: 'unit', value: 'percentunit' },
              { id: 'decimals', value: 0 },
              { id: 'custom.cellOptions', value: { type: 'gauge', mode: 'basic' } },
              { id: 'min', value: 0 },
              { id: 'max', value: 1 },
            ],
          },
        ],
        options=g.tableOptions
      ),
    ],

    g.row('Data quality'),
    [
      panel(
        'stat', 'Defects without a release',
        "How many of $product's defects count in no rate because they carry no release "
        + '(unattributed)? Share of all its defects, against the alert level of '
        + 'BugEscapeUnattributedDefects.',
        [0, 6, 6],
        targets([
          ['product:bug_escape_unattributed_share:ratio{%s}' % P, 'unattributed'],
          ['product:bug_escape_unattributed_limit:ratio{%s}' % P, 'alert level'],
        ]),
        unit='percentunit', decimals=1, options=g.statOptions('value_and_name', 'none')
      ),
      panel(
        'bargauge', 'Unattributed defects by stage',
        'Where are the defects without a release found? Typically production (Sentry '
        + 'issues waiting for their first release).',
        [6, 6, 6],
        targets([['bug_escape_unattributed_defects{%s}' % P, '{{stage}}']], instant=true),
        steps=[{ color: 'orange', value: null }], options=g.bargaugeOptions, decimals=0
      ),
      panel(
        'stat', 'Escapes with cause "unknown"',
        "How many of $product's production defects are unclassified, so the cause "
        + 'breakdown cannot say which part of the net failed? Share with cause '
        + '"unknown" against the alert level of BugEscapeUnknownCause.',
        [12, 6, 6],
        targets([
          ['product:bug_escape_unknown_cause_share:ratio{%s}' % P, 'cause unknown'],
          ['product:bug_escape_unknown_cause_limit:ratio{%s}' % P, 'alert level'],
        ]),
        unit='percentunit', decimals=1, options=g.statOptions('value_and_name', 'none')
      ),
      panel(
        'stat', 'Left out of the counts',
        'What does the exporter hold back for $product? Defects with a missing or '
        + 'unconfigured stage (left out of every count), and releases with defects beyond '
        + 'max_releases (stored, not exported).',
        [18, 6, 6],
        targets([
          ['bug_escape_unclassified_defects{%s}' % P, 'defects: {{reason}}'],
          ['bug_escape_releases_left_out{%s}' % P, 'releases left out'],
        ]),
        options=g.statOptions('value_and_name', 'none'), decimals=0
      ),
    ],

    [
      panel(
        'bargauge', 'Defect volume at equal age, by release',
        "Did $product stop logging defects? Each release's valid defects (every stage) "
        + 'found within the same age after its release time (label age), 0 included. A '
        + 'release far below the ones before it at the same age either was quiet or '
        + 'stopped logging its minor defects (BugEscapeDefectVolumeDrop).',
        [0, 8, 8],
        targets([['bug_escape_release_defects_at_age{%s}' % P, '{{release}} at {{age}}']], instant=true),
        steps=[{ color: 'blue', value: null }], options=g.bargaugeOptions, decimals=0, min=0
      ),
      panel(
        'stat', 'Newest release vs the releases before it, defects at equal age',
        'Is the newest release that has reached the age far below the median of the '
        + 'releases before it at that age? Below the drop line (the product\'s '
        + 'fraction of the median, bug_escape_volume_drop_threshold_ratio, and beyond '
        + 'chance), with enough earlier releases (bug_escape_volume_min_predecessors) '
        + 'and monitoring not down as much, BugEscapeDefectVolumeDrop goes to the quality leads.',
        [8, 8, 8],
        targets([
          ['product_release_age:bug_escape_release_defects_at_age_newest:count{%s}' % P, 'newest: {{release}} at {{age}}'],
          ['product_age:bug_escape_release_defects_at_age_previous:median{%s}' % P, 'median before, at {{age}}'],
          ['product_age:bug_escape_release_defects_at_age_drop_limit:count{%s}' % P, 'drop line at {{age}}'],
          ['product_age:bug_escape_release_defects_at_age_previous:count{%s}' % P, 'releases before, at {{age}}'],
        ]),
        options=g.statOptions('value_and_name', 'none'), decimals=1
      ),
      panel(
        'stat', 'Escapes reported by users vs found by monitoring, at equal age',
        "Did users stop reporting while monitoring kept finding? The newest release's "
        + 'production defects by detector at the age, against the median of the releases '
        + 'before it. Users down with monitoring holding: BugEscapeUserReportsDrop; both '
        + 'down: a quiet release.',
        [16, 8, 8],
        targets([
          ['product_release_age_detected_by:bug_escape_escaped_defects_at_age_newest:count{%s}' % P, '{{detected_by}}: newest ({{release}} at {{age}})'],
          ['product_age_detected_by:bug_escape_escaped_defects_at_age_previous:median{%s}' % P, '{{detected_by}}: median before'],
        ]),
        options=g.statOptions('value_and_name', 'none'), decimals=1
      ),
    ],

    g.row('Alerts'),
    panel(
      'table', 'Firing bug escape alerts',
      'Which BugEscape* alerts are firing now, for which product, release, stage or '
      + 'cause, and who owns them?',
      [0, 24, 8],
      targets([['ALERTS{alertname=~"BugEscape.*", alertstate="firing"}', '{{alertname}}']], instant=true, format='table'),
      transformations=[
        {
          id: 'organize',
          options: {
            excludeByName: {
              Time: true,
              Value: true,
              __name__: true,
              alertstate: true,
              job: true,
              instance: true,
            },
            indexByName: { alertname: 0, severity: 1, product: 2, release: 3, stage: 4, cause: 5, owner: 6 },
          },
        },
      ],
      options=g.tableOptions
    ),
  ]);

  g.dashboard(
    c,
    'bug-escape-overview',
    'Bug escape rate / Overview',
    "Share of each release's defects that reached production, its confidence, "
    + 'trend at equal age, which stage and cause let them through, and data quality.',
    panels,
    [
      g.datasourceVar,
      g.queryVar('product', 'Product', 'label_values(bug_escape_release_defects, product)'),
      g.queryVar('release', 'Release', 'label_values(bug_escape_release_defects{product="$product"}, release)', sort=2),
    ],
    annotations=[{
      name: 'Releases',
      datasource: g.ds,
      enable: true,
      hide: false,
      iconColor: '#5794F2',
      expr: 'bug_escape_release_timestamp_seconds{%s} * 1000' % P,
      step: '1h',
      useValueForTime: true,
      titleFormat: '{{product}} {{release}} released',
      textFormat: '',
      tagKeys: 'product,release',
    }],
    timeFrom='now-90d',
    links=[g.link('Exporter health', '/d/bug-escape-health')],
  )
