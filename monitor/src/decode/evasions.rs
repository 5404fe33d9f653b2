//! Crafted DNS responses that glibc's stub resolver accepts (it hands the
//! forged address to the application) but that do not parse whole: the
//! evasions `decode::message` and the answer rules must see through.
//!
//! std only: the kernel tests' crafted-answer server includes this file
//! (`tests/src/crafted.rs`), so unit and kernel tests send the same bytes.

/// One way to forge an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evasion {
    /// A well-formed forged answer.
    Plain,
    /// ARCOUNT says one more record than there is.
    ArcountPlusOne,
    /// NSCOUNT says one more record than there is.
    NscountPlusOne,
    /// An additional record whose owner starts with the reserved label type
    /// byte 0x41.
    ReservedLabelType,
    /// An additional record whose owner is a compression pointer forward.
    ForwardPointer,
    /// Two OPT records in the additional section.
    TwoOpt,
    /// A second answer record: an SVCB whose data runs past its parameter.
    BadSvcbSecondAnswer,
    /// The same SVCB before the forged address: a reader that stops at it
    /// never sees the address a stub resolver steps on to.
    BadSvcbFirstAnswer,
    /// An authority record whose RDLENGTH runs past the end of the message.
    AuthorityPastEnd,
    /// The answer, then an OPT record padding the message to [`PADDED_LEN`]
    /// bytes: longer than the kernel copies.
    PaddedAdditional,
    /// A TXT answer padding the message to [`PADDED_LEN`] bytes, with the
    /// forged address last: the copy cuts the answer section itself.
    PaddedAnswer,
    /// A CNAME chain of [`LONG_CHAIN`] links before the address.
    LongCnameChain,
}

impl Evasion {
    /// Every malformation glibc accepts (not `Plain`).
    pub const MALFORMED: [Evasion; 11] = [
        Evasion::ArcountPlusOne,
        Evasion::NscountPlusOne,
        Evasion::ReservedLabelType,
        Evasion::ForwardPointer,
        Evasion::TwoOpt,
        Evasion::BadSvcbSecondAnswer,
        Evasion::BadSvcbFirstAnswer,
        Evasion::AuthorityPastEnd,
        Evasion::PaddedAdditional,
        Evasion::PaddedAnswer,
        Evasion::LongCnameChain,
    ];
}

/// DNS bytes of a padded response: an IPv4 packet of 1,380 bytes, which
/// the kernel copies only 1,360 bytes of.
pub const PADDED_LEN: usize = 1380 - 20 - 8;

/// CNAME links of [`Evasion::LongCnameChain`]: more than pinwatch follows.
pub const LONG_CHAIN: usize = 12;

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_TXT: u16 = 16;
const TYPE_OPT: u16 = 41;
const TYPE_SVCB: u16 = 64;
const CLASS_IN: u16 = 1;
/// A compression pointer to the question name, at offset 12.
const QNAME: [u8; 2] = [0xc0, 12];

/// The id and question of a query (RFC 1035 §4.1): `None` unless `query`
/// holds a header and one uncompressed question.
pub fn question(query: &[u8]) -> Option<(u16, &[u8])> {
    let id = u16::from_be_bytes([*query.first()?, *query.get(1)?]);
    let mut at = 12;
    loop {
        let len = usize::from(*query.get(at)?);
        if len > 63 {
            return None;
        }
        at += 1 + len;
        if len == 0 {
            break;
        }
    }
    Some((id, query.get(12..at + 4)?))
}

