//! The DNS payload: one message per UDP datagram, length-prefixed messages
//! in a TCP segment (RFC 1035 §4.2.2).
use hickory_proto::op::Message;

use super::DecodeError;

/// Parses the single message of a UDP payload.
pub fn udp_message(payload: &[u8], truncated: bool) -> Result<Message, DecodeError> {
    parse(payload).map_err(|e| {
        // A cut datagram that does not parse failed because of the cut, most
        // likely; say so rather than blame the sender.
        if truncated {
            DecodeError::Truncated {
                layer: "DNS message",
                detail: e,
            }
        } else {
            DecodeError::Dns {
                transport: "UDP",
                detail: e,
            }
        }
    })
}

/// Parses every complete length-prefixed message in one TCP segment.
///
/// A trailing partial message (continued in the next segment, or cut by the
/// capture) is ignored until TCP reassembly exists. A message that does not
/// parse is skipped: the length prefixes keep the framing in step, and a
/// forged answer next to garbage must still reach the detector. Only when
/// nothing parses is the first failure returned.
pub(super) fn tcp_messages(segment: &[u8], truncated: bool) -> Result<Vec<Message>, DecodeError> {
    let mut messages = Vec::new();
    let mut first_error = None;
    let mut rest = segment;
    while let Some((prefix, after)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*prefix));
        let Some((body, after)) = after.split_at_checked(len) else {
            break;
        };
        match parse(body) {
            Ok(message) => messages.push(message),
            Err(detail) => {
                first_error.get_or_insert(DecodeError::Dns {
                    transport: "TCP",
                    detail,
                });
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

/// hickory, with a plausibility check on the header counts first.
fn parse(bytes: &[u8]) -> Result<Message, String> {
    // hickory reserves a Vec for the announced question count before reading
    // one; a 12-byte packet announcing 65535 questions would cost megabytes.
    // Each question takes at least 5 bytes (root name, type, class) and each
    // record at least 11 (root name, type, class, TTL, RDLENGTH).
    if let Some(header) = bytes.first_chunk::<12>() {
        let count = |i: usize| usize::from(u16::from_be_bytes([header[i], header[i + 1]]));
        let minimum = 12 + 5 * count(4) + 11 * (count(6) + count(8) + count(10));
        if minimum > bytes.len() {
            return Err(format!(
                "header announces {} questions and {} records, which need at least {minimum} bytes; {} present",
                count(4),
                count(6) + count(8) + count(10),
                bytes.len()
            ));
        }
    }
    Message::from_vec(bytes).map_err(|e| e.to_string())
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
        assert_eq!(messages[1].answers().len(), 1);

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
        let cut = &r[..r.len() - 3];
        assert!(matches!(
            udp_message(cut, true),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            udp_message(cut, false),
            Err(DecodeError::Dns {
                transport: "UDP",
                ..
            })
        ));
        assert_eq!(udp_message(&r, true).unwrap().answers().len(), 1);
    }

    #[test]
    fn impossible_counts_are_rejected_before_hickory() {
        let mut header = [0u8; 12];
        header[4..6].copy_from_slice(&u16::MAX.to_be_bytes());
        let err = udp_message(&header, false).unwrap_err();
        assert!(err.to_string().contains("65535 questions"), "{err}");
        // A message that exactly fits passes the check.
        let q = query(1, ".").to_vec().unwrap();
        assert_eq!(q.len(), 12 + 5);
        assert!(udp_message(&q, false).is_ok());
    }
}
