//! [`Nick`]: a nickname stored inline (no heap allocation), since there is one per user and
//! tens of thousands of users.

use super::command::is_valid_nick;
use std::fmt;

/// The longest nickname, in bytes (nicknames are ASCII).
pub const MAX_NICK: usize = 24;

/// A valid nickname: 1–24 ASCII letters, digits, `_` or `-`, starting with a letter.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nick {
    len: u8,
    bytes: [u8; MAX_NICK],
}

impl Nick {
    /// The nickname, if `s` is a valid one.
    pub fn new(s: &str) -> Option<Nick> {
        if !is_valid_nick(s) {
            return None;
        }
        let mut bytes = [0; MAX_NICK];
        bytes.get_mut(..s.len())?.copy_from_slice(s.as_bytes());
        Some(Nick {
            len: s.len() as u8,
            bytes,
        })
    }

    /// The nickname as typed.
    pub fn as_str(&self) -> &str {
        let bytes = self.bytes.get(..usize::from(self.len)).unwrap_or_default();
        // Only ASCII is ever stored.
        std::str::from_utf8(bytes).unwrap_or_default()
    }

    /// The lower-cased form, for case-insensitive comparison.
    pub fn lower(&self) -> Nick {
        let mut n = *self;
        n.bytes.make_ascii_lowercase();
        n
    }
}

impl std::ops::Deref for Nick {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Nick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Nick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_valid_nicknames_only() {
        let n = Nick::new("Alice_9").unwrap();
        assert_eq!(n.as_str(), "Alice_9");
        assert_eq!(n.lower().as_str(), "alice_9");
        assert_eq!(n.lower(), Nick::new("ALICE_9").unwrap().lower());
        assert!(Nick::new(&"a".repeat(24)).is_some());
        assert!(Nick::new(&"a".repeat(25)).is_none());
        assert!(Nick::new("9x").is_none());
        assert!(Nick::new("").is_none());
        assert!(std::mem::size_of::<Nick>() <= 25);
    }
}
