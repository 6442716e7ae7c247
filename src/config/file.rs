//! The TOML file layer: read and parsed here (not by figment's provider,
//! whose errors quote the offending line, secret included), with every error
//! written from its position and key path only: `file:line:column: key:
//! what`. No source line is ever printed, and no value of a key that may
//! hold a secret (see [`super::redact`]); type errors name the type found,
//! never the value.

use std::collections::BTreeSet;
use std::path::Path;

use figment::error::{Actual, Kind};
use figment::value::{Dict, Value};
use toml_edit::{ImDocument, Item, Table};

use super::redact::is_secret_key;
use super::{ConfigError, ranges};

/// One step of a key path: a key, or an index in an array.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// A key path as the documentation writes it: `stages[2].phase`.
fn show(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The parsed file: its values for figment, and where each key stands.
pub struct Parsed {
    /// The file's values, as figment merges them.
    pub dict: Dict,
    /// Every node (key or array element) with the byte offset where it is written.
    nodes: Vec<(Vec<Seg>, usize)>,
    text: String,
    file: String,
}

/// Reads and parses `path`; errors name the file, line, column and key.
pub fn read(path: &Path, known: &BTreeSet<String>) -> Result<Parsed, ConfigError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError(format!("config file {file}: cannot read it: {e}")))?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let prefix = String::from_utf8_lossy(&e.as_bytes()[..valid]).into_owned();
            let at = Where::new(&file, &prefix, valid);
            return Err(at.error(
                key_near(&prefix, valid, known).as_deref(),
                "not valid UTF-8 (a TOML file is UTF-8 text)",
            ));
        }
    };
    let doc = match ImDocument::parse(text.as_str()) {
        Ok(d) => d,
        Err(e) => {
            let offset = e.span().map_or(0, |s| s.start);
            let what = e.message().trim().replace('\n', "; ");
            let at = Where::new(&file, &text, offset);
            return Err(at.error(
                key_near(&text, offset, known).as_deref(),
                &format!("TOML syntax error: {what}"),
            ));
        }
    };
    let mut walk = Walk::default();
    let dict = walk.table(doc.as_table(), 0, &mut Vec::new());
    if let Some((path, offset)) = walk.datetime {
        let at = Where::new(&file, &text, offset);
        return Err(at.error(
            Some(&show(&path)),
            "a date or time is not a value any key takes; quote it",
        ));
    }
    Ok(Parsed {
        dict,
        nodes: walk.nodes,
        text: text.clone(),
        file,
    })
}

impl Parsed {
    /// The file's name as errors give it.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// `file:line` of every key and array element, by key path.
    pub fn origins(&self) -> std::collections::BTreeMap<String, String> {
        // Line starts, searched: linear in the file, however many keys.
        let starts: Vec<usize> = std::iter::once(0)
            .chain(self.text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        self.nodes
            .iter()
            .map(|(path, offset)| {
                let line = starts.partition_point(|s| s <= offset);
                (show(path), format!("{}:{line}", self.file))
            })
            .collect()
    }
}

/// A position in the file: `file:line:column`.
struct Where {
    file: String,
    line: usize,
    column: usize,
}

impl Where {
    fn new(file: &str, text: &str, offset: usize) -> Self {
        let offset = floor_char(text, offset);
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let start = before.rfind('\n').map_or(0, |i| i + 1);
        Self {
            file: file.to_owned(),
            line,
            column: before[start..].chars().count() + 1,
        }
    }