/// A response to `query` forging `address` for its question, with
/// `evasion`; `None` when `query` is not a plain query.
pub fn response(query: &[u8], evasion: Evasion, address: [u8; 4]) -> Option<Vec<u8>> {
    let (id, question) = question(query)?;
    let mut m = Writer::new(id, question);
    match evasion {
        Evasion::Plain => m.answer_a(&QNAME, address),
        Evasion::ArcountPlusOne => {
            m.answer_a(&QNAME, address);
            m.counts[3] += 1;
        }
        Evasion::NscountPlusOne => {
            m.answer_a(&QNAME, address);
            m.counts[2] += 1;
        }
        Evasion::ReservedLabelType => {
            m.answer_a(&QNAME, address);
            m.record(3, &[0x41, b'x', 0], TYPE_A, CLASS_IN, &address);
        }
        Evasion::ForwardPointer => {
            m.answer_a(&QNAME, address);
            // Points at the pointer's own end: forward of itself.
            let target = u16::try_from(m.bytes.len() + 2).ok()? | 0xc000;
            m.record(3, &target.to_be_bytes(), TYPE_A, CLASS_IN, &address);
        }
        Evasion::TwoOpt => {
            m.answer_a(&QNAME, address);
            m.record(3, &[0], TYPE_OPT, 1232, &[]);
            m.record(3, &[0], TYPE_OPT, 1232, &[]);
        }
        Evasion::BadSvcbSecondAnswer => {
            m.answer_a(&QNAME, address);
            m.bad_svcb();
        }
        Evasion::BadSvcbFirstAnswer => {
            m.bad_svcb();
            m.answer_a(&QNAME, address);
        }
        Evasion::AuthorityPastEnd => {
            m.answer_a(&QNAME, address);
            m.counts[2] += 1;
            m.bytes.extend_from_slice(&QNAME);
            m.fixed(TYPE_A, CLASS_IN, 200);
            m.bytes.extend_from_slice(&address);
        }
        Evasion::PaddedAdditional => {
            m.answer_a(&QNAME, address);
            // EDNS padding option (12) filling the message to PADDED_LEN.
            let fill = PADDED_LEN.checked_sub(m.bytes.len() + 11 + 4)?;
            let mut option = vec![0, 12];
            option.extend_from_slice(&u16::try_from(fill).ok()?.to_be_bytes());
            option.resize(4 + fill, 0);
            m.record(3, &[0], TYPE_OPT, 1232, &option);
        }
        Evasion::PaddedAnswer => {
            // TXT strings of up to 255 bytes filling the message so that the
            // forged address ends it.
            let fill = PADDED_LEN.checked_sub(m.bytes.len() + 12 + 16)?;
            let mut txt = Vec::new();
            while txt.len() < fill {
                let chunk = (fill - txt.len() - 1).min(255);
                txt.push(u8::try_from(chunk).ok()?);
                txt.resize(txt.len() + chunk, b'p');
            }
            m.record(1, &QNAME, TYPE_TXT, CLASS_IN, &txt);
            m.answer_a(&QNAME, address);
        }
        Evasion::LongCnameChain => {
            let mut owner = QNAME.to_vec();
            for link in 0..LONG_CHAIN {
                // Target `cN.<question name>`; the next owner points at it.
                let target_at = u16::try_from(m.bytes.len() + owner.len() + 10).ok()?;
                let label = format!("c{link}");
                let mut target = vec![u8::try_from(label.len()).ok()?];
                target.extend_from_slice(label.as_bytes());
                target.extend_from_slice(&QNAME);
                m.record(1, &owner, TYPE_CNAME, CLASS_IN, &target);
                owner = (target_at | 0xc000).to_be_bytes().to_vec();
            }
            m.answer_a(&owner, address);
        }
    }
    Some(m.finish())
}

/// A response to `query` (for some other name) answering it with
/// `answer`, and carrying in its additional section an A record forging
/// `address` for `victim` (a dotted name): what cache poisoning injects.
pub fn injected(query: &[u8], answer: [u8; 4], victim: &str, address: [u8; 4]) -> Option<Vec<u8>> {
    let (id, question) = question(query)?;
    let mut m = Writer::new(id, question);
    m.answer_a(&QNAME, answer);
    let mut owner = Vec::new();
    for label in victim.trim_end_matches('.').split('.') {
        owner.push(u8::try_from(label.len()).ok()?);
        owner.extend_from_slice(label.as_bytes());
    }
    owner.push(0);
    m.record(3, &owner, TYPE_A, CLASS_IN, &address);
    Some(m.finish())
}

struct Writer {
    bytes: Vec<u8>,
    /// QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT.
    counts: [u16; 4],
}

impl Writer {
    fn new(id: u16, question: &[u8]) -> Writer {
        let mut bytes = id.to_be_bytes().to_vec();
        // QR, RD, RA; NOERROR.
        bytes.extend_from_slice(&[0x81, 0x80]);
        bytes.resize(12, 0);
        bytes.extend_from_slice(question);
        Writer {
            bytes,
            counts: [1, 0, 0, 0],
        }
    }

    fn answer_a(&mut self, owner: &[u8], address: [u8; 4]) {
        self.record(1, owner, TYPE_A, CLASS_IN, &address);
    }

    /// An SVCB answer: priority 1, target root, key alpn (1) announcing 5
    /// bytes of which 3 are there: the data ends inside the parameter.
    fn bad_svcb(&mut self) {
        let data = [0, 1, 0, 0, 1, 0, 5, 2, b'h', b'2'];
        self.record(1, &QNAME, TYPE_SVCB, CLASS_IN, &data);
    }

    /// One record in section `section` (1 answer, 2 authority, 3 additional).
    fn record(&mut self, section: usize, owner: &[u8], rtype: u16, class: u16, data: &[u8]) {
        self.counts[section] += 1;
        self.bytes.extend_from_slice(owner);
        self.fixed(rtype, class, u16::try_from(data.len()).unwrap_or(u16::MAX));
        self.bytes.extend_from_slice(data);
    }

    /// TYPE, CLASS, TTL 60 and RDLENGTH.
    fn fixed(&mut self, rtype: u16, class: u16, rdlength: u16) {
        self.bytes.extend_from_slice(&rtype.to_be_bytes());
        self.bytes.extend_from_slice(&class.to_be_bytes());
        self.bytes.extend_from_slice(&60u32.to_be_bytes());
        self.bytes.extend_from_slice(&rdlength.to_be_bytes());
    }

    fn finish(mut self) -> Vec<u8> {
        for (i, count) in self.counts.iter().enumerate() {
            self.bytes[4 + 2 * i..6 + 2 * i].copy_from_slice(&count.to_be_bytes());
        }
        self.bytes
    }
}
