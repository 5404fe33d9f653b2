//! Text and canonical bytes of DNS data that came off the wire.
//!
//! hickory's `Display` is not safe on parsed input: an OPT record always
//! fails it, a CAA record with a non-UTF-8 value too, and `to_string()` then
//! panics; `xn--` labels come out decoded to Unicode, which hides
//! look-alikes. Everything here is written from the parsed fields or the
//! raw bytes, cannot fail, and is bounded in length.
use std::{borrow::Cow, fmt::Write as _, net::IpAddr};

use hickory_proto::{
    rr::{Name, RData, RecordType},
    serialize::binary::{BinEncodable, BinEncoder},
};

/// Longest RDATA text an alert carries (a TXT record may hold 64 KiB).
pub const MAX_DATA_TEXT: usize = 512;

/// The name as the message spelled it (letter case kept), labels joined
/// by dots, no trailing dot (the root is `.`); bytes a hostname cannot hold
/// are escaped as in a zone file (`\.`, `\\`, `\DDD`).
pub fn name(name: &Name) -> String {
    let mut text = String::with_capacity(name.len());
    for (index, label) in name.iter().enumerate() {
        if index > 0 {
            text.push('.');
        }
        push_escaped(&mut text, label);
    }
    if text.is_empty() {
        text.push('.');
    }
    text
}

/// The type's mnemonic, or `TYPEnnn` (RFC 3597) for one hickory does not
/// know (its own text says only "Unknown").
pub fn record_type(record_type: RecordType) -> Cow<'static, str> {
    match record_type {
        RecordType::Unknown(code) => Cow::Owned(format!("TYPE{code}")),
        known => Cow::Borrowed(<&'static str>::from(known)),
    }
}

/// RDATA as text: zone-file style for the types alerts care about, the
/// RFC 3597 generic form (`\# LENGTH HEX`) for the rest; at most
/// [`MAX_DATA_TEXT`] characters, cut with `…`.
pub fn rdata(data: &RData) -> String {
    let mut text = Bounded::default();
    match data {
        RData::A(a) => text.push(&IpAddr::V4(a.0).to_string()),
        RData::AAAA(aaaa) => text.push(&IpAddr::V6(aaaa.0).to_string()),
        RData::CNAME(target) => text.push(&name(&target.0)),
        RData::NS(target) => text.push(&name(&target.0)),
        RData::PTR(target) => text.push(&name(&target.0)),
        RData::ANAME(target) => text.push(&name(&target.0)),
        RData::MX(mx) => {
            text.push(&format!("{} ", mx.preference()));
            text.push(&name(mx.exchange()));
        }
        RData::SRV(srv) => {
            text.push(&format!(
                "{} {} {} ",
                srv.priority(),
                srv.weight(),
                srv.port()
            ));
            text.push(&name(srv.target()));
        }
        RData::SOA(soa) => {
            text.push(&name(soa.mname()));
            text.push(" ");
            text.push(&name(soa.rname()));
            text.push(&format!(
                " {} {} {} {} {}",
                soa.serial(),
                soa.refresh(),
                soa.retry(),
                soa.expire(),
                soa.minimum()
            ));
        }
        RData::TXT(txt) => {
            for (index, string) in txt.txt_data().iter().enumerate() {
                if index > 0 {
                    text.push(" ");
                }
                let mut quoted = String::from("\"");
                push_escaped(&mut quoted, string);
                quoted.push('"');
                text.push(&quoted);
            }
        }
        other => match wire(other) {
            Some(bytes) => text.push_generic(&bytes),
            None => text.push(&format!(
                "(unrenderable {} data)",
                record_type(other.record_type())
            )),
        },
    }
    text.finish()
}

/// The RDATA's wire form, names uncompressed; `None` when hickory cannot
/// write it back.
pub fn wire(data: &RData) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_canonical_names(true);
    data.emit(&mut encoder).ok()?;
    Some(bytes)
}