    fn error(&self, key: Option<&str>, what: &str) -> ConfigError {
        let key = key.map_or(String::new(), |k| format!(" {k}:"));
        ConfigError(format!(
            "{}:{}:{}:{key} {what}",
            self.file, self.line, self.column
        ))
    }
}

/// `offset`, moved back to a character boundary of `text` (and within it).
fn floor_char(text: &str, offset: usize) -> usize {
    let mut o = offset.min(text.len());
    while !text.is_char_boundary(o) {
        o -= 1;
    }
    o
}

/// The document turned into figment values, with every node's position.
#[derive(Default)]
struct Walk {
    nodes: Vec<(Vec<Seg>, usize)>,
    /// The first date-time value: no setting takes one.
    datetime: Option<(Vec<Seg>, usize)>,
}

impl Walk {
    fn table(&mut self, t: &Table, at: usize, path: &mut Vec<Seg>) -> Dict {
        let mut out = Dict::new();
        for (k, item) in t.iter() {
            let key_at = t
                .get_key_value(k)
                .and_then(|(key, _)| key.span())
                .map_or(at, |s| s.start);
            path.push(Seg::Key(k.to_owned()));
            if let Some(v) = self.item(item, key_at, path) {
                out.insert(k.to_owned(), v);
            }
            path.pop();
        }
        out
    }

    fn item(&mut self, item: &Item, at: usize, path: &mut Vec<Seg>) -> Option<Value> {
        self.nodes.push((path.clone(), at));
        match item {
            Item::None => None,
            Item::Value(v) => Some(self.value(v, at, path)),
            Item::Table(t) => Some(Value::from(self.table(t, at, path))),
            Item::ArrayOfTables(a) => {
                let mut out = Vec::new();
                for (i, t) in a.iter().enumerate() {
                    let t_at = t.span().map_or(at, |s| s.start);
                    path.push(Seg::Index(i));
                    self.nodes.push((path.clone(), t_at));
                    out.push(Value::from(self.table(t, t_at, path)));
                    path.pop();
                }
                Some(Value::from(out))
            }
        }
    }

    fn value(&mut self, v: &toml_edit::Value, at: usize, path: &mut Vec<Seg>) -> Value {
        use toml_edit::Value as V;
        match v {
            V::String(s) => Value::from(s.value().clone()),
            V::Integer(i) => Value::from(*i.value()),
            V::Float(f) => Value::from(*f.value()),
            V::Boolean(b) => Value::from(*b.value()),
            V::Datetime(_) => {
                self.datetime.get_or_insert((path.clone(), at));
                Value::from(String::new())
            }
            V::Array(a) => {
                let mut out = Vec::new();
                for (i, e) in a.iter().enumerate() {
                    let e_at = e.span().map_or(at, |s| s.start);
                    path.push(Seg::Index(i));
                    self.nodes.push((path.clone(), e_at));
                    out.push(self.value(e, e_at, path));
                    path.pop();
                }
                Value::from(out)
            }
            V::InlineTable(t) => {
                let mut out = Dict::new();
                for (k, e) in t.iter() {
                    let key_at = t
                        .get_key_value(k)
                        .and_then(|(key, _)| key.span())
                        .map_or(at, |s| s.start);
                    path.push(Seg::Key(k.to_owned()));
                    self.nodes.push((path.clone(), key_at));
                    out.insert(k.to_owned(), self.value(e, key_at, path));
                    path.pop();
                }
                Value::from(out)
            }
        }
    }
}

/// Extracts the settings from a document alone (defaults under it), as
/// [`Parsed::explain`] needs to try variants of the file.
pub type Trial<'a> = &'a dyn Fn(&Dict) -> Result<(), Box<figment::Error>>;

/// Trials [`Parsed::explain`] may run before it names what it has found:
/// enough for any real file, bounded for a hostile one.
const MAX_TRIALS: usize = 400;

impl Parsed {
    /// The error figment gave for this file, rewritten: the key at fault
    /// found by trying the file without each of its keys in turn (figment
    /// loses the path inside arrays and flattened tables), with its line,
    /// and the reason in words that never quote a value of a secret.
    pub fn explain(&self, error: figment::Error, trial: Trial<'_>) -> ConfigError {
        let first = match trial(&self.dict) {
            Err(e) => e,
            // Not this file's fault (no other layer should fail): name the key.
            Ok(()) => {
                let key = error.path.join(".");
                let what = describe(&error.kind, &key, is_secret_key(&key));
                return ConfigError(format!("{key}: {what}"));
            }
        };
        let root = Value::from(self.dict.clone());
        // figment's path is exact but stops at a flattened table (the
        // webhook tables): from there the key is found by trials.
        let mut start = segments(&root, &first.path);
        if let Kind::UnknownField(f, _) = &first.kind {
            if start.last() != Some(&Seg::Key(f.clone())) {
                start.push(Seg::Key(f.clone()));
            }
        }
        // A missing or unknown key is where figment says; anything else may
        // lie deeper.
        let exact = matches!(first.kind, Kind::MissingField(_) | Kind::UnknownField(..));
        let mut trials = if exact { MAX_TRIALS } else { 0 };
        let shown = self.narrow(
            root,
            &start,
            start.clone(),
            &signature(&first),
            trial,
            &mut trials,
        );
        let offset = self
            .nodes
            .iter()
            .find(|(p, _)| *p == shown)
            .map_or(0, |(_, o)| *o);
        let key = show(&shown);
        let what = describe(&first.kind, &key, is_secret_key(&key));
        let at = Where::new(&self.file, &self.text, offset);
        at.error((!key.is_empty()).then_some(key.as_str()), &what)
    }

