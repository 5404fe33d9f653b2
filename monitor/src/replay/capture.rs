//! pcap and pcapng captures → frames (link-layer bytes with their link type
//! and timestamp), with the byte offset of every record so that a cut or
//! corrupt file is reported where it goes wrong.
//!
//! The input is streamed ([`Source`]): any `Read` (a file, a pipe, a
//! device) is read a record at a time into a buffer that holds at most one
//! record, and never past a byte limit, so neither `/dev/zero` nor a huge
//! file can make replay hold more than a few hundred KiB.
//!
//! pcap-file's slice parsers do the format work. Two things are done here
//! instead: pcap records are read raw, because pcap-file refuses a record
//! whose original length exceeds the snapshot length (every capture taken
//! with `-s`); and pcapng timestamps are scaled by the interface's
//! `if_tsresol`, which pcap-file leaves to the caller.
use std::{
    io::{ErrorKind, Read},
    time::{Duration, SystemTime},
};

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

/// Reads frames from a capture, streamed from any reader.
pub struct CaptureReader<R> {
    source: Source<R>,
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
/// The smallest pcapng block: type, length, trailing length.
const PCAPNG_MIN_BLOCK: usize = 12;
/// Interface description blocks believed in one section (pcap-file keeps
/// them all).
const MAX_INTERFACES: usize = 4096;

/// What a parse of the bytes at the read position came to.
enum Step<T> {
    /// `consumed` bytes made `T`.
    Done(usize, T),
    /// The record there is `needed` bytes long; more must be read.
    Need {
        needed: usize,
        what: &'static str,
    },
    Fail(CaptureError),
}

/// A frame's place in its record, and what is known of it.
struct FrameAt {
    data: std::ops::Range<usize>,
    timestamp: SystemTime,
    link_type: u32,
    truncated: bool,
}

impl<R: Read> CaptureReader<R> {
    /// Recognizes the format by its magic number and reads the file header.
    /// At most `limit` bytes of `input` are read; more is an error.
    pub fn new(input: R, limit: u64) -> Result<CaptureReader<R>, CaptureError> {
        let mut source = Source::new(input, limit);
        source.fill(4)?;
        let Some(magic) = source.available().first_chunk::<4>().copied() else {
            return Err(CaptureError::TooShort {
                len: source.available().len(),
            });
        };
        let format = if PCAP_MAGICS.contains(&magic) {
            Format::Pcap(
                source
                    .parse(|bytes, _| match PcapParser::new(bytes) {
                        Ok((rest, parser)) => Step::Done(bytes.len() - rest.len(), parser),
                        Err(PcapError::IncompleteBuffer) => Step::Need {
                            needed: PCAP_HEADER_LEN,
                            what: "pcap file header",
                        },
                        Err(e) => Step::Fail(corrupt(0, "pcap file header", &e)),
                    })?
                    .1,
            )
        } else if magic == PCAPNG_MAGIC {
            Format::PcapNg(
                source
                    .parse(|bytes, _| match PcapNgParser::new(bytes) {
                        Ok((rest, parser)) => Step::Done(bytes.len() - rest.len(), parser),
                        Err(e) => block_error(bytes, 0, Endianness::Big, "section header block", e),
                    })?
                    .1,
            )
        } else {
            return Err(CaptureError::UnknownFormat { magic });
        };
        Ok(CaptureReader {
            source,
            format,
            last_timestamp: SystemTime::UNIX_EPOCH,
        })
    }

    /// Byte offset of the next record.
    pub fn offset(&self) -> usize {
        self.source.offset()
    }

    /// The next frame; `None` at the end of the file. Blocks that carry no
    /// packet (statistics, name resolution, new sections) are stepped over.
    pub fn next_frame(&mut self) -> Option<Result<Frame<'_>, CaptureError>> {
        loop {
            if let Err(error) = self.source.fill(1) {
                return Some(Err(self.stop(error)));
            }
            if self.source.available().is_empty() {
                return None;
            }
            let last_timestamp = self.last_timestamp;
            let format = &mut self.format;
            let parsed = self.source.parse(|bytes, offset| match format {
                Format::Pcap(parser) => pcap_record(parser.header(), bytes, offset),
                Format::PcapNg(parser) => pcapng_block(parser, bytes, offset, last_timestamp),
            });
            let (start, frame) = match parsed {
                Ok(parsed) => parsed,
                Err(error) => return Some(Err(self.stop(error))),
            };
            if let Some(frame) = frame {
                self.last_timestamp = frame.timestamp;
                let data = self
                    .source
                    .buf
                    .get(start + frame.data.start..start + frame.data.end);
                return Some(Ok(Frame {
                    offset: self.source.base + start,
                    timestamp: frame.timestamp,
                    link_type: frame.link_type,
                    data: data.unwrap_or_default(),
                    truncated: frame.truncated,
                }));
            }
        }
    }

