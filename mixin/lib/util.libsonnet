// Small helpers shared by the rules, the alerts and the dashboards.
local m = import 'manifest.libsonnet';
{
  // 'job, instance': the target labels, for on(...) and by (...).
  targets(c):: std.join(', ', c.targetLabels),

  // A number as PromQL or YAML reads it back (0.2, not 0.20000000000000001).
  number(n):: m.number(n),

  // '5m' -> '5 minutes', '1h' -> '1 hour', '3d' -> '3 days'.
  duration(d)::
    local unit = d[std.length(d) - 1];
    local n = std.parseInt(d[:std.length(d) - 1]);
    local word = { s: 'second', m: 'minute', h: 'hour', d: 'day', w: 'week' }[unit];
    '%d %s%s' % [n, word, if n == 1 then '' else 's'],

  // '5m' -> 300, '1h' -> 3600, '1d' -> 86400.
  seconds(d)::
    local unit = d[std.length(d) - 1];
    std.parseInt(d[:std.length(d) - 1]) * { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[unit],

  // '10m' -> 'the last 10 minutes', '1h' -> 'the last hour'.
  last(d)::
    local n = std.parseInt(d[:std.length(d) - 1]);
    if n == 1 then 'the last ' + std.split($.duration(d), ' ')[1] else 'the last ' + $.duration(d),

  // A text block as one line (what YAML's `>-` makes of it), and its lines.
  lines(s):: std.split(std.rstripChars(s, '\n'), '\n'),
  oneLine(s):: std.join(' ', $.lines(s)),

  // A value looked up by an annotation template, pinned to the alert's own
  // target: `query(c, 'bug_escape_rate_lower_ratio', ['product', 'release'])`
  // reads bug_escape_rate_lower_ratio{job=..,instance=..,product=..,release=..}
  // of the alert's labels. `extra` adds fixed matchers, `wrap` an enclosing
  // function ('sum(%s)'), `format` the value's formatting.
  query(c, metric, labels, extra=[], wrap='%s', format=' | humanizePercentage')::
    local names = c.targetLabels + labels;
    local selector = metric + '{' + std.join(',', ['%s=%%q' % l for l in names] + extra) + '}';
    '{{ with printf `%s` %s | query }}{{ . | first | value%s }}{{ end }}'
    % [wrap % selector, std.join(' ', ['$labels.' + l for l in names]), format],

  runbook(c, alert):: c.runbookURLBase + '#' + std.asciiLower(alert),
}
