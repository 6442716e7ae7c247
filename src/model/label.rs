//! Label values: every string that can become a Prometheus label value passes here.

/// Longest accepted label value (stage, cause, release, product, …).
pub const MAX_LABEL_LEN: usize = 128;

/// Checks a label value: 1..=[`MAX_LABEL_LEN`] characters, not only white
/// space, no control characters.
pub fn check_label(v: &str) -> Result<(), String> {
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
}