    /// Nothing after a broken record can be trusted to be aligned: reading
    /// stops here.
    fn stop(&mut self, error: CaptureError) -> CaptureError {
        self.source.finished = true;
        self.source.pos = self.source.end;
        error
    }
}

/// The input, read into a buffer that holds the record being parsed.
struct Source<R> {
    input: R,
    /// Bytes read are `buf[..end]`; the rest is room for the next read.
    buf: Vec<u8>,
    end: usize,
    /// Start of the bytes not yet parsed, in `buf`.
    pos: usize,
    /// File offset of `buf[0]`.
    base: usize,
    /// The input ended, or reading was stopped.
    finished: bool,
    /// Bytes read so far, and the most that may be.
    read: u64,
    limit: u64,
}

/// Bytes asked of the input per read.
const READ_CHUNK: usize = 64 * 1024;

impl<R: Read> Source<R> {
    fn new(input: R, limit: u64) -> Source<R> {
        Source {
            input,
            buf: Vec::new(),
            end: 0,
            pos: 0,
            base: 0,
            finished: false,
            read: 0,
            limit,
        }
    }

    fn offset(&self) -> usize {
        self.base + self.pos
    }

    fn available(&self) -> &[u8] {
        self.buf.get(self.pos..self.end).unwrap_or_default()
    }

    /// Reads until `want` bytes are buffered past the read position or the
    /// input ends.
    fn fill(&mut self, want: usize) -> Result<(), CaptureError> {
        if self.available().len() >= want || self.finished {
            return Ok(());
        }
        // Only the unparsed rest moves: at most one record.
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.base += self.pos;
        self.pos = 0;
        while self.end < want && !self.finished {
            let room = self.limit.saturating_sub(self.read);
            // At the limit, one byte more says whether the input goes on.
            let chunk = usize::try_from(room)
                .unwrap_or(usize::MAX)
                .clamp(1, READ_CHUNK.max(want - self.end));
            let len = self.end;
            if self.buf.len() < len + chunk {
                self.buf.resize(len + chunk, 0);
            }
            let got = match self.input.read(&mut self.buf[len..len + chunk]) {
                Ok(0) => {
                    self.finished = true;
                    0
                }
                Ok(got) => got,
                Err(e) if e.kind() == ErrorKind::Interrupted => 0,
                Err(e) => {
                    return Err(CaptureError::Read {
                        offset: self.base + len,
                        detail: e.to_string(),
                    });
                }
            };
            self.end += got;
            self.read += got as u64;
            if self.read > self.limit {
                self.finished = true;
                return Err(CaptureError::TooLarge { limit: self.limit });
            }
        }
        Ok(())
    }

    /// Parses at the read position, reading more while the record there is
    /// not whole; on success the record's bytes are consumed and its start
    /// in `buf` is returned with the result.
    fn parse<T>(
        &mut self,
        mut parse: impl FnMut(&[u8], usize) -> Step<T>,
    ) -> Result<(usize, T), CaptureError> {
        loop {
            let offset = self.offset();
            match parse(self.available(), offset) {
                Step::Done(consumed, value) => {
                    let start = self.pos;
                    self.pos += consumed;
                    return Ok((start, value));
                }
                Step::Need { needed, what } => {
                    let present = self.available().len();
                    if present >= needed {
                        return Err(CaptureError::Corrupt {
                            offset,
                            what: what.into(),
                            detail: format!("unreadable in its {needed} bytes"),
                        });
                    }
                    if self.finished {
                        return Err(CaptureError::Truncated {
                            offset,
                            what: what.into(),
                            needed,
                            present,
                        });
                    }
                    self.fill(needed)?;
                }
                Step::Fail(error) => return Err(error),
            }
        }
    }
}