    /// The deepest node under `shown` (at `path` in `doc`) whose removal (in
    /// a table) or isolation (in an array) changes the error.
    fn narrow(
        &self,
        doc: Value,
        path: &[Seg],
        shown: Vec<Seg>,
        original: &str,
        trial: Trial<'_>,
        trials: &mut usize,
    ) -> Vec<Seg> {
        let differs = |candidate: &Value, trials: &mut usize| {
            *trials += 1;
            let Value::Dict(_, d) = candidate else {
                return false;
            };
            trial(d).err().map(|e| signature(&e)).as_deref() != Some(original)
        };
        let deeper = |mut p: Vec<Seg>, seg: Seg| {
            p.push(seg);
            p
        };
        match get(&doc, path) {
            Some(Value::Dict(_, d)) => {
                for k in d.keys() {
                    if *trials >= MAX_TRIALS {
                        break;
                    }
                    let mut candidate = doc.clone();
                    remove(&mut candidate, path, k);
                    if differs(&candidate, trials) {
                        let p = deeper(path.to_vec(), Seg::Key(k.clone()));
                        let s = deeper(shown, Seg::Key(k.clone()));
                        return self.narrow(doc.clone(), &p, s, original, trial, trials);
                    }
                }
                shown
            }
            Some(Value::Array(_, a)) => {
                // Empty, it still fails the same way: the array itself is at fault.
                let mut empty = doc.clone();
                set(&mut empty, path, Value::from(Vec::<Value>::new()));
                if !differs(&empty, trials) {
                    return shown;
                }
                for (i, e) in a.iter().enumerate() {
                    if *trials >= MAX_TRIALS {
                        break;
                    }
                    let mut candidate = doc.clone();
                    set(&mut candidate, path, Value::from(vec![e.clone()]));
                    // This element alone gives the same error: it is at fault.
                    if !differs(&candidate, trials) {
                        let p = deeper(path.to_vec(), Seg::Index(0));
                        let s = deeper(shown, Seg::Index(i));
                        return self.narrow(candidate, &p, s, original, trial, trials);
                    }
                }
                shown
            }
            _ => shown,
        }
    }
}

/// What identifies an error across trials: its path (less array indices,
/// which isolating an element changes) and kind.
fn signature(e: &figment::Error) -> String {
    let keys: Vec<&str> = e
        .path
        .iter()
        .map(String::as_str)
        .filter(|k| k.parse::<usize>().is_err())
        .collect();
    format!("{keys:?}|{}", e.kind)
}

/// figment's `path` as segments of `root`: a number inside an array is an
/// index. Stops where `root` has no such node.
fn segments(root: &Value, path: &[String]) -> Vec<Seg> {
    let mut out = Vec::new();
    let mut node = Some(root);
    for k in path {
        let seg = match (node, k.parse::<usize>()) {
            (Some(Value::Array(..)), Ok(i)) => Seg::Index(i),
            _ => Seg::Key(k.clone()),
        };
        node = node.and_then(|n| get(n, std::slice::from_ref(&seg)));
        if node.is_none() {
            break;
        }
        out.push(seg);
    }
    out
}

/// The node at `path` of `v`.
fn get<'a>(v: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    let Some((first, rest)) = path.split_first() else {
        return Some(v);
    };
    let next = match (first, v) {
        (Seg::Key(k), Value::Dict(_, d)) => d.get(k)?,
        (Seg::Index(i), Value::Array(_, a)) => a.get(*i)?,
        _ => return None,
    };
    get(next, rest)
}

