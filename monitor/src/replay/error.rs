//! Why a capture file could not be read. Every variant names the byte offset
//! where reading stopped.
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CaptureError {
    #[error("capture of {len} bytes is too short to hold a file header (at byte offset 0)")]
    TooShort { len: usize },

    #[error(
        "not a pcap or pcapng capture: magic number {} at byte offset 0",
        hex(magic)
    )]
    UnknownFormat { magic: [u8; 4] },

    #[error(
        "capture truncated at byte offset {offset}: the {what} there needs {needed} bytes, \
         {present} remain"
    )]
    Truncated {
        offset: usize,
        what: String,
        needed: usize,
        present: usize,
    },

    #[error(
        "corrupt capture at byte offset {offset}: a record of {len} bytes, more than the \
         {limit} a capture can hold"
    )]
    RecordTooLong { offset: usize, len: u64, limit: u32 },

    #[error("corrupt capture at byte offset {offset}: {what}: {detail}")]
    Corrupt {
        offset: usize,
        what: String,
        detail: String,
    },

    #[error(
        "corrupt capture at byte offset {offset}: packet names interface {interface}, \
         which no interface description block declared"
    )]
    UnknownInterface { offset: usize, interface: u32 },

    #[error(
        "unsupported link type {link_type} at byte offset {offset} (replay reads Ethernet 1, \
         raw IP 101/228/229, Linux cooked 113 and 276)"
    )]
    UnsupportedLinkType { offset: usize, link_type: u32 },
}

impl CaptureError {
    /// Where reading stopped.
    pub fn offset(&self) -> usize {
        match self {
            CaptureError::TooShort { .. } | CaptureError::UnknownFormat { .. } => 0,
            CaptureError::Truncated { offset, .. }
            | CaptureError::RecordTooLong { offset, .. }
            | CaptureError::Corrupt { offset, .. }
            | CaptureError::UnknownInterface { offset, .. }
            | CaptureError::UnsupportedLinkType { offset, .. } => *offset,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    let digits: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("0x{digits}")
}
