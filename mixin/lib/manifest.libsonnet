// Readable output for the generated files, in plain jsonnet (no grafonnet,
// no external library): YAML with plain keys, block scalars for multi-line
// strings, folded scalars for long lines and comments; JSON with numbers in
// their shortest form (10.000001, not 10.000000999999999).
//
// A hidden field `_comment::` on an object that is an array item becomes a
// comment above the item in YAML, and a hidden `_lines::` keeps a long
// string's authored line breaks (see authoredLines); neither is part of the
// data.
local all(xs) = std.foldl(function(a, b) a && b, xs, true);
local member(xs, x) = std.count(if std.isString(xs) then std.stringChars(xs) else xs, x) > 0;
local isLetter(c) = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
local isDigit(c) = c >= '0' && c <= '9';

// The shortest decimal that reads back as the same number.
local number(n) =
  if n == std.floor(n) && std.abs(n) < 1e15 then std.toString(n)
  else
    local exact = [
      s
      for s in [std.format('%.' + p + 'g', n) for p in std.range(1, 17)]
      if std.parseJson(s) == n
    ];
    if std.length(exact) > 0 then exact[0] else std.toString(n);

local keyOrder = [
  'apiVersion', 'kind', 'metadata', 'spec', 'name', 'namespace', 'groups',
  'interval', 'rules', 'record', 'alert', 'expr', 'for', 'keep_firing_for',
  'labels', 'annotations', 'summary', 'description', 'runbook_url',
];
local orderedFields(o) =
  local fields = std.objectFields(o);
  [k for k in keyOrder if std.objectHas(o, k)]
  + [k for k in fields if std.count(keyOrder, k) == 0];

local reserved = ['true', 'false', 'yes', 'no', 'on', 'off', 'y', 'n', 'null'];
local plainChar(c) = isLetter(c) || isDigit(c) || member('_./-:#', c);
local plainKey(k) =
  std.length(k) > 0 && isLetter(k[0])
  && all([isLetter(c) || isDigit(c) || member('_./-', c) for c in std.stringChars(k)]);
// Strings that YAML reads back as the same string without quotes. Without a
// space: a word that starts with a letter (not true/false/null/...) or a
// duration (5m). With a space (never a number, boolean or null): anything
// that does not start with an indicator and has no `: ` or ` #`.
local hasSpace(s) = std.length(std.findSubstr(' ', s)) > 0;
local plainString(s) =
  std.length(s) > 0 && s[std.length(s) - 1] != ':'
  && (
    if hasSpace(s) then
      !member('-?:,[]{}#&*!|>\'"%@` ', s[0])
      && s[std.length(s) - 1] != ' '
      && std.length(std.findSubstr(': ', s)) == 0
      && std.length(std.findSubstr(' #', s)) == 0
      && std.length(std.findSubstr('\t', s)) == 0
      && std.length(std.findSubstr('\n', s)) == 0
    else
      all([plainChar(c) for c in std.stringChars(s)])
      && (
        (isLetter(s[0]) && !member(reserved, std.asciiLower(s)))
        || (isDigit(s[0]) && all([isDigit(c) || member('smhdwy', c) for c in std.stringChars(s)])
            && !isDigit(s[std.length(s) - 1]))
      )
  );

local foldWidth = 100;
// Words of `s` into lines of at most foldWidth characters.
local fold(s) =
  local words = std.split(s, ' ');
  std.foldl(
    function(lines, w)
      if std.length(lines) == 0 then [w]
      else
        local last = lines[std.length(lines) - 1];
        if std.length(last) + 1 + std.length(w) <= foldWidth
        then lines[:std.length(lines) - 1] + [last + ' ' + w]
        else lines + [w],
    words,
    []
  );
// A long single line folds (`>-`) when folding gives it back exactly: no
// leading, trailing or repeated spaces, no tab.
local foldable(s) =
  std.length(s) > 160
  && std.length(std.findSubstr('\n', s)) == 0
  && std.length(std.findSubstr('  ', s)) == 0
  && std.length(std.findSubstr('\t', s)) == 0
  && s[0] != ' ' && s[std.length(s) - 1] != ' ';