fn get_mut<'a>(v: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    let Some((first, rest)) = path.split_first() else {
        return Some(v);
    };
    let next = match (first, v) {
        (Seg::Key(k), Value::Dict(_, d)) => d.get_mut(k)?,
        (Seg::Index(i), Value::Array(_, a)) => a.get_mut(*i)?,
        _ => return None,
    };
    get_mut(next, rest)
}

/// Removes key `k` of the table at `path`.
fn remove(v: &mut Value, path: &[Seg], k: &str) {
    if let Some(Value::Dict(_, d)) = get_mut(v, path) {
        d.remove(k);
    }
}

/// Replaces the node at `path`.
fn set(v: &mut Value, path: &[Seg], new: Value) {
    if let Some(slot) = get_mut(v, path) {
        *slot = new;
    }
}

/// An error kind in words. A value is named only when the key holds no
/// secret, and never for a type error (its type says enough).
fn describe(kind: &Kind, key: &str, secret: bool) -> String {
    let list = |v: &[&str]| v.join(", ");
    match kind {
        Kind::Message(m) if m.contains("untagged enum SecretSetting") => {
            "must be a string or an array of strings".into()
        }
        Kind::Message(_) if secret => "invalid value (not shown: it may be a secret)".into(),
        Kind::Message(m) => m.clone(),
        Kind::InvalidType(actual, expected) => {
            format!(
                "expected {}, found {}",
                expected_of(key, expected),
                type_of(actual)
            )
        }
        Kind::InvalidValue(_, expected) if secret => {
            format!("invalid value (not shown): expected {expected}")
        }
        Kind::InvalidValue(actual, expected) => {
            format!(
                "invalid value {actual}: expected {}",
                expected_of(key, expected)
            )
        }
        Kind::InvalidLength(n, expected) => format!("{n} entries, expected {expected}"),
        Kind::UnknownVariant(_, expected) if secret => {
            format!(
                "unknown value (not shown); expected one of: {}",
                list(expected)
            )
        }
        Kind::UnknownVariant(v, expected) => {
            format!("unknown value `{v}`; expected one of: {}", list(expected))
        }
        Kind::UnknownField(_, expected) => {
            format!("unknown key; known keys: {}", list(expected))
        }
        Kind::MissingField(f) => format!("missing key `{f}`"),
        Kind::DuplicateField(f) => format!("key `{f}` given twice"),
        Kind::ISizeOutOfRange(_) | Kind::USizeOutOfRange(_) => {
            format!("out of range: expected {}", expected_of(key, "a number"))
        }
        Kind::Unsupported(actual) => format!("{} is not supported here", type_of(actual)),
        Kind::UnsupportedKey(actual, expected) => {
            format!(
                "a key of type {} is not supported, expected {expected}",
                type_of(actual)
            )
        }
    }
}

/// What `key` expects: its documented range for a count, else serde's words.
fn expected_of(key: &str, serde: &str) -> String {
    // `products.<name>.bands.min_defects` is ranged as `bands.min_defects`.
    let generic = match key.strip_prefix("products.") {
        Some(rest) => rest.split_once('.').map_or(rest, |(_, k)| k),
        None => key,
    };
    match ranges::count_range(generic) {
        Some(c) => format!("a whole number from {}", c.describe()),
        None => serde.to_owned(),
    }
}

