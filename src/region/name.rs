//! Object names and their `/dev/shm` file names.

use crate::error::{Error, Result};

/// The prefix of every shared-memory object interproc creates: `/dev/shm/interproc.<name>`.
pub const PREFIX: &str = "interproc.";

/// The longest name accepted.
pub const MAX_LEN: usize = 64;

/// A validated object name: 1..=64 characters of `[A-Za-z0-9_.-]`, not starting with `.`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Name(String);

impl Name {
    /// Validates `name`.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for anything but 1..=64 characters of `[A-Za-z0-9_.-]` not
    /// starting with `.`.
    pub fn new(name: &str) -> Result<Name> {
        let ok = (1..=MAX_LEN).contains(&name.len())
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if ok {
            Ok(Name(name.to_owned()))
        } else {
            Err(Error::InvalidName)
        }
    }

    /// The name as the user gave it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The shared-memory object's name: `interproc.<name>`.
    pub fn shm_name(&self) -> String {
        format!("{PREFIX}{}", self.0)
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet() {
        for ok in ["a", "A-z_0.9", "x.y", &"n".repeat(64), "-lead", "_"] {
            assert!(Name::new(ok).is_ok(), "{ok:?}");
        }
        assert_eq!(Name::new("q1").unwrap().shm_name(), "interproc.q1");
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            ".hidden",
            "a/b",
            "a b",
            "é",
            "a\0",
            &"n".repeat(65),
            "..",
            "a:b",
            "/x",
        ] {
            assert!(matches!(Name::new(bad), Err(Error::InvalidName)), "{bad:?}");
        }
    }
}
