//! The TOML file layer: read and parsed here (not by figment's provider,
//! whose errors quote the offending line, secret included), with every error
//! written from its position and key path only: `file:line:column: key:
//! what`. No source line is ever printed, and no value of a key that may
//! hold a secret (see [`super::redact`]); type errors name the type found,
//! never the value. A file that parses but that the settings refuse is
//! explained by key in `explain`.

use std::collections::BTreeSet;
use std::path::Path;

use figment::value::{Dict, Value};
use toml_edit::{ImDocument, Item, Table};

use super::ConfigError;

mod explain;

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

    /// `file:line:column` of every key and array element, by key path (the
    /// place a validation error starts with, as a parse error does).
    pub fn origins(&self) -> std::collections::BTreeMap<String, String> {
        // Line starts, searched: linear in the file, however many keys.
        let starts: Vec<usize> = std::iter::once(0)
            .chain(self.text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        self.nodes
            .iter()
            .map(|(path, offset)| {
                let offset = floor_char(&self.text, *offset);
                let line = starts.partition_point(|s| *s <= offset);
                let start = starts[line - 1];
                let column = self.text[start..offset].chars().count() + 1;
                (show(path), format!("{}:{line}:{column}", self.file))
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
