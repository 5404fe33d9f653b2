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
        "capture truncated at offset {offset}: the {what} starting at that byte offset is \
         {needed} bytes long, the file ends {present} bytes after it"
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

    #[error("cannot read the capture at byte offset {offset}: {detail}")]
    Read { offset: usize, detail: String },

    /// Streams are read only up to a limit, so that a device or an endless
    /// pipe cannot keep replay running.
    #[error(
        "capture is longer than the limit of {limit} bytes (at byte offset {limit}); \
         --max-bytes raises it"
    )]
    TooLarge { limit: u64 },

    #[error(
        "unsupported link type {link_type} at byte offset {offset} (replay reads BSD loopback \
         0/108, Ethernet 1, raw IP 101/228/229, Linux cooked 113 and 276)"
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
            | CaptureError::UnsupportedLinkType { offset, .. }
            | CaptureError::Read { offset, .. } => *offset,
            CaptureError::TooLarge { limit } => usize::try_from(*limit).unwrap_or(usize::MAX),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    let digits: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("0x{digits}")
}
