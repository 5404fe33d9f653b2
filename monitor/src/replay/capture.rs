//! pcap and pcapng files → frames (link-layer bytes with their link type and
//! timestamp), with the byte offset of every record so that a cut or corrupt
//! file is reported where it goes wrong.
//!
//! pcap-file's slice parsers do the format work. Two things are done here
//! instead: pcap records are read raw, because pcap-file refuses a record
//! whose original length exceeds the snapshot length (every capture taken
//! with `-s`); and pcapng timestamps are scaled by the interface's
//! `if_tsresol`, which pcap-file leaves to the caller.
use std::time::{Duration, SystemTime};

use pcap_file::{
    Endianness, PcapError, TsResolution,
    pcap::{PcapHeader, PcapParser},
    pcapng::{
        Block, PcapNgParser,
        blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption},
    },
};

use super::error::CaptureError;

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Byte offset of its record in the file.
    pub offset: usize,
    pub timestamp: SystemTime,
    /// LINKTYPE_* of the interface it was captured on.
    pub link_type: u32,
    /// The bytes captured, from the link-layer header on.
    pub data: &'a [u8],
    /// The capture kept fewer bytes than the packet had (snapshot length).
    pub truncated: bool,
}

/// Reads frames from a whole capture file held in memory.
pub struct CaptureReader<'a> {
    file: &'a [u8],
    rest: &'a [u8],
    format: Format,
    /// Timestamp of the last frame, for pcapng simple packets (they have none).
    last_timestamp: SystemTime,
}

enum Format {
    Pcap(PcapParser),
    PcapNg(PcapNgParser),
}

const PCAP_MAGICS: [[u8; 4]; 4] = [
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
    [0x4d, 0x3c, 0xb2, 0xa1],
];
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
/// pcap file header and record header sizes.
const PCAP_HEADER_LEN: usize = 24;
const PCAP_RECORD_HEADER_LEN: usize = 16;

impl<'a> CaptureReader<'a> {
    /// Recognizes the format by its magic number and reads the file header.
    pub fn new(file: &'a [u8]) -> Result<CaptureReader<'a>, CaptureError> {
        let Some(magic) = file.first_chunk::<4>() else {
            return Err(CaptureError::TooShort { len: file.len() });
        };
        let (rest, format) = if PCAP_MAGICS.contains(magic) {
            let (rest, parser) = PcapParser::new(file).map_err(|e| match e {
                PcapError::IncompleteBuffer => CaptureError::Truncated {
                    offset: 0,
                    what: "pcap file header".into(),
                    needed: PCAP_HEADER_LEN,
                    present: file.len(),
                },
                e => corrupt(0, "pcap file header", &e),
            })?;
            (rest, Format::Pcap(parser))
        } else if *magic == PCAPNG_MAGIC {
            let (rest, parser) = PcapNgParser::new(file)
                .map_err(|e| block_error(file, 0, Endianness::Big, "section header block", e))?;
            (rest, Format::PcapNg(parser))
        } else {
            return Err(CaptureError::UnknownFormat { magic: *magic });
        };
        Ok(CaptureReader {
            file,
            rest,
            format,
            last_timestamp: SystemTime::UNIX_EPOCH,
        })
    }

    /// Byte offset of the next record.
    pub fn offset(&self) -> usize {
        self.file.len() - self.rest.len()
    }

    /// The next frame; `None` at the end of the file. Blocks that carry no
    /// packet (statistics, name resolution, new sections) are stepped over.
    pub fn next_frame(&mut self) -> Option<Result<Frame<'a>, CaptureError>> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let offset = self.offset();
            let result = match &mut self.format {
                Format::Pcap(parser) => pcap_record(parser.header(), self.rest, offset),
                Format::PcapNg(parser) => {
                    pcapng_block(parser, self.rest, offset, self.last_timestamp)
                }
            };
            match result {
                Ok((rest, frame)) => {
                    self.rest = rest;
                    if let Some(frame) = frame {
                        self.last_timestamp = frame.timestamp;
                        return Some(Ok(frame));
                    }
                }
                Err(error) => {
                    // Nothing after a broken record can be trusted to be
                    // aligned: stop here.
                    self.rest = &[];
                    return Some(Err(error));
                }
            }
        }
    }
}

