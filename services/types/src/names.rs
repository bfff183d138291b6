//! Names of users, projects, organizations and experiments, validated by Merge's rules.

use crate::Error;

/// The longest name accepted; Merge names become Unix user and group names, which are limited
/// to 32 characters.
pub const MAX_NAME_LEN: usize = 32;

/// A validated object name: lowercase ASCII letters and digits, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

impl Name {
    /// Validates `value` as the name for `field`.
    pub fn parse(field: &str, value: &str) -> Result<Name, Error> {
        validate_name(field, value)?;
        Ok(Name(value.to_owned()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks `value` against Merge's naming rules, naming `field` in the error.
///
/// Names appear in store keys, DNS labels (`<xdc>-<project>`), dotted references
/// (`rlz.exp.proj`) and Unix accounts, so anything beyond `[a-z][a-z0-9]*` would be ambiguous
/// in at least one of them.
pub fn validate_name(field: &str, value: &str) -> Result<(), Error> {
    let problem = if value.is_empty() {
        Some("must not be empty".to_owned())
    } else if value.len() > MAX_NAME_LEN {
        Some(format!("must be at most {MAX_NAME_LEN} characters (got {})", value.len()))
    } else if !value.as_bytes()[0].is_ascii_lowercase() {
        Some(format!("{value:?} must start with a lowercase letter"))
    } else {
        value
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
            .map(|bad| format!("{value:?} may contain only lowercase letters and digits (found {bad:?})"))
    };
    match problem {
        Some(description) => Err(Error::invalid(field, description)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_merge_style_names() {
        for ok in ["a", "alice", "proj1", "x0", &"a".repeat(MAX_NAME_LEN)] {
            assert!(validate_name("name", ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_everything_else_with_a_reason() {
        for bad in ["", "1abc", "Alice", "a-b", "a.b", "a b", "é", &"a".repeat(MAX_NAME_LEN + 1)] {
            let err = validate_name("project", bad).unwrap_err();
            let Error::InvalidArgument { violations } = err else { panic!("{bad}") };
            assert_eq!(violations[0].field, "project");
            assert!(!violations[0].description.is_empty());
        }
    }
}
