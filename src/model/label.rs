//! Label values: every string that can become a Prometheus label value passes here.

/// Longest accepted label value (stage, cause, release, product, …).
pub const MAX_LABEL_LEN: usize = 128;

/// What the checks of a text value (a label, an id) look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// Only white space (or empty).
    pub blank: bool,
    /// Its length in characters.
    pub chars: usize,
    /// It holds a control character.
    pub control: bool,
}

impl Facts {
    /// The facts of `v`. Values are nearly always ASCII: then bytes are
    /// characters, and each test is a plain pass over bytes, with the
    /// answers of the character tests.
    pub fn of(v: &str) -> Self {
        if v.is_ascii() {
            let b = v.as_bytes();
            Self {
                blank: b.iter().all(|c| matches!(c, b'\t'..=b'\r' | b' ')),
                chars: b.len(),
                control: b.iter().any(u8::is_ascii_control),
            }
        } else {
            Self {
                blank: v.trim().is_empty(),
                chars: v.chars().count(),
                control: v.chars().any(char::is_control),
            }
        }
    }
}

/// Checks a label value: 1..=[`MAX_LABEL_LEN`] characters, not only white
/// space, no control characters.
pub fn check_label(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("must not be empty".into());
    }
    let Facts {
        blank,
        chars: n,
        control,
    } = Facts::of(v);
    if blank {
        return Err("must not be blank (white space only)".into());
    }
    if n > MAX_LABEL_LEN {
        return Err(format!(
            "is {n} characters long; the limit is {MAX_LABEL_LEN}"
        ));
    }
    if control {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_values_and_refuses_bad_ones() {
        assert!(check_label("payments-api").is_ok());
        assert!(check_label("ünïcode 2.4").is_ok());
        assert!(check_label("").is_err());
        assert!(check_label("   ").is_err());
        assert!(check_label("\u{3000}\t").is_err());
        assert!(check_label(" qa ").is_ok());
        assert!(check_label("a\nb").is_err());
        assert!(check_label(&"x".repeat(MAX_LABEL_LEN)).is_ok());
        assert!(check_label(&"x".repeat(MAX_LABEL_LEN + 1)).is_err());
    }

    /// The ASCII shortcut answers as the character tests do, for every
    /// ASCII character alone, beside a letter, and repeated past the limit.
    #[test]
    fn ascii_values_are_judged_as_characters_are() {
        let slow = |v: &str| Facts {
            blank: v.trim().is_empty(),
            chars: v.chars().count(),
            control: v.chars().any(char::is_control),
        };
        fn by_chars(v: &str) -> Result<(), String> {
            if v.is_empty() {
                return Err("must not be empty".into());
            }
            if v.trim().is_empty() {
                return Err("must not be blank (white space only)".into());
            }
            let n = v.chars().count();
            if n > MAX_LABEL_LEN {
                return Err(format!(
                    "is {n} characters long; the limit is {MAX_LABEL_LEN}"
                ));
            }
            if v.chars().any(char::is_control) {
                return Err("must not contain control characters".into());
            }
            Ok(())
        }
        for c in (0u8..=127).map(char::from) {
            for v in [
                c.to_string(),
                format!("a{c}"),
                format!("{c}{c} "),
                c.to_string().repeat(MAX_LABEL_LEN + 1),
            ] {
                assert!(v.is_ascii());
                assert_eq!(Facts::of(&v), slow(&v), "{v:?}");
                assert_eq!(check_label(&v), by_chars(&v), "{v:?}");
            }
        }
    }
}
