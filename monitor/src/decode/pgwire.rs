//! The first message a client sends on a PostgreSQL-wire connection
//! (PostgreSQL, CockroachDB): did it ask for encryption before anything
//! else, or does its user and database name go out in the clear?
//!
//! Only the first message is looked at, and only the user, database and
//! application names are kept from it: a StartupMessage carries no password,
//! and nothing after it is read.

/// Request codes of the first message (protocol documentation, "Message
/// Formats").
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;
/// Protocol 3.0 (`3 << 16`); 2.0 is long gone but still plaintext.
const PROTOCOL_3: u32 = 3 << 16;
const PROTOCOL_2: u32 = 2 << 16;
/// The server refuses startup packets longer than this (MAX_STARTUP_PACKET_LENGTH).
const MAX_STARTUP_LEN: usize = 10_000;
/// Names longer than NAMEDATALEN - 1 are truncated by the server too.
const MAX_NAME_LEN: usize = 63;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstMessage {
    /// The client asked for TLS first.
    SslRequest,
    /// The client asked for GSSAPI encryption first.
    GssEncRequest,
    /// A cancel request: a separate short connection, no credentials.
    CancelRequest,
    /// A StartupMessage: the session starts without encryption.
    Startup(Startup),
    /// Fewer bytes than the message header; nothing can be said yet.
    Incomplete { have: usize },
    /// Not the start of a PostgreSQL-wire conversation.
    NotPostgres(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Startup {
    pub protocol_major: u16,
    pub protocol_minor: u16,
    pub user: Option<String>,
    pub database: Option<String>,
    pub application_name: Option<String>,
    /// The captured bytes ended before the message did.
    pub cut_short: bool,
}

impl FirstMessage {
    /// True when this message means the connection proceeds in the clear.
    pub fn is_plaintext(&self) -> bool {
        matches!(self, FirstMessage::Startup(_))
    }
}

/// What the server answered to an SSLRequest or GSSENCRequest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptionReply {
    Accepted,
    Refused,
    /// An ErrorResponse ('E'): servers older than the request send one.
    Error,
    Unknown(u8),
}

pub fn classify_encryption_reply(first_byte: u8) -> EncryptionReply {
    match first_byte {
        b'S' | b'G' => EncryptionReply::Accepted,
        b'N' => EncryptionReply::Refused,
        b'E' => EncryptionReply::Error,
        other => EncryptionReply::Unknown(other),
    }
}

/// Classifies the first bytes a client sent (possibly fewer than the whole
/// message: a capture may be cut short).
pub fn classify_first_message(bytes: &[u8]) -> FirstMessage {
    let Some((header, body)) = bytes.split_first_chunk::<8>() else {
        return FirstMessage::Incomplete { have: bytes.len() };
    };
    let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let code = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if !(8..=MAX_STARTUP_LEN).contains(&length) {
        return FirstMessage::NotPostgres("length outside 8..=10000");
    }
    match code {
        SSL_REQUEST if length == 8 => FirstMessage::SslRequest,
        GSSENC_REQUEST if length == 8 => FirstMessage::GssEncRequest,
        CANCEL_REQUEST if length == 16 => FirstMessage::CancelRequest,
        SSL_REQUEST | GSSENC_REQUEST | CANCEL_REQUEST => {
            FirstMessage::NotPostgres("request code with the wrong length")
        }
        PROTOCOL_3 | PROTOCOL_2 => {
            let available = body.len().min(length - 8);
            let mut startup = parse_parameters(&body[..available]);
            startup.protocol_major = (code >> 16) as u16;
            startup.protocol_minor = (code & 0xffff) as u16;
            startup.cut_short |= body.len() < length - 8;
            FirstMessage::Startup(startup)
        }
        _ => FirstMessage::NotPostgres("unknown protocol version or request code"),
    }
}

/// StartupMessage parameters: NUL-terminated name/value pairs, ended by an
/// empty name. Keeps the three names an operator needs to act.
fn parse_parameters(mut params: &[u8]) -> Startup {
    let mut startup = Startup::default();
    loop {
        let Some((name, rest)) = take_cstring(params) else {
            startup.cut_short = !params.is_empty() || startup.user.is_none();
            return startup;
        };
        if name.is_empty() {
            return startup;
        }
        let Some((value, rest)) = take_cstring(rest) else {
            startup.cut_short = true;
            return startup;
        };
        let slot = match name {
            b"user" => &mut startup.user,
            b"database" => &mut startup.database,
            b"application_name" => &mut startup.application_name,
            _ => {
                params = rest;
                continue;
            }
        };
        let value = &value[..value.len().min(MAX_NAME_LEN)];
        *slot = Some(String::from_utf8_lossy(value).into_owned());
        params = rest;
    }
}

fn take_cstring(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes.iter().position(|&b| b == 0)?;
    Some((&bytes[..end], &bytes[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(code: u32, body: &[u8]) -> Vec<u8> {
        let mut bytes = ((8 + body.len()) as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&code.to_be_bytes());
        bytes.extend_from_slice(body);
        bytes
    }

    fn startup_body(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (name, value) in pairs {
            body.extend_from_slice(name.as_bytes());
            body.push(0);
            body.extend_from_slice(value.as_bytes());
            body.push(0);
        }
        body.push(0);
        body
    }

    #[test]
    fn encryption_requests_are_recognised() {
        assert_eq!(
            classify_first_message(&message(SSL_REQUEST, &[])),
            FirstMessage::SslRequest
        );
        assert_eq!(
            classify_first_message(&message(GSSENC_REQUEST, &[])),
            FirstMessage::GssEncRequest
        );
        assert_eq!(
            classify_first_message(&message(CANCEL_REQUEST, &[0; 8])),
            FirstMessage::CancelRequest
        );
        assert!(!FirstMessage::SslRequest.is_plaintext());
    }

    #[test]
    fn startup_message_names_user_database_and_application() {
        let body = startup_body(&[
            ("user", "orders_app"),
            ("database", "orders"),
            ("application_name", "flask"),
            ("client_encoding", "UTF8"),
        ]);
        let FirstMessage::Startup(startup) = classify_first_message(&message(PROTOCOL_3, &body))
        else {
            panic!("startup expected")
        };
        assert_eq!((startup.protocol_major, startup.protocol_minor), (3, 0));
        assert_eq!(startup.user.as_deref(), Some("orders_app"));
        assert_eq!(startup.database.as_deref(), Some("orders"));
        assert_eq!(startup.application_name.as_deref(), Some("flask"));
        assert!(!startup.cut_short);
        assert!(FirstMessage::Startup(startup).is_plaintext());
    }

    #[test]
    fn short_reads_say_incomplete_or_cut_short() {
        let full = message(
            PROTOCOL_3,
            &startup_body(&[("user", "orders_app"), ("database", "orders")]),
        );
        for cut in 0..8 {
            assert_eq!(
                classify_first_message(&full[..cut]),
                FirstMessage::Incomplete { have: cut }
            );
        }
        // Cut inside the database value: the user is known, the message is plaintext.
        let cut = full.len() - 5;
        let FirstMessage::Startup(startup) = classify_first_message(&full[..cut]) else {
            panic!()
        };
        assert_eq!(startup.user.as_deref(), Some("orders_app"));
        assert_eq!(startup.database, None);
        assert!(startup.cut_short);
        // Only the header: still a plaintext startup, names unknown.
        let FirstMessage::Startup(startup) = classify_first_message(&full[..8]) else {
            panic!()
        };
        assert!(startup.cut_short && startup.user.is_none());
    }

    #[test]
    fn garbage_is_not_postgres() {
        assert!(matches!(
            classify_first_message(b"GET / HTTP/1.1\r\nHost: x\r\n"),
            FirstMessage::NotPostgres(_)
        ));
        assert!(
            matches!(
                classify_first_message(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]),
                FirstMessage::NotPostgres(_)
            ),
            "a TLS ClientHello"
        );
        assert!(matches!(
            classify_first_message(&[0xff; 64]),
            FirstMessage::NotPostgres(_)
        ));
        let mut huge = message(PROTOCOL_3, &[]);
        huge[..4].copy_from_slice(&1_000_000u32.to_be_bytes());
        assert!(matches!(
            classify_first_message(&huge),
            FirstMessage::NotPostgres(_)
        ));
        let mut wrong_length_ssl = message(SSL_REQUEST, &[0; 4]);
        wrong_length_ssl[3] = 12;
        assert!(matches!(
            classify_first_message(&wrong_length_ssl),
            FirstMessage::NotPostgres(_)
        ));
    }

    #[test]
    fn values_are_bounded_and_lossy_utf8() {
        let long = "u".repeat(500);
        let mut body = startup_body(&[("user", &long)]);
        body.splice(5..6, [0xffu8]);
        let FirstMessage::Startup(startup) = classify_first_message(&message(PROTOCOL_3, &body))
        else {
            panic!()
        };
        let user = startup.user.unwrap();
        assert!(user.starts_with('\u{fffd}'));
        assert!(user.chars().count() <= MAX_NAME_LEN);
    }

    #[test]
    fn trailing_bytes_beyond_the_message_are_ignored() {
        let mut bytes = message(PROTOCOL_3, &startup_body(&[("user", "a")]));
        bytes.extend_from_slice(b"Q\0\0\0\x0dSELECT 1\0");
        let FirstMessage::Startup(startup) = classify_first_message(&bytes) else {
            panic!()
        };
        assert_eq!(startup.user.as_deref(), Some("a"));
        assert!(!startup.cut_short);
    }

    #[test]
    fn server_replies_to_encryption_requests() {
        assert_eq!(classify_encryption_reply(b'S'), EncryptionReply::Accepted);
        assert_eq!(classify_encryption_reply(b'N'), EncryptionReply::Refused);
        assert_eq!(classify_encryption_reply(b'E'), EncryptionReply::Error);
        assert_eq!(classify_encryption_reply(0), EncryptionReply::Unknown(0));
    }
}
