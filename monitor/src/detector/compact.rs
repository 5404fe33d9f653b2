//! Names the detector holds past the message they came in: the question of
//! a waiting query, the name a recent answer gave an address. Held as wire
//! labels, compared against a message's names without building text.
use std::sync::Arc;

use hickory_proto::rr::Name;

/// A name held compactly (a `Name` is 80 bytes before its heap part): its
/// labels as on the wire, each a length byte and the bytes, in the letter
/// case they were sent in. Clones share the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CompactName(Arc<[u8]>);

impl CompactName {
    pub fn new(name: &Name) -> CompactName {
        let mut bytes = Vec::with_capacity(name.len() + 1);
        for label in name.iter() {
            // A label is at most 63 bytes.
            bytes.push(label.len() as u8);
            bytes.extend_from_slice(label);
        }
        CompactName(bytes.into())
    }

    fn labels(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = &self.0[..];
        std::iter::from_fn(move || {
            let (&len, tail) = rest.split_first()?;
            let (label, tail) = tail.split_at(usize::from(len).min(tail.len()));
            rest = tail;
            Some(label)
        })
    }

    fn compare(&self, name: &Name, same: impl Fn(&[u8], &[u8]) -> bool) -> bool {
        let mut held = self.labels();
        let mut given = name.iter();
        loop {
            match (held.next(), given.next()) {
                (None, None) => return true,
                (Some(a), Some(b)) if same(a, b) => {}
                _ => return false,
            }
        }
    }

    /// The same name, ignoring letter case (RFC 4343).
    pub fn matches(&self, name: &Name) -> bool {
        self.compare(name, <[u8]>::eq_ignore_ascii_case)
    }

    /// The same name in the same letter case.
    pub fn spelled_as(&self, name: &Name) -> bool {
        self.compare(name, |a, b| a == b)
    }

    /// The name, for an alert's text.
    pub fn to_name(&self) -> Name {
        let mut name = Name::from_labels(self.labels()).unwrap_or_default();
        name.set_fqdn(true);
        name
    }

    /// Hostname text (lower case, no trailing dot), as
    /// [`super::names::hostname`] writes it: built only for an alert.
    pub fn hostname(&self) -> String {
        super::names::hostname(&self.to_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_name_compares_by_labels_and_case() {
        let sent = Name::from_ascii("dB.Lab.test.").unwrap();
        let held = CompactName::new(&sent);
        assert!(held.matches(&Name::from_ascii("db.lab.TEST.").unwrap()));
        assert!(held.spelled_as(&sent));
        assert!(!held.spelled_as(&Name::from_ascii("db.lab.test.").unwrap()));
        assert!(!held.matches(&Name::from_ascii("lab.test.").unwrap()));
        assert!(!held.matches(&Name::from_ascii("x.db.lab.test.").unwrap()));
        let joined = Name::from_labels(vec![&b"dB.Lab"[..], &b"test"[..]]).unwrap();
        assert!(!held.matches(&joined));
        assert_eq!(held.to_name().to_string(), "dB.Lab.test.");
    }
}