impl<T> CaptureReader<T> {
    #[cfg(test)]
    fn buffered(&self) -> usize {
        self.source.buf.capacity()
    }
}

fn pcap_record(header: PcapHeader, rest: &[u8], offset: usize) -> Step<Option<FrameAt>> {
    let read_u32 = |bytes: [u8; 4]| match header.endianness {
        Endianness::Big => u32::from_be_bytes(bytes),
        Endianness::Little => u32::from_le_bytes(bytes),
    };
    let Some(record_header) = rest.first_chunk::<PCAP_RECORD_HEADER_LEN>() else {
        return Step::Need {
            needed: PCAP_RECORD_HEADER_LEN,
            what: "packet record header",
        };
    };
    let field = |i: usize| {
        let bytes = [
            record_header[i],
            record_header[i + 1],
            record_header[i + 2],
            record_header[i + 3],
        ];
        read_u32(bytes)
    };
    let (ts_sec, ts_frac, incl_len, orig_len) = (field(0), field(4), field(8), field(12));
    // A record longer than the snapshot length is a corrupt length field,
    // whatever follows it; only a plausible length is a cut file.
    let limit = header.snaplen.clamp(MAX_SNAPLEN, MAX_RECORD);
    if incl_len > limit {
        return Step::Fail(CaptureError::RecordTooLong {
            offset,
            len: u64::from(incl_len),
            limit,
        });
    }
    if incl_len == 0 && orig_len == 0 {
        // No packet is empty on the wire: zeros where a record should be (a
        // hole in a sparse file, a device of zeros).
        return Step::Fail(CaptureError::Corrupt {
            offset,
            what: "packet record".into(),
            detail: "a record of no bytes of a packet of no bytes".into(),
        });
    }
    let len = incl_len as usize;
    if rest.len() < PCAP_RECORD_HEADER_LEN + len {
        return Step::Need {
            needed: PCAP_RECORD_HEADER_LEN + len,
            what: "packet record",
        };
    }
    let nanos = match header.ts_resolution {
        TsResolution::MicroSecond => u64::from(ts_frac) * 1_000,
        TsResolution::NanoSecond => u64::from(ts_frac),
    };
    if nanos >= 1_000_000_000 {
        return Step::Fail(CaptureError::Corrupt {
            offset,
            what: "packet record".into(),
            detail: format!("timestamp fraction {ts_frac} is a second or more"),
        });
    }
    let frame = FrameAt {
        data: PCAP_RECORD_HEADER_LEN..PCAP_RECORD_HEADER_LEN + len,
        timestamp: epoch_plus(Duration::new(u64::from(ts_sec), nanos as u32)),
        link_type: u32::from(header.datalink),
        truncated: incl_len < orig_len,
    };
    Step::Done(PCAP_RECORD_HEADER_LEN + len, Some(frame))
}

/// The largest snapshot length tcpdump and Wireshark use; a file header
/// announcing less still gets this much slack.
const MAX_SNAPLEN: u32 = 262_144;
/// The largest pcap record believed whatever the file header says, so that
/// one record never costs more memory than this.
const MAX_RECORD: u32 = 16 << 20;

fn pcapng_block(
    parser: &mut PcapNgParser,
    bytes: &[u8],
    offset: usize,
    last_timestamp: SystemTime,
) -> Step<Option<FrameAt>> {
    let endianness = parser.section().endianness;
    let (rest, block) = match parser.next_block(bytes) {
        Ok(parsed) => parsed,
        Err(e) => return block_error(bytes, offset, endianness, "block", e),
    };
    let consumed = bytes.len() - rest.len();
    if parser.interfaces().len() > MAX_INTERFACES {
        return Step::Fail(CaptureError::Corrupt {
            offset,
            what: "interface description block".into(),
            detail: format!("more than {MAX_INTERFACES} interfaces in one section"),
        });
    }
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
        _ => return Step::Done(consumed, None),
    };
    let Some(interface) = parser.interfaces().get(interface_id as usize) else {
        return Step::Fail(CaptureError::UnknownInterface {
            offset,
            interface: interface_id,
        });
    };
    // pcap-file borrows packet data from the input; its place in the block
    // is where the borrow points.
    let start = match &data {
        std::borrow::Cow::Borrowed(data) => {
            (data.as_ptr() as usize).checked_sub(bytes.as_ptr() as usize)
        }
        std::borrow::Cow::Owned(_) => None,
    };
    let Some(start) = start.filter(|start| start + data.len() <= consumed) else {
        return Step::Fail(CaptureError::Corrupt {
            offset,
            what: "packet block".into(),
            detail: "packet data not in the block".into(),
        });
    };
    let timestamp = match raw_timestamp {
        Some(units) => epoch_plus(scale(units, ts_resolution(interface))),
        None => last_timestamp,
    };
    let frame = FrameAt {
        data: start..start + data.len(),
        timestamp,
        link_type: u32::from(interface.linktype),
        truncated: (data.len() as u64) < u64::from(original_len),
    };
    Step::Done(consumed, Some(frame))
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

