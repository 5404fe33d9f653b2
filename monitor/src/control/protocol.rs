//! The wire format of the control socket.
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Longest request line accepted, newline included.
pub const MAX_REQUEST: usize = 4096;
/// Longest reply a client accepts: far above any real status report, low
/// enough that a broken daemon cannot make the client eat the host's memory.
pub const MAX_REPLY: usize = 16 * 1024 * 1024;
/// How long a client has to send its request once connected.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// How long the daemon waits for a client to take its reply.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(2);
/// After replying, the daemon reads and discards what the client still
/// sends, this much at most: closing a Unix socket with unread data resets
/// the connection, and the client would lose the reply.
pub const DRAIN_LIMIT: u64 = 1024 * 1024;
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Request {
    Status,
}

/// `{"command": ...}`; anything more is refused rather than ignored.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestLine {
    command: Request,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("empty request: send one JSON line such as {{\"command\":\"status\"}}")]
    Empty,
    #[error("request longer than {MAX_REQUEST} bytes")]
    TooLong,
    #[error("no complete request within {}s", REQUEST_DEADLINE.as_secs())]
    Timeout,
    #[error("not a request ({0}); send one JSON line such as {{\"command\":\"status\"}}")]
    Malformed(String),
}

/// Parses what the client sent: one JSON line (the newline may be missing
/// when the client closed its side instead).
pub fn parse_request(line: &[u8]) -> Result<Request, RequestError> {
    if line.len() > MAX_REQUEST {
        return Err(RequestError::TooLong);
    }
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err(RequestError::Empty);
    }
    serde_json::from_slice::<RequestLine>(line)
        .map(|request| request.command)
        .map_err(|e| RequestError::Malformed(e.to_string()))
}

/// The request line a client sends.
pub fn request_line(request: Request) -> String {
    let mut line =
        serde_json::to_string(&RequestLine { command: request }).expect("a request serializes");
    line.push('\n');
    line
}

/// `{"error": message}` and a newline.
pub fn error_line(message: &str) -> String {
    let mut line = serde_json::json!({ "error": message }).to_string();
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_request_round_trips() {
        assert_eq!(request_line(Request::Status), "{\"command\":\"status\"}\n");
        assert_eq!(
            parse_request(b"{\"command\":\"status\"}\n"),
            Ok(Request::Status)
        );
        assert_eq!(
            parse_request(b"  {\"command\":\"status\"}  "),
            Ok(Request::Status)
        );
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        assert_eq!(parse_request(b"\n"), Err(RequestError::Empty));
        assert_eq!(
            parse_request(&[b' '; MAX_REQUEST + 1]),
            Err(RequestError::TooLong)
        );
        for bad in [
            &b"{\"command\":\"stop\"}"[..],
            b"{\"command\":\"status\",\"extra\":1}",
            b"[]",
            b"\xff\xfe\x00garbage",
        ] {
            assert!(
                matches!(parse_request(bad), Err(RequestError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_error_line_is_one_json_object_naming_the_problem() {
        let line = error_line("request longer than 4096 bytes");
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["error"], "request longer than 4096 bytes");
    }
}
