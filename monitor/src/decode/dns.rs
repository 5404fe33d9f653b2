//! The DNS payload: one message per UDP datagram, length-prefixed messages
//! in a TCP segment (RFC 1035 §4.2.2). Each message is read as a stub
//! resolver reads it ([`super::message`]): what parses is kept, the first
//! fault noted.
use super::{
    DecodeError,
    message::{Parsed, Reading, read_message, read_message_seen},
};

/// Reads the single message of a UDP payload; `truncated`: the capture
/// ended before the datagram did.
pub fn udp_message(payload: &[u8], truncated: bool) -> Result<Parsed, DecodeError> {
    udp_message_seen(payload, truncated, Reading::Received)
}

/// [`udp_message`] for a datagram seen as `reading` says.
pub(super) fn udp_message_seen(
    payload: &[u8],
    truncated: bool,
    reading: Reading,
) -> Result<Parsed, DecodeError> {
    read_message_seen(payload, truncated, reading)
        .ok_or_else(|| short_header(payload.len(), truncated, "UDP"))
}

/// Reads every complete length-prefixed message in one TCP segment.
///
/// A trailing partial message (continued in the next segment, or cut by the
/// capture) is ignored until TCP reassembly exists. A message shorter than
/// its header is skipped: the length prefixes keep the framing in step, and
/// a forged answer next to garbage must still reach the detector. Only when
/// nothing parses is the first failure returned.
pub(super) fn tcp_messages(segment: &[u8], truncated: bool) -> Result<Vec<Parsed>, DecodeError> {
    let mut messages = Vec::new();
    let mut first_error = None;
    let mut rest = segment;
    while let Some((prefix, after)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*prefix));
        let Some((body, after)) = after.split_at_checked(len) else {
            break;
        };
        match read_message(body, false) {
            Some(parsed) => messages.push(parsed),
            None => {
                first_error.get_or_insert(short_header(body.len(), false, "TCP"));
            }
        }
        rest = after;
    }
    if !messages.is_empty() {
        return Ok(messages);
    }
    if let Some(error) = first_error {
        return Err(error);
    }
    if truncated && !segment.is_empty() {
        // The capture cut the only message: something was there and we lost it.
        return Err(DecodeError::Truncated {
            layer: "DNS message",
            detail: format!(
                "no complete length-prefixed message in {} captured TCP payload bytes",
                segment.len()
            ),
        });
    }
    Ok(messages)
}

fn short_header(len: usize, truncated: bool, transport: &'static str) -> DecodeError {
    let detail = format!("{len} bytes do not hold the 12-byte DNS header");
    // A cut datagram failed because of the cut, most likely; say so rather
    // than blame the sender.
    if truncated {
        DecodeError::Truncated {
            layer: "DNS message",
            detail,
        }
    } else {
        DecodeError::Dns { transport, detail }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::test_packets::{a_response, framed, query};

    #[test]
    fn tcp_framing_keeps_complete_messages_only() {
        let q = query(7, "db.example.com.");
        let r = a_response(7, "db.example.com.", &[[10, 0, 0, 5]]);
        let mut segment = framed(&[&q, &r]);
        segment.extend_from_slice(&framed(&[&r])[..10]);
        let messages = tcp_messages(&segment, false).unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[1].message.answers().len(), 1);
        assert!(messages[1].malformed.is_none());

        // A lone length byte, or a prefix alone, is a partial message.
        assert!(tcp_messages(&[0], false).unwrap().is_empty());
        assert!(tcp_messages(&[0, 40], false).unwrap().is_empty());
    }

    #[test]
    fn tcp_skips_garbage_next_to_a_good_message() {
        let garbage = [0, 5, 0xff, 0xff, 0xff, 0xff, 0xff];
        let mut segment = garbage.to_vec();
        segment.extend(framed(&[&a_response(
            7,
            "db.example.com.",
            &[[10, 0, 0, 5]],
        )]));
        assert_eq!(tcp_messages(&segment, false).unwrap().len(), 1);
        let err = tcp_messages(&garbage, false).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::Dns {
                    transport: "TCP",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn tcp_cut_by_capture_is_an_error() {
        let segment = framed(&[&a_response(7, "db.example.com.", &[[10, 0, 0, 5]])]);
        let err = tcp_messages(&segment[..20], true).unwrap_err();
        assert!(matches!(err, DecodeError::Truncated { .. }), "{err}");
    }

    #[test]
    fn udp_errors_name_the_cause() {
        let r = a_response(7, "db.example.com.", &[[10, 0, 0, 5]])
            .to_vec()
            .unwrap();
        assert!(matches!(
            udp_message(&r[..11], true),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            udp_message(&r[..11], false),
            Err(DecodeError::Dns {
                transport: "UDP",
                ..
            })
        ));
        // Past the header, a cut message is what parsed of it.
        let cut = udp_message(&r[..r.len() - 3], true).unwrap();
        assert_eq!(cut.message.queries().len(), 1);
        assert!(cut.message.answers().is_empty());
        assert!(cut.malformed.unwrap().cut);
        let whole = udp_message(&r, true).unwrap();
        assert_eq!(whole.message.answers().len(), 1);
        assert!(whole.malformed.is_none());
    }

    #[test]
    fn impossible_counts_cost_nothing() {
        let mut header = [0u8; 12];
        header[4..6].copy_from_slice(&u16::MAX.to_be_bytes());
        header[6..8].copy_from_slice(&u16::MAX.to_be_bytes());
        let parsed = udp_message(&header, false).unwrap();
        assert!(parsed.message.queries().is_empty());
        let malformed = parsed.malformed.unwrap();
        assert_eq!((malformed.record, malformed.offset), (0, 12));
    }
}