/// The total length a pcapng block at the start of `bytes` declares, in
/// the byte order of its section (a section header's own, in the order its
/// byte-order magic announces).
fn block_len(bytes: &[u8], endianness: Endianness) -> Option<u32> {
    let field = *bytes.get(4..8)?.first_chunk::<4>()?;
    let little = match bytes.first_chunk::<4>() {
        Some(&PCAPNG_MAGIC) => bytes.get(8..12)? == [0x4d, 0x3c, 0x2b, 0x1a],
        _ => endianness == Endianness::Little,
    };
    Some(if little {
        u32::from_le_bytes(field)
    } else {
        u32::from_be_bytes(field)
    })
}

/// A pcapng block that did not parse: not all read yet, too long to be
/// real, or malformed inside.
fn block_error<T>(
    bytes: &[u8],
    offset: usize,
    endianness: Endianness,
    what: &'static str,
    error: PcapError,
) -> Step<T> {
    let PcapError::IncompleteBuffer = error else {
        return Step::Fail(corrupt(offset, what, &error));
    };
    let Some(len) = block_len(bytes, endianness) else {
        return Step::Need {
            needed: PCAPNG_MIN_BLOCK,
            what,
        };
    };
    if u64::from(len) > MAX_BLOCK_LEN {
        return Step::Fail(CaptureError::RecordTooLong {
            offset,
            len: u64::from(len),
            limit: MAX_BLOCK_LEN as u32,
        });
    }
    let needed = (len as usize).max(PCAPNG_MIN_BLOCK);
    if bytes.len() >= needed {
        // The block is all there: pcap-file ran out of bytes inside it.
        return Step::Fail(CaptureError::Corrupt {
            offset,
            what: what.into(),
            detail: "a field or option runs past the end of the block".into(),
        });
    }
    Step::Need { needed, what }
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

    /// An endless input of zeros, or of valid records, is refused at the
    /// limit with a buffer of one read.
    #[test]
    fn endless_inputs_stop_at_the_limit_with_a_small_buffer() {
        let zeros = std::io::repeat(0);
        let error = CaptureReader::new(zeros, 1 << 30).err().unwrap();
        assert_eq!(error, CaptureError::UnknownFormat { magic: [0; 4] });

        let mut header = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        header.extend_from_slice(&[0; 8]);
        header.extend_from_slice(&65_535u32.to_le_bytes());
        header.extend_from_slice(&1u32.to_le_bytes());
        let mut record = vec![1, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0];
        record.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let records = std::io::Read::chain(&header[..], Repeat(record));
        let mut reader = CaptureReader::new(records, 2 << 20).unwrap();
        let mut frames = 0u64;
        let error = loop {
            match reader.next_frame() {
                Some(Ok(_)) => frames += 1,
                Some(Err(error)) => break error,
                None => panic!("an endless input ended"),
            }
        };
        assert_eq!(error, CaptureError::TooLarge { limit: 2 << 20 });
        assert!(frames > 100_000, "{frames}");
        assert!(reader.buffered() <= 2 * READ_CHUNK, "{}", reader.buffered());
        assert!(reader.next_frame().is_none(), "reading stopped");
    }

    /// Repeats its bytes forever.
    struct Repeat(Vec<u8>);

    impl std::io::Read for Repeat {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let len = buf.len().min(self.0.len());
            buf[..len].copy_from_slice(&self.0[..len]);
            let turn = len % self.0.len();
            self.0.rotate_left(turn);
            Ok(len)
        }
    }
}