fn pcap_record<'a>(
    header: PcapHeader,
    rest: &'a [u8],
    offset: usize,
) -> Result<(&'a [u8], Option<Frame<'a>>), CaptureError> {
    let read_u32 = |bytes: &[u8]| {
        let bytes = [bytes[0], bytes[1], bytes[2], bytes[3]];
        match header.endianness {
            Endianness::Big => u32::from_be_bytes(bytes),
            Endianness::Little => u32::from_le_bytes(bytes),
        }
    };
    let Some(record_header) = rest.get(..PCAP_RECORD_HEADER_LEN) else {
        return Err(CaptureError::Truncated {
            offset,
            what: "packet record header".into(),
            needed: PCAP_RECORD_HEADER_LEN,
            present: rest.len(),
        });
    };
    let (ts_sec, ts_frac) = (read_u32(&record_header[0..]), read_u32(&record_header[4..]));
    let (incl_len, orig_len) = (
        read_u32(&record_header[8..]),
        read_u32(&record_header[12..]),
    );
    // A record longer than the snapshot length is a corrupt length field,
    // whatever follows it; only a plausible length is a cut file.
    let limit = header.snaplen.max(MAX_SNAPLEN);
    if incl_len > limit {
        return Err(CaptureError::RecordTooLong {
            offset,
            len: u64::from(incl_len),
            limit,
        });
    }
    let len = incl_len as usize;
    let Some(data) = rest[PCAP_RECORD_HEADER_LEN..].get(..len) else {
        return Err(CaptureError::Truncated {
            offset,
            what: "packet record".into(),
            needed: PCAP_RECORD_HEADER_LEN + len,
            present: rest.len(),
        });
    };
    let nanos = match header.ts_resolution {
        TsResolution::MicroSecond => u64::from(ts_frac) * 1_000,
        TsResolution::NanoSecond => u64::from(ts_frac),
    };
    if nanos >= 1_000_000_000 {
        return Err(CaptureError::Corrupt {
            offset,
            what: "packet record".into(),
            detail: format!("timestamp fraction {ts_frac} is a second or more"),
        });
    }
    let timestamp = epoch_plus(Duration::new(u64::from(ts_sec), nanos as u32));
    let frame = Frame {
        offset,
        timestamp,
        link_type: u32::from(header.datalink),
        data,
        truncated: incl_len < orig_len,
    };
    Ok((&rest[PCAP_RECORD_HEADER_LEN + len..], Some(frame)))
}

/// The largest snapshot length tcpdump and Wireshark use; a file header
/// announcing less still gets this much slack.
const MAX_SNAPLEN: u32 = 262_144;

fn pcapng_block<'a>(
    parser: &mut PcapNgParser,
    rest: &'a [u8],
    offset: usize,
    last_timestamp: SystemTime,
) -> Result<(&'a [u8], Option<Frame<'a>>), CaptureError> {
    let endianness = parser.section().endianness;
    let (rest, block) = parser
        .next_block(rest)
        .map_err(|e| block_error(rest, offset, endianness, "block", e))?;
    let (interface_id, raw_timestamp, data, original_len) = match block {
        Block::EnhancedPacket(epb) => (
            epb.interface_id,
            // pcap-file reads the 64-bit timestamp as nanoseconds; it is
            // in units of the interface's if_tsresol.
            Some(u64::try_from(epb.timestamp.as_nanos()).unwrap_or(u64::MAX)),
            epb.data,
            epb.original_len,
        ),
        Block::SimplePacket(spb) => (0, None, spb.data, spb.original_len),
        _ => return Ok((rest, None)),
    };
    let Some(interface) = parser.interfaces().get(interface_id as usize) else {
        return Err(CaptureError::UnknownInterface {
            offset,
            interface: interface_id,
        });
    };
    let data: &'a [u8] = match data {
        std::borrow::Cow::Borrowed(data) => data,
        // pcap-file borrows packet data from the input slice.
        std::borrow::Cow::Owned(_) => {
            return Err(CaptureError::Corrupt {
                offset,
                what: "packet block".into(),
                detail: "packet data not in the file".into(),
            });
        }
    };
    let timestamp = match raw_timestamp {
        Some(units) => epoch_plus(scale(units, ts_resolution(interface))),
        None => last_timestamp,
    };
    Ok((
        rest,
        Some(Frame {
            offset,
            timestamp,
            link_type: u32::from(interface.linktype),
            data,
            truncated: (data.len() as u64) < u64::from(original_len),
        }),
    ))
}

