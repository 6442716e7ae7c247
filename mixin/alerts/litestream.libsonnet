// The replication alert: Litestream (docs/operations.md) beside the exporter
// stops writing the database's WAL to its replica. Its own group, so the
// exporter's alerts are unchanged when Litestream is not used (no series, no
// alert).
local u = import '../lib/util.libsonnet';

{
  prometheusAlerts+:: {
    local c = $._config,
    local t = u.targets(c),
    local l = c.litestream,
    groups+: [
      {
        name: 'bug-escape.replication',
        rules: [
          {
            alert: 'LitestreamReplicaLagging',
            expr: |||
              sum by (%(t)s, db) (increase(litestream_total_wal_bytes{%(s)s}[%(w)s])) > 0
              unless on(%(t)s, db)
              sum by (%(t)s, db) (increase(litestream_replica_wal_bytes{%(s)s}[%(w)s])) > 0
            ||| % { t: t, s: l.selector, w: l.replicaLag },
            'for': l['for'],
            labels: { severity: 'critical', category: 'operational' },
            annotations: {
              summary: 'Litestream {{ $labels.instance }} has not replicated {{ $labels.db }} for %s.' % u.duration(l.replicaLag),
              description: u.oneLine(|||
                Litestream on {{ $labels.instance }} copied new WAL of {{ $labels.db }} in %s but wrote none
                of it to its replica (for %s more): the bucket is unreachable, its credentials are wrong or
                the replica's volume is full. Losing the machine now loses everything written since.
              ||| % [u.last(l.replicaLag), u.duration(l['for'])]),
              runbook_url: u.runbook(c, 'LitestreamReplicaLagging'),
            },
          },
        ],
      },
    ],
  },
}
