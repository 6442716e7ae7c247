//! Explaining a file the settings refuse: figment's error says what is
//! wrong but loses the key inside arrays and flattened tables, so the key at
//! fault is found by trying the file without each of its keys in turn, then
//! written as `file:line:column: key: reason`, in words that never quote a
//! value of a secret.

use figment::error::{Actual, Kind};
use figment::value::{Dict, Value};

use super::{Parsed, Seg, Where, show};
use crate::config::redact::is_secret_key;
use crate::config::{ConfigError, ranges, suggest};

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
        Kind::UnknownField(found, expected) => suggest::unknown_key(found, expected),
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