/// `if_tsresol`: units of 10^-n seconds, or 2^-n with the top bit set;
/// microseconds when absent.
fn ts_resolution(interface: &InterfaceDescriptionBlock<'_>) -> u8 {
    interface
        .options
        .iter()
        .find_map(|option| match option {
            InterfaceDescriptionOption::IfTsResol(resolution) => Some(*resolution),
            _ => None,
        })
        .unwrap_or(6)
}

/// `units` of the resolution as a duration; saturates instead of overflowing.
fn scale(units: u64, resolution: u8) -> Duration {
    let units = u128::from(units);
    let exponent = u32::from(resolution & 0x7f);
    let nanos = if resolution & 0x80 == 0 {
        match exponent.checked_sub(9) {
            Some(finer) => 10u128
                .checked_pow(finer)
                .map_or(0, |divisor| units / divisor),
            None => units * 10u128.pow(9 - exponent),
        }
    } else {
        (units * 1_000_000_000) >> exponent
    };
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    Duration::new(secs, (nanos % 1_000_000_000) as u32)
}

/// The Unix epoch plus `since`, capped at the end of year 9999 (what RFC 3339
/// timestamps can say).
fn epoch_plus(since: Duration) -> SystemTime {
    const MAX_SECS: u64 = 253_402_300_799;
    let capped = since.min(Duration::new(MAX_SECS, 999_999_999));
    SystemTime::UNIX_EPOCH + capped
}

fn corrupt(offset: usize, what: &str, error: &PcapError) -> CaptureError {
    CaptureError::Corrupt {
        offset,
        what: what.into(),
        detail: error.to_string(),
    }
}

/// A pcapng block that did not parse: cut short, too long to be real, or
/// malformed inside.
fn block_error(
    rest: &[u8],
    offset: usize,
    endianness: Endianness,
    what: &str,
    error: PcapError,
) -> CaptureError {
    // Block type, then total length (the section header's own length is in
    // the byte order its magic announces).
    let block_len = rest.get(4..8).map(|b| {
        let bytes = [b[0], b[1], b[2], b[3]];
        let big = u32::from_be_bytes(bytes);
        let little = u32::from_le_bytes(bytes);
        match (rest.get(..4) == Some(&PCAPNG_MAGIC[..]), endianness) {
            (true, _) => match rest.get(8..12) {
                Some([0x4d, 0x3c, 0x2b, 0x1a]) => little,
                _ => big,
            },
            (false, Endianness::Big) => big,
            (false, Endianness::Little) => little,
        }
    });
    match (error, block_len) {
        (PcapError::IncompleteBuffer, Some(len)) if u64::from(len) > MAX_BLOCK_LEN => {
            CaptureError::RecordTooLong {
                offset,
                len: u64::from(len),
                limit: MAX_BLOCK_LEN as u32,
            }
        }
        (PcapError::IncompleteBuffer, len) => CaptureError::Truncated {
            offset,
            what: what.into(),
            needed: len.map_or(12, |len| len as usize).max(12),
            present: rest.len(),
        },
        (error, _) => corrupt(offset, what, &error),
    }
}

/// Largest pcapng block believed: a maximal snapshot plus generous options.
const MAX_BLOCK_LEN: u64 = MAX_SNAPLEN as u64 + 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_pcapng_timestamps_by_the_interface_resolution() {
        assert_eq!(scale(1_500_000, 6), Duration::from_millis(1500));
        assert_eq!(scale(1_500_000_000, 9), Duration::from_millis(1500));
        assert_eq!(scale(15, 1), Duration::from_millis(1500));
        assert_eq!(scale(3, 0x81), Duration::from_millis(1500));
        assert_eq!(scale(1_500_000_000_000, 12), Duration::from_millis(1500));
        // Absurd resolutions and values do not panic.
        let _ = scale(u64::MAX, 0);
        let _ = scale(u64::MAX, 0x7f);
        let _ = scale(u64::MAX, 0xff);
        let far = epoch_plus(scale(u64::MAX, 0));
        assert!(far > SystemTime::UNIX_EPOCH);
    }
}
