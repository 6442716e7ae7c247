// The Exporter health dashboard (uid bug-escape-health): up, build, events
// by source and outcome, quiet sources, store errors, what is left out,
// scrape cost, sync.
local g = import 'lib.libsonnet';
local u = import '../lib/util.libsonnet';

function(c)
  local J = 'job="$job", instance=~"$instance"';
  local panel = g.panel;
  local targets = g.targets;
  local rate(metric, by) = 'sum by (%s) (rate(%s{%s}[$__rate_interval]))' % [by, metric, J];

  local panels = g.layout([
    g.row('Exporter'),
    [
      panel(
        'stat', 'Up',
        'Is Prometheus scraping the exporter? up per instance (BugEscapeExporterDown '
        + 'pages after 5 minutes at 0).',
        [0, 6, 5],
        targets([['up{%s}' % J, '{{instance}}']]),
        steps=[{ color: 'red', value: null }, { color: 'green', value: 1 }],
        mappings=[{
          type: 'value',
          options: { '0': { text: 'DOWN', index: 0 }, '1': { text: 'UP', index: 1 } },
        }],
        options=g.statOptions('value_and_name')
      ),
      panel(
        'table', 'Build',
        'Which version and revision is running on each instance?',
        [6, 9, 5],
        targets([['bug_escape_build_info{%s}' % J, '{{version}}']], instant=true, format='table'),
        transformations=[{
          id: 'organize',
          options: {
            excludeByName: { Time: true, Value: true, __name__: true, job: true },
            indexByName: { instance: 0, version: 1, revision: 2 },
          },
        }],
        options=g.tableOptions
      ),
      panel(
        'stat', 'Exported',
        'How much does the exporter export, and does it leave products out? Products '
        + 'beyond max_products have no series at all (BugEscapeProductsLeftOut).',
        [15, 9, 5],
        targets([
          ['count(bug_escape_min_defects{%s})' % J, 'products'],
          ['count(bug_escape_release_defects{%s})' % J, 'releases'],
          ['sum(bug_escape_products_left_out{%s})' % J, 'products left out'],
        ]),
        options=g.statOptions('value_and_name', 'none'), decimals=0
      ),
    ],

    g.row('Ingestion'),
    [
      panel(
        'timeseries', 'Events received by source',
        'Are events arriving from every source? Events per second accepted for '
        + 'processing, by source (generic API and webhooks).',
        [0, 12, 8],
        targets([[rate('bug_escape_events_received_total', 'source'), '{{source}}']]),
        unit='ops', custom=g.lineCustom(10), options=g.timeseriesOptions, min=0
      ),
      panel(
        'timeseries', 'Events ignored by source and reason',
        'Which events were received but not applied, and why (not a defect, stale '
        + 'update, duplicate delivery, ping, ...)? A webhook stage the configuration does '
        + 'not know is not ignored: the defect is stored and counted in '
        + 'bug_escape_events_unmapped_total{field="stage"} and '
        + 'bug_escape_unclassified_defects{reason="unknown_stage"}.',
        [12, 12, 8],
        targets([[rate('bug_escape_events_ignored_total', 'source, reason'), '{{source}} {{reason}}']]),
        unit='ops', custom=g.lineCustom(10), options=g.timeseriesOptions, min=0
      ),
    ],
    [
      panel(
        'timeseries', 'Requests rejected by source and reason',
        'Which requests are refused, and why (auth, malformed, invalid field, future '
        + 'timestamp, too large, ...)? auth rejections from a webhook usually mean a '
        + 'rotated or wrong secret (BugEscapeWebhookAuthRejected).',
        [0, 12, 8],
        targets([[rate('bug_escape_events_rejected_total', 'source, reason'), '{{source}} {{reason}}']]),
        unit='reqps', custom=g.lineCustom(10), options=g.timeseriesOptions, min=0
      ),
      panel(
        'bargauge', 'Time since the last event, by source',
        'Has a source gone quiet? Time since the last event stored from each source '
        + 'that has ever sent one; BugEscapeSourceQuiet pages after 3 days.',
        [12, 12, 8],
        targets([[
          '(time() - bug_escape_last_event_timestamp_seconds{%s}) and bug_escape_last_event_timestamp_seconds{%s} > 0' % [J, J],
          '{{source}}',
        ]], instant=true),
        unit='s', decimals=0, min=0,
        steps=[
          { color: 'green', value: null },
          { color: 'orange', value: 86400 },
          { color: 'red', value: 259200 },
        ],
        options=g.bargaugeOptions
      ),
    ],
    [
      panel(
        'bargauge', 'Records folded into link groups, by product',
        'How much did counting once remove? Records joined by links (a Sentry issue '
        + 'and the ticket made from it) count as one defect; this is how many records '
        + 'are folded into such groups. GET /api/v1/defects/{source}/{id} shows a '
        + "record's group; GET /api/v1/releases/{product}/{release}/escapes lists a "
        + "release's escapes with the records of each group.",
        [0, 12, 6],
        targets([['bug_escape_linked_records{%s}' % J, '{{product}}']], instant=true),
        steps=[{ color: 'blue', value: null }], options=g.bargaugeOptions, decimals=0
      ),
      panel(
        'timeseries', 'Links refused by source',
        'Are links being refused? A link that would make its group larger than 64 '
        + 'records is not stored (one description full of links, or a group grown to the '
        + 'cap): those records stay counted apart. Links per second refused, by the source '
        + 'that sent them (bug_escape_links_refused_total; see the runbook).',
        [12, 12, 6],
        targets([[rate('bug_escape_links_refused_total', 'source'), '{{source}}']]),
        unit='ops', custom=g.lineCustom(10), options=g.timeseriesOptions, min=0
      ),
    ],

    g.row('Store and scrape'),
    [
      panel(
        'timeseries', 'Store errors by operation',
        'Is the SQLite store failing? Errors per second by operation; while it fails, '
        + 'writes answer 503 (BugEscapeStoreErrors).',
        [0, 8, 8],
        targets([[rate('bug_escape_store_errors_total', 'operation'), '{{operation}}']]),
        unit='ops', custom=g.lineCustom(10), options=g.timeseriesOptions, min=0
      ),
      panel(
        'bargauge', 'Releases left out, by product',
        'Which products have more releases with defects than max_releases? Their oldest '
        + 'releases are stored but not exported.',
        [8, 8, 8],
        targets([['bug_escape_releases_left_out{%s}' % J, '{{product}}']], instant=true),
        steps=[{ color: 'blue', value: null }], options=g.bargaugeOptions, decimals=0
      ),
      panel(
        'timeseries', 'Scrape duration and samples',
        "Is /metrics getting expensive? A scrape's cost grows with the series exported "
        + '(products x releases x stages), not with the defects stored.',
        [16, 8, 8],
        targets([
          ['scrape_duration_seconds{%s}' % J, 'duration {{instance}}'],
          ['scrape_samples_scraped{%s}' % J, 'samples {{instance}}'],
        ]),
        unit='s', custom=g.lineCustom(), options=g.timeseriesOptions, min=0,
        overrides=[g.overrideByRegex('samples.*', [
          { id: 'unit', value: 'short' },
          { id: 'custom.axisPlacement', value: 'right' },
        ])]
      ),
    ],
    [
      panel(
        'stat', 'Store writable',
        'Does the store take a write now? What /readyz reports: 0 after a failed '
        + 'transaction or disk probe (full disk, I/O error) or while the writer restarts '
        + '(BugEscapeStoreNotWritable pages after 5 minutes at 0).',
        [0, 6, 6],
        targets([['bug_escape_store_writable{%s}' % J, '{{instance}}']]),
        steps=[{ color: 'red', value: null }, { color: 'green', value: 1 }],
        mappings=[{
          type: 'value',
          options: { '0': { text: 'NOT WRITABLE', index: 0 }, '1': { text: 'WRITABLE', index: 1 } },
        }],
        options=g.statOptions('value_and_name')
      ),
      panel(
        'timeseries', 'Write queue',
        'How full is the write queue? Request bytes admitted and not yet answered, '
        + 'against write_queue_bytes; at the bound, writes get 503 queue_full with '
        + 'Retry-After (see Requests rejected).',
        [6, 10, 6],
        targets([
          ['bug_escape_write_queue_bytes{%s}' % J, 'queued {{instance}}'],
          ['bug_escape_write_queue_capacity_bytes{%s}' % J, 'capacity {{instance}}'],
        ]),
        unit='bytes', custom=g.lineCustom(10), options=g.timeseriesOptions, min=0
      ),
      panel(
        'timeseries', 'Writer restarts and dropped log lines',
        'Did the store writer fail and restart (aggregates rebuilt from disk), and is '
        + 'the log sink failing (full disk, closed pipe)? Both should stay at 0.',
        [16, 8, 6],
        targets([
          ['sum by (instance) (increase(bug_escape_store_writer_restarts_total{%s}[$__rate_interval]))' % J, 'restarts {{instance}}'],
          ['sum by (instance) (increase(bug_escape_log_lines_dropped_total{%s}[$__rate_interval]))' % J, 'log lines dropped {{instance}}'],
        ]),
        unit='short', custom=g.lineCustom(10), options=g.timeseriesOptions, min=0
      ),
    ],

    g.row('Sync'),
    [
      panel(
        'bargauge', 'Time since the last successful sync, by source',
        'Is sync, the reconcile pass over the vendors\' APIs, still succeeding? Time since '
        + 'the last successful pass of each source that has synced; '
        + 'BugEscapeSyncFailing fires beyond %d sync intervals (%s).'
          % [c.sync.failingIntervals, u.duration(c.sync.interval)],
        [0, 8, 8],
        targets([[
          'time() - bug_escape_sync_last_success_timestamp_seconds{%s}' % J,
          '{{source}}',
        ]], instant=true),
        unit='s', decimals=0, min=0,
        steps=[
          { color: 'green', value: null },
          { color: 'orange', value: 2 * u.seconds(c.sync.interval) },
          { color: 'red', value: c.sync.failingIntervals * u.seconds(c.sync.interval) },
        ],
        options=g.bargaugeOptions
      ),
      panel(
        'timeseries', 'Sync items by result, per hour',
        'What do sync passes find? Items per hour by source and result: imported (new or '
        + 'changed), unchanged, stale (older than what is stored), rejected, deleted.',
        [8, 8, 8],
        targets([[
          'sum by (source, result) (increase(bug_escape_sync_items_total{%s}[1h]))' % J,
          '{{source}} {{result}}',
        ]]),
        unit='short', custom=g.lineCustom(10), options=g.timeseriesOptions, min=0
      ),
      panel(
        'timeseries', 'Deliveries the webhooks missed, found by sync, per hour',
        'Are webhook deliveries being lost? Items per hour whose stored state was behind '
        + "the vendor's when sync looked: the webhooks never brought that change "
        + '(BugEscapeSyncMissedDeliveries beyond %s in %s).'
          % [u.number(c.syncDifferences.threshold), u.last(c.syncDifferences.window)],
        [16, 8, 8],
        targets([[
          'sum by (source) (increase(bug_escape_sync_differences_total{%s}[1h]))' % J,
          '{{source}}',
        ]]),
        unit='short', custom=g.lineCustom(10), options=g.timeseriesOptions, min=0
      ),
    ],
    [
      panel(
        'timeseries', 'Sync passes that failed or panicked, by source',
        'Are reconcile passes failing, and is it the vendor (failure: an error answer, '
        + 'a refused URL, a deadline) or the exporter (panic: a bug, see the log)? Passes '
        + 'per interval by source and result, successes left out; the next pass runs '
        + 'either way (BugEscapeSyncFailing after %d sync intervals without success).'
          % [c.sync.failingIntervals],
        [0, 24, 8],
        targets([[
          'sum by (source, result) (increase(bug_escape_sync_passes_total{%s, result!="success"}[$__rate_interval]))' % J,
          '{{source}} {{result}}',
        ]]),
        unit='short', custom=g.lineCustom(10), options=g.timeseriesOptions, min=0
      ),
    ],
  ]);

  g.dashboard(
    c,
    'bug-escape-health',
    'Bug escape rate / Exporter health',
    'Is bug-escape-exporter up, receiving, storing and exporting? Events by source '
    + 'and outcome, quiet sources, store errors, what is left out, scrape cost.',
    panels,
    [
      g.datasourceVar,
      g.queryVar('job', 'Job', 'label_values(bug_escape_build_info, job)'),
      g.queryVar('instance', 'Instance', 'label_values(bug_escape_build_info{job="$job"}, instance)',
                 includeAll=true, allValue='.*', multi=true),
    ],
    timeFrom='now-24h',
    refresh='1m',
    links=[g.link('Overview', '/d/bug-escape-overview')],
  )