/// A byte string as zone-file text: printable ASCII as is, `.`, `\` and
/// `"` escaped, anything else as `\DDD`.
fn push_escaped(text: &mut String, bytes: &[u8]) {
    for &byte in bytes {
        match byte {
            b'.' | b'\\' | b'"' => {
                text.push('\\');
                text.push(char::from(byte));
            }
            0x21..=0x7e => text.push(char::from(byte)),
            _ => {
                let _ = write!(text, "\\{byte:03}");
            }
        }
    }
}

/// A string that stops growing at [`MAX_DATA_TEXT`] characters.
#[derive(Default)]
struct Bounded {
    text: String,
    chars: usize,
    cut: bool,
}

impl Bounded {
    fn push(&mut self, part: &str) {
        for c in part.chars() {
            if self.chars >= MAX_DATA_TEXT {
                self.cut = true;
                return;
            }
            self.text.push(c);
            self.chars += 1;
        }
    }

    fn push_generic(&mut self, bytes: &[u8]) {
        self.push(&format!("\\# {}", bytes.len()));
        if !bytes.is_empty() {
            self.push(" ");
        }
        // Two characters a byte: hex of the bytes that fit.
        let room = MAX_DATA_TEXT.saturating_sub(self.chars) / 2;
        let mut hex = String::with_capacity(room * 2);
        for byte in bytes.iter().take(room) {
            let _ = write!(hex, "{byte:02x}");
        }
        self.push(&hex);
        self.cut |= bytes.len() > room;
    }

    fn finish(mut self) -> String {
        if self.cut {
            self.text.push('…');
        }
        self.text
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::{
        op::Message,
        rr::{
            Name, RData,
            rdata::{CAA, CNAME, NULL, OPT, TXT},
        },
    };

    use super::*;
    use crate::decode::test_packets::OPT_ANSWER;

    #[test]
    fn the_opt_answer_renders_where_display_fails() {
        let message = Message::from_vec(&OPT_ANSWER).unwrap();
        let data = message.answers()[0].data();
        assert!(matches!(data, RData::OPT(_)));
        // The hole: hickory's own text fails.
        assert!(write!(String::new(), "{data}").is_err());
        assert_eq!(rdata(data), "\\# 12 000a00084142434445464748");
        assert_eq!(record_type(data.record_type()), "OPT");
    }

    #[test]
    fn odd_types_render_generically_and_bounded() {
        let caa = RData::CAA(CAA::new_issue(false, None, vec![]));
        assert!(rdata(&caa).starts_with("\\# "), "{}", rdata(&caa));
        let unknown = RData::Unknown {
            code: RecordType::Unknown(65280),
            rdata: NULL::with(vec![0xab; 4000]),
        };
        let text = rdata(&unknown);
        assert!(text.starts_with("\\# 4000 abab"), "{text}");
        assert!(text.ends_with('…'));
        assert!(text.chars().count() <= MAX_DATA_TEXT + 1);
        assert_eq!(record_type(RecordType::Unknown(65280)), "TYPE65280");
        let empty = RData::OPT(OPT::default());
        assert_eq!(rdata(&empty), "\\# 0");
    }

    #[test]
    fn names_keep_case_and_escape_odd_bytes() {
        let plain = Name::from_ascii("Db.Example.").unwrap();
        assert_eq!(name(&plain), "Db.Example");
        assert_eq!(name(&Name::root()), ".");
        let odd = Name::from_labels(vec![&b"a.b"[..], &b"c\x00 "[..], b"xn--bcher-kva"]).unwrap();
        assert_eq!(name(&odd), "a\\.b.c\\000\\032.xn--bcher-kva");
        let cname = RData::CNAME(CNAME(Name::from_ascii("t.example.").unwrap()));
        assert_eq!(rdata(&cname), "t.example");
        let txt = RData::TXT(TXT::new(vec!["a \"q\"".into(), "\u{7f}".into()]));
        assert_eq!(rdata(&txt), "\"a\\032\\\"q\\\"\" \"\\127\"");
    }
}
