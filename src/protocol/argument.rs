//! Validation of user-supplied arguments before anything is written.
//!
//! The protocol is line- and space-delimited, so a key with a space or a
//! newline would change the meaning of the request (`"a\nput x 1 1"` would
//! smuggle a second command). Such input is refused, never escaped.

use thiserror::Error;

/// Which Python exception family an argument error belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgumentErrorKind {
    /// The argument has the wrong type (`TypeError`).
    Type,
    /// The argument has the right type but an unusable value (`ValueError`).
    Value,
}

/// A rejected argument; `argument` is the parameter's name as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {argument}: {reason}")]
pub struct ArgumentError {
    pub argument: &'static str,
    pub reason: String,
    pub kind: ArgumentErrorKind,
}

impl ArgumentError {
    pub fn value(argument: &'static str, reason: impl Into<String>) -> Self {
        ArgumentError {
            argument,
            reason: reason.into(),
            kind: ArgumentErrorKind::Value,
        }
    }

    pub fn type_(argument: &'static str, reason: impl Into<String>) -> Self {
        ArgumentError {
            argument,
            reason: reason.into(),
            kind: ArgumentErrorKind::Type,
        }
    }
}

/// Where a key is used: `*` means "every key" in `get` and is no key at all in `put`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    Put,
    Get,
}

/// Checks that `key` can travel as a single protocol token.
pub fn validate_key(key: &str, usage: KeyUse) -> Result<(), ArgumentError> {
    if key.is_empty() {
        return Err(ArgumentError::value("key", "must not be empty"));
    }
    // Nearly every key is ASCII: there, whitespace and control characters
    // are exactly the bytes up to the space and DEL, checked bytewise
    // without Unicode tables (a large put_many spends its time here).
    let clean_ascii = key.is_ascii() && key.bytes().all(|b| b > b' ' && b != 0x7f);
    if clean_ascii {
        // fall through to the wildcard check
    } else if let Some(bad) = key.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(ArgumentError::value(
            "key",
            format!("must not contain whitespace or control characters, found {bad:?} in {key:?}"),
        ));
    }
    if usage == KeyUse::Put && key == "*" {
        return Err(ArgumentError::value(
            "key",
            "'*' is the wildcard of get and cannot be stored with put",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_keys_pass() {
        for key in ["huginn.cpu", "a", "ключ.метрика", "x-y_z:1"] {
            assert_eq!(validate_key(key, KeyUse::Put), Ok(()));
            assert_eq!(validate_key(key, KeyUse::Get), Ok(()));
        }
    }

    #[test]
    fn the_ascii_fast_path_agrees_with_the_unicode_rule() {
        for byte in 0u8..=0x7f {
            let key = format!("a{}b", byte as char);
            let c = byte as char;
            let expected_ok = !(c.is_whitespace() || c.is_control());
            assert_eq!(
                validate_key(&key, KeyUse::Put).is_ok(),
                expected_ok,
                "{byte:#x}"
            );
        }
    }

    #[test]
    fn wildcard_is_for_get_only() {
        assert_eq!(validate_key("*", KeyUse::Get), Ok(()));
        let err = validate_key("*", KeyUse::Put).unwrap_err();
        assert_eq!((err.argument, err.kind), ("key", ArgumentErrorKind::Value));
    }

    #[test]
    fn separators_and_control_characters_are_refused() {
        for key in [
            "",
            "a b",
            "a\nput x 1 1",
            "tab\there",
            "cr\r",
            "nul\0",
            "nbsp\u{a0}",
            "\u{2028}",
        ] {
            for usage in [KeyUse::Put, KeyUse::Get] {
                let err = validate_key(key, usage).unwrap_err();
                assert_eq!(err.argument, "key", "{key:?}");
                assert_eq!(err.kind, ArgumentErrorKind::Value);
            }
        }
    }
}
