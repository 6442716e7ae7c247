// Building blocks of the dashboards, in plain jsonnet (no grafonnet). Every
// panel and target uses the `${datasource}` template variable, so a
// dashboard works both imported and provisioned.
{
  ds:: { type: 'prometheus', uid: '${datasource}' },

  // Band colours from _config.dashboardBands (percent): strong E < strong,
  // healthy <= healthy, attention <= attention, leaking above. Grafana
  // colours a value with the highest step it reaches (>=), so the attention
  // and leaking steps sit just above their bounds to keep `healthy` itself
  // healthy and `attention` itself attention, as the bands are defined.
  bandSteps(c):: [
    { color: 'dark-green', value: null },
    { color: 'green', value: c.dashboardBands.strong },
    { color: 'orange', value: c.dashboardBands.healthy + 0.000001 },
    { color: 'red', value: c.dashboardBands.attention + 0.000001 },
  ],
  // Appended to the description of every panel coloured by band.
  bandNote(c)::
    " Colours are the exporter's default bands (strong < %(strong)s %%, healthy <= %(healthy)s %%,"
    % c.dashboardBands
    + ' attention <= %(attention)s %%, leaking above); a product with its own bands is judged' % c.dashboardBands
    + ' by them in the alerts, and its configured thresholds are plotted as the'
    + ' band threshold series.',
  bandIndexMappings:: [
    {
      type: 'value',
      options: {
        '0': { text: 'strong', color: 'dark-green', index: 0 },
        '1': { text: 'healthy', color: 'green', index: 1 },
        '2': { text: 'attention', color: 'orange', index: 2 },
        '3': { text: 'leaking', color: 'red', index: 3 },
      },
    },
  ],

  target(expr, legend='', ref='A', instant=false, format=null):: {
    datasource: $.ds,
    editorMode: 'code',
    expr: expr,
    legendFormat: if legend == '' then '__auto' else legend,
    refId: ref,
    range: !instant,
    instant: instant,
    [if format != null then 'format']: format,
  },

  // targets([[expr, legend], expr, ...]): refIds A, B, C, ...
  targets(specs, instant=false, format=null):: [
    local s = specs[i];
    local spec = if std.isArray(s) then s else [s, ''];
    $.target(spec[0], spec[1], std.char(std.codepoint('A') + i), instant, format)
    for i in std.range(0, std.length(specs) - 1)
  ],

  thresholds(steps):: { mode: 'absolute', steps: steps },

  // A panel; `grid` is [x, w, h] (y comes from layout()).
  panel(kind, title, description, grid, targets, unit='short', steps=null,
        options=null, custom=null, mappings=null, overrides=null, decimals=null,
        min=null, max=null, transformations=null, color=null):: {
    type: kind,
    title: title,
    description: description,
    datasource: $.ds,
    gridPos: { x: grid[0], w: grid[1], h: grid[2] },
    targets: targets,
    fieldConfig: {
      defaults: {
        unit: unit,
        thresholds: $.thresholds(if steps == null then [{ color: 'text', value: null }] else steps),
        mappings: if mappings == null then [] else mappings,
        color:
          if color != null then color
          else { mode: if steps != null then 'thresholds' else 'palette-classic' },
        [if custom != null then 'custom']: custom,
        [if decimals != null then 'decimals']: decimals,
        [if min != null then 'min']: min,
        [if max != null then 'max']: max,
      },
      overrides: if overrides == null then [] else overrides,
    },
    options: if options == null then {} else options,
    [if transformations != null then 'transformations']: transformations,
  },

  row(title):: {
    type: 'row',
    title: title,
    collapsed: false,
    gridPos: { x: 0, w: 24, h: 1 },
    panels: [],
  },

  // Rows and bands of panels side by side, top to bottom: each element is a
  // row, or an array of panels that share a y (the next band starts below
  // the tallest). Panels are numbered in order.
  layout(items)::
    local placed = std.foldl(
      function(acc, item)
        local band = if std.isArray(item) then item else [item];
        local h = std.foldl(function(m, p) std.max(m, p.gridPos.h), band, 0);
        {
          y: acc.y + h,
          panels: acc.panels + [p { gridPos+: { y: acc.y } } for p in band],
        },
      items,
      { y: 0, panels: [] }
    ).panels;
    [placed[i] { id: i + 1 } for i in std.range(0, std.length(placed) - 1)],

  statOptions(textMode='value_and_name', colorMode='background'):: {
    reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
    colorMode: colorMode,
    graphMode: 'none',
    justifyMode: 'auto',
    orientation: 'auto',
    textMode: textMode,
  },

  bargaugeOptions:: {
    reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
    orientation: 'horizontal',
    displayMode: 'basic',
    showUnfilled: true,
    valueMode: 'color',
    namePlacement: 'auto',
    sizing: 'auto',
  },

  timeseriesOptions:: {
    legend: { displayMode: 'table', placement: 'right', showLegend: true, calcs: ['lastNotNull'] },
    tooltip: { mode: 'multi', sort: 'desc' },
  },

  tableOptions:: { showHeader: true, cellHeight: 'sm', footer: { show: false } },

  lineCustom(fill=0):: {
    drawStyle: 'line',
    lineInterpolation: 'stepAfter',
    lineWidth: 2,
    fillOpacity: fill,
    showPoints: 'never',
    spanNulls: false,
    axisSoftMin: 0,
  },

  overrideByRegex(regex, props):: { matcher: { id: 'byRegexp', options: regex }, properties: props },

  dashed:: [
    { id: 'custom.lineStyle', value: { fill: 'dash', dash: [10, 10] } },
    { id: 'custom.lineWidth', value: 1 },
    { id: 'color', value: { mode: 'fixed', fixedColor: 'text' } },
  ],

  // Shade the Wilson interval between the `lower bound` and `upper bound`
  // series and dash the band-threshold lines.
  intervalOverrides:: [
    $.overrideByRegex('upper bound', [
      { id: 'custom.fillBelowTo', value: 'lower bound' },
      { id: 'custom.fillOpacity', value: 20 },
      { id: 'custom.lineWidth', value: 0 },
      { id: 'color', value: { mode: 'fixed', fixedColor: 'blue' } },
    ]),
    $.overrideByRegex('lower bound', [
      { id: 'custom.lineWidth', value: 0 },
      { id: 'color', value: { mode: 'fixed', fixedColor: 'blue' } },
    ]),
    $.overrideByRegex('.* upper bound$', $.dashed),
  ],

  datasourceVar:: {
    name: 'datasource',
    label: 'Data source',
    type: 'datasource',
    query: 'prometheus',
    current: {},
    hide: 0,
    refresh: 1,
    regex: '',
    options: [],
    skipUrlSync: false,
  },

  queryVar(name, label, query, sort=1, includeAll=false, allValue=null, multi=false):: {
    name: name,
    label: label,
    type: 'query',
    datasource: $.ds,
    definition: query,
    query: { query: query, refId: 'PrometheusVariableQueryEditor-VariableQuery' },
    current: {},
    hide: 0,
    refresh: 2,
    regex: '',
    sort: sort,
    includeAll: includeAll,
    multi: multi,
    options: [],
    skipUrlSync: false,
    [if allValue != null then 'allValue']: allValue,
  },

  link(title, url):: {
    title: title,
    type: 'link',
    icon: 'dashboard',
    url: url,
    keepTime: true,
    includeVars: false,
    targetBlank: false,
    asDropdown: false,
    tags: [],
    tooltip: '',
  },

  dashboard(c, uid, title, description, panels, variables, annotations=[], timeFrom='now-30d',
            refresh='5m', links=[]):: {
    uid: uid,
    title: title,
    description: description,
    tags: c.grafanaTags,
    editable: true,
    graphTooltip: 1,
    schemaVersion: 39,
    version: 1,
    timezone: '',
    time: { from: timeFrom, to: 'now' },
    refresh: refresh,
    fiscalYearStartMonth: 0,
    liveNow: false,
    links: links,
    templating: { list: variables },
    annotations: {
      list: [
        {
          builtIn: 1,
          datasource: { type: 'grafana', uid: '-- Grafana --' },
          enable: true,
          hide: true,
          iconColor: 'rgba(0, 211, 255, 1)',
          name: 'Annotations & Alerts',
          type: 'dashboard',
        },
      ] + annotations,
    },
    panels: panels,
  },
}
