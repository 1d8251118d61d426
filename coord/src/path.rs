//! Znode paths: `/a/b/c`, absolute, no trailing slash, no empty, `.` or
//! `..` components, no control characters. The root is `/`.

use crate::types::{CoordError, PATH_BYTES_MAX};

/// Digits of the sequence suffix of sequential nodes (`c_0000000007`).
pub const SEQUENCE_DIGITS: usize = 10;

/// Checks `path`; `Ok(())` if it is a valid znode path.
pub fn validate(path: &str) -> Result<(), CoordError> {
    let bad = |reason: &str| {
        Err(CoordError::BadPath {
            path: path.chars().take(200).collect(),
            reason: reason.to_string(),
        })
    };
    if path.len() > PATH_BYTES_MAX {
        return bad("longer than 1024 bytes");
    }
    if !path.starts_with('/') {
        return bad("must start with '/'");
    }
    if path == "/" {
        return Ok(());
    }
    if path.ends_with('/') {
        return bad("must not end with '/'");
    }
    for component in path[1..].split('/') {
        if component.is_empty() {
            return bad("empty component ('//')");
        }
        if component == "." || component == ".." {
            return bad("relative components ('.' or '..') are not allowed");
        }
        if component.chars().any(char::is_control) {
            return bad("control characters are not allowed");
        }
    }
    Ok(())
}

/// The parent of a valid, non-root path.
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(at) => &path[..at],
    }
}

/// The last component of a valid, non-root path.
pub fn name(path: &str) -> &str {
    match path.rfind('/') {
        Some(at) => &path[at + 1..],
        None => path,
    }
}

/// Joins a parent path and a child name.
pub fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// Appends the zero-padded sequence suffix.
pub fn with_sequence(prefix: &str, sequence: u64) -> String {
    format!("{prefix}{sequence:0width$}", width = SEQUENCE_DIGITS)
}

/// The sequence number of a sequential node's name (its trailing
/// [`SEQUENCE_DIGITS`] digits), if it has one.
pub fn sequence_of(name: &str) -> Option<u64> {
    if name.len() < SEQUENCE_DIGITS {
        return None;
    }
    let digits = &name[name.len() - SEQUENCE_DIGITS..];
    if digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_and_invalid_paths() {
        for good in ["/", "/a", "/a/b", "/election/c_0000000001", "/a b/ü"] {
            assert!(validate(good).is_ok(), "{good}");
        }
        for bad in ["", "a", "/a/", "//", "/a//b", "/a/./b", "/..", "/a\u{0}b"] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
        assert!(validate(&format!("/{}", "x".repeat(2000))).is_err());
    }

    #[test]
    fn parent_name_join_sequence() {
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/a/b/c"), "/a/b");
        assert_eq!(name("/a/b/c"), "c");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert_eq!(with_sequence("/e/c_", 7), "/e/c_0000000007");
        assert_eq!(sequence_of("c_0000000007"), Some(7));
        assert_eq!(sequence_of("c_7"), None);
        assert_eq!(sequence_of("0000000012"), Some(12));
    }
}