/// The type of a value, never the value.
fn type_of(a: &Actual) -> &'static str {
    match a {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a float",
        Actual::Char(_) => "a character",
        Actual::Str(_) => "a string",
        Actual::Bytes(_) => "bytes",
        Actual::Unit | Actual::Option => "an empty value",
        Actual::Seq => "an array",
        Actual::Map => "a table",
        _ => "a value of another kind",
    }
}

/// The key written at or above `offset` of a file that does not parse, for
/// the error's message: `table.key` when every part of it is a key the
/// settings know (or a product's name). The file is read line by line up to
/// the error, tables and keys noted outside multi-line strings (so a line
/// inside one, which may be a secret, is never taken for a key).
fn key_near(text: &str, offset: usize, known: &BTreeSet<String>) -> Option<String> {
    let offset = floor_char(text, offset);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let assignment = regex::Regex::new(r"^\s*([A-Za-z0-9_.\s-]+?)\s*=").ok()?;
    let header = regex::Regex::new(r"^\s*\[\[?\s*([A-Za-z0-9_.\s-]+?)\s*\]?\]?\s*(#.*)?$").ok()?;
    let (mut table, mut key): (Option<&str>, Option<&str>) = (None, None);
    let mut open: Option<&str> = None;
    for line in text[..line_end].lines() {
        if let Some(d) = open {
            if line.matches(d).count() % 2 == 1 {
                open = None;
            }
            continue;
        }
        if let Some(c) = header.captures(line) {
            table = c.get(1).map(|m| m.as_str());
            key = None;
            continue;
        }
        if let Some(c) = assignment.captures(line) {
            key = c.get(1).map(|m| m.as_str());
        }
        open = ["\"\"\"", "'''"]
            .into_iter()
            .find(|d| line.matches(d).count() % 2 == 1);
    }
    let full = match (table, key) {
        (Some(t), Some(k)) => format!("{t}.{k}"),
        (Some(t), None) => t.to_owned(),
        (None, Some(k)) => k.to_owned(),
        (None, None) => return None,
    };
    let parts: Vec<&str> = full.split('.').map(str::trim).collect();
    let named = parts
        .iter()
        .enumerate()
        .all(|(i, p)| known.contains(*p) || (i > 0 && parts[i - 1] == "products"));
    named.then(|| parts.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> BTreeSet<String> {
        [
            "api_token",
            "webhooks",
            "github",
            "secret",
            "maturity_ages",
            "products",
            "bands",
        ]
        .map(String::from)
        .into()
    }

    #[test]
    fn the_key_near_a_syntax_error_is_named_only_when_known() {
        let k = known();
        let text = "[webhooks.github]\nsecret = hunter2\n";
        assert_eq!(
            key_near(text, text.find("hunter2").unwrap(), &k).as_deref(),
            Some("webhooks.github.secret")
        );
        let text = "maturity_ages = [\n  \"30d\",\n  x\n]\n";
        assert_eq!(
            key_near(text, text.find('x').unwrap(), &k).as_deref(),
            Some("maturity_ages")
        );
        let text = "api_token = \"\"\"\nhunter2 = yes\n[secret]\n\\q";
        assert_eq!(
            key_near(text, text.len() - 1, &k).as_deref(),
            Some("api_token")
        );
        let text = "[webhooks]\nhunter2 = \"\"\"\n\\q";
        assert_eq!(key_near(text, text.len() - 1, &k), None);
        let text = "[products.payments.bands]\nstrong = ?";
        assert_eq!(key_near(text, text.len() - 1, &k), None);
    }

    #[test]
    fn positions_count_lines_and_characters() {
        let w = Where::new("f.toml", "a = 1\nbé = \"x", 12);
        assert_eq!((w.line, w.column), (2, 6));
        assert_eq!(
            show(&[
                Seg::Key("stages".into()),
                Seg::Index(2),
                Seg::Key("phase".into())
            ]),
            "stages[2].phase"
        );
    }
}