// A scalar after `key:` or `-`, with its leading space; block scalars run on
// the following lines at `ind`.
local scalar(v, ind) =
  if v == null then ' null'
  else if std.isBoolean(v) then (if v then ' true' else ' false')
  else if std.isNumber(v) then ' ' + number(v)
  else if std.isString(v) then
    if std.length(std.findSubstr('\n', v)) > 0 then
      local chomp =
        if std.endsWith(v, '\n\n') then '+'
        else if std.endsWith(v, '\n') then ''
        else '-';
      local body = if std.endsWith(v, '\n') then v[:std.length(v) - 1] else v;
      local indicator = if v[0] == ' ' then '2' else '';
      ' |' + indicator + chomp + '\n'
      + std.join('\n', [if l == '' then '' else ind + l for l in std.split(body, '\n')])
    else if plainString(v) then ' ' + v
    else if foldable(v) then ' >-\n' + std.join('\n', [ind + l for l in fold(v)])
    else ' ' + std.escapeStringJson(v)
  else if std.isArray(v) && std.length(v) == 0 then ' []'
  else if std.isObject(v) && std.length(std.objectFields(v)) == 0 then ' {}'
  else error 'not a scalar';

local isBlock(v) =
  (std.isArray(v) && std.length(v) > 0)
  || (std.isObject(v) && std.length(std.objectFields(v)) > 0);

// An object may carry its own line breaks for a long string field in a
// hidden `_lines:: { field: [lines] }`; they are used when folding them back
// gives the field's value exactly.
local authoredLines(o, k) =
  std.objectHasAll(o, '_lines') && std.objectHas(o._lines, k) && std.isString(o[k])
  && std.join(' ', o._lines[k]) == o[k]
  && all([
    l != '' && l[0] != ' ' && l[std.length(l) - 1] != ' ' && std.length(std.findSubstr('  ', l)) == 0
    for l in o._lines[k]
  ]);

local key(k) = if plainKey(k) then k else std.escapeStringJson(k);

local commentLines(text, ind) =
  std.join('', [
    ind + (if l == '' then '#' else '# ' + l) + '\n'
    for l in std.split(std.rstripChars(text, '\n'), '\n')
  ]);

// `v` (an object or a non-empty array) as block lines at indentation `ind`.
local block(v, ind) =
  if std.isObject(v) then
    std.join('', [
      local x = v[k];
      if isBlock(x)
      then ind + key(k) + ':\n' + block(x, ind + '  ')
      else if authoredLines(v, k)
      then ind + key(k) + ': >-\n' + std.join('', [ind + '  ' + l + '\n' for l in v._lines[k]])
      else ind + key(k) + ':' + scalar(x, ind + '  ') + '\n'
      for k in orderedFields(v)
    ])
  else
    std.join('', [
      local x = v[i];
      local comment =
        if std.isObject(x) && std.objectHasAll(x, '_comment')
        then (if i > 0 then '\n' else '') + commentLines(x._comment, ind)
        else '';
      comment + (
        if std.isObject(x) && isBlock(x) then
          local b = block(x, ind + '  ');
          ind + '- ' + b[std.length(ind) + 2:]
        else if isBlock(x) then ind + '-\n' + block(x, ind + '  ')
        else ind + '-' + scalar(x, ind + '  ') + '\n'
      )
      for i in std.range(0, std.length(v) - 1)
    ]);

local json(v, ind) =
  if v == null then 'null'
  else if std.isBoolean(v) then (if v then 'true' else 'false')
  else if std.isNumber(v) then number(v)
  else if std.isString(v) then std.escapeStringJson(v)
  else if std.isArray(v) then
    if std.length(v) == 0 then '[]'
    else '[\n' + std.join(',\n', [ind + '  ' + json(x, ind + '  ') for x in v]) + '\n' + ind + ']'
  else if std.isObject(v) then
    local fields = std.objectFields(v);
    if std.length(fields) == 0 then '{}'
    else '{\n' + std.join(',\n', [
      ind + '  ' + std.escapeStringJson(k) + ': ' + json(v[k], ind + '  ')
      for k in fields
    ]) + '\n' + ind + '}'
  else error 'cannot manifest ' + std.type(v);

{
  number:: number,
  // A YAML document: `header` (text) as comment lines, then `value`.
  yaml(value, header=''):: (if header == '' then '' else commentLines(header, '')) + block(value, ''),
  // JSON, two-space indentation, keys sorted, a final newline.
  json(value):: json(value, '') + '\n',
}
