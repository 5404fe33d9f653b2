//! Structure-aware hostile DNS responses, built from choices read off the
//! fuzzer's bytes: compression pointers (to the question, forward, into
//! themselves), lying header counts and RDLENGTHs, every interesting record
//! type with well-formed or garbage RDATA, reserved label types, and cuts
//! at any offset.
//!
//! Shared by the `detector_state` fuzz target (choices from the fuzzer's
//! bytes) and the live-fire kernel test (choices from a seeded generator),
//! which includes this file by path.

/// Where the builder's choices come from.
pub trait Choices {
    fn byte(&mut self) -> u8;
    /// Up to `len` bytes of RDATA garbage.
    fn bytes(&mut self, len: usize) -> Vec<u8>;
}

/// Question names: configured ones (directly and through a CNAME), others.
pub const NAMES: [&str; 6] = [
    "db.lab.test",
    "cockroach.prod.internal",
    "billing.lab.test",
    "alias.lab.test",
    "x.example",
    "lab.test",
];

/// Record types: the usual ones, OPT (the crash), SVCB/HTTPS, CAA, DNSSEC
/// types, meta types, an unassigned one and 0.
const TYPES: [u16; 20] = [
    1, 28, 5, 2, 6, 15, 16, 12, 33, 41, 64, 65, 257, 43, 46, 47, 48, 255, 0xff00, 0,
];

const ADDRESSES_V4: [[u8; 4]; 4] = [
    [192, 0, 2, 1],
    [203, 0, 113, 66],
    [198, 51, 100, 20],
    [0, 0, 0, 0],
];

/// A response's wire bytes and whether they were cut short.
pub struct Built {
    pub bytes: Vec<u8>,
    pub cut: bool,
}

/// A name on the wire, uncompressed, letter case flipped where `case` has
/// bits set.
pub fn name(out: &mut Vec<u8>, text: &str, case: u8) {
    for (index, label) in text.split('.').enumerate() {
        out.push(label.len() as u8);
        for (i, byte) in label.bytes().enumerate() {
            let flip = (case >> ((index + i) % 8)) & 1 == 1;
            out.push(if flip {
                byte.to_ascii_uppercase()
            } else {
                byte
            });
        }
    }
    out.push(0);
}

/// One response to `id` asking `question`.
pub fn response(script: &mut impl Choices, id: u16, question: &str, case: u8) -> Built {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&id.to_be_bytes());
    // QR, RD, RA, with TC and the response code from the script.
    let flags = script.byte();
    out.extend_from_slice(&[0x81 | (flags & 0x02), 0x80 | (flags >> 4)]);
    let sections = [script.byte() % 5, script.byte() % 3, script.byte() % 3];
    let lie = script.byte();
    let counts = [
        1u16,
        u16::from(sections[0]),
        u16::from(sections[1]),
        u16::from(sections[2]),
    ];
    for (index, count) in counts.iter().enumerate() {
        // Bit pairs of `lie`: 1 overstates the count, 2 understates it.
        let count = match (lie >> (index * 2)) & 3 {
            1 => count.wrapping_add(1),
            2 => count.wrapping_sub(1),
            3 if lie & 0x80 != 0 => u16::MAX,
            _ => *count,
        };
        out.extend_from_slice(&count.to_be_bytes());
    }
    name(&mut out, question, case);
    out.extend_from_slice(&[0, 1, 0, 1]);
    let mut targets = vec![12u16];
    for _ in 0..sections.iter().map(|&s| usize::from(s)).sum::<usize>() {
        record(script, &mut out, &mut targets);
    }
    let cut_choice = script.byte();
    let cut = cut_choice >= 0xe0 && !out.is_empty();
    if cut {
        let at = usize::from(script.byte()) * out.len() / 256;
        out.truncate(at.max(1));
    }
    Built { bytes: out, cut }
}

/// An owner name: a pointer to the question or to an earlier name, a
/// literal, a pointer into itself (a loop), one pointing forward, or a
/// reserved label type.
fn owner(script: &mut impl Choices, out: &mut Vec<u8>, targets: &[u16]) {
    let here = out.len() as u16;
    match script.byte() % 8 {
        0..=2 => pointer(out, 12),
        3 => {
            let index = usize::from(script.byte()) % targets.len();
            pointer(out, targets[index]);
        }
        4 => name(out, NAMES[usize::from(script.byte()) % NAMES.len()], 0),
        5 => pointer(out, here),
        6 => pointer(out, here.wrapping_add(u16::from(script.byte()))),
        _ => out.extend_from_slice(&[0x41, b'x', 0]),
    }
}

fn pointer(out: &mut Vec<u8>, to: u16) {
    out.extend_from_slice(&(0xc000 | (to & 0x3fff)).to_be_bytes());
}

fn record(script: &mut impl Choices, out: &mut Vec<u8>, targets: &mut Vec<u16>) {
    owner(script, out, targets);
    let record_type = TYPES[usize::from(script.byte()) % TYPES.len()];
    out.extend_from_slice(&record_type.to_be_bytes());
    let class: u16 = if script.byte() < 0xf0 { 1 } else { 0x04d0 };
    out.extend_from_slice(&class.to_be_bytes());
    out.extend_from_slice(&u32::from(script.byte()).to_be_bytes());
    let length_at = out.len();
    out.extend_from_slice(&[0, 0]);
    let start = out.len();
    let well_formed = script.byte() < 0xa0;
    match (record_type, well_formed) {
        (1, true) => out.extend_from_slice(&ADDRESSES_V4[usize::from(script.byte()) % 4]),
        (28, true) => {
            out.extend_from_slice(&[0x20, 1, 0x0d, 0xb8]);
            out.extend_from_slice(&[0; 11]);
            out.push(if script.byte() & 1 == 0 { 7 } else { 0x66 });
        }
        (5 | 2 | 12, true) => {
            targets.push(out.len() as u16);
            owner(script, out, targets);
        }
        (41, true) => {
            // An EDNS option: code, length, data (the crash's shape).
            out.extend_from_slice(&[0, 10, 0, 8]);
            out.extend_from_slice(b"ABCDEFGH");
        }
        _ => {
            let len = usize::from(script.byte() % 48);
            out.extend(script.bytes(len));
        }
    }
    let true_length = (out.len() - start) as u16;
    let length = match script.byte() % 16 {
        0 => true_length.wrapping_add(1 + u16::from(script.byte() % 8)),
        1 => true_length.saturating_sub(1 + u16::from(script.byte() % 8)),
        2 => u16::MAX,
        _ => true_length,
    };
    out[length_at..length_at + 2].copy_from_slice(&length.to_be_bytes());
}

/// One IPv4 fragment (protocol UDP) of `data`, at byte `offset`.
pub fn fragment(
    ends: ([u8; 4], [u8; 4]),
    id: u16,
    offset: usize,
    more: bool,
    data: &[u8],
) -> Vec<u8> {
    let total = (20 + data.len()) as u16;
    let flags = (if more { 0x2000 } else { 0 }) | ((offset / 8) as u16 & 0x1fff);
    let mut packet = vec![0x45, 0];
    packet.extend_from_slice(&total.to_be_bytes());
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&flags.to_be_bytes());
    packet.extend_from_slice(&[64, 17, 0, 0]);
    packet.extend_from_slice(&ends.0);
    packet.extend_from_slice(&ends.1);
    packet.extend_from_slice(data);
    packet
}
