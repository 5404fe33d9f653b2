//! The client side: what `pinwatch status` does to ask the daemon.
use std::{
    io,
    path::{Path, PathBuf},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::UnixStream,
};

use super::protocol::{MAX_REPLY, Request, request_line};
use crate::status::StatusReport;

/// How long the whole exchange may take before the daemon counts as
/// unreachable.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the daemon could not be asked; `pinwatch status` exits 2 on each.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no control socket at {path}: pinwatch is not running, or its `[control] socket` is elsewhere (pass --socket)"
    )]
    NoSocket { path: PathBuf },
    #[error(
        "permission denied on {path}: run as root, as pinwatch's user, or as a member of its `[control] group`"
    )]
    Permission { path: PathBuf },
    #[error("nothing answers on {path}: pinwatch is not running (the socket file is stale)")]
    NotListening { path: PathBuf },
    #[error("pinwatch did not answer on {path} within {secs}s")]
    Timeout { path: PathBuf, secs: f64 },
    #[error("cannot talk to pinwatch on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("pinwatch on {path} closed the connection without answering")]
    NoReply { path: PathBuf },
    #[error("pinwatch's reply on {path} is longer than {MAX_REPLY} bytes")]
    ReplyTooLong { path: PathBuf },
    #[error("pinwatch's reply on {path} is not a status report: {detail}")]
    Malformed { path: PathBuf, detail: String },
    #[error("pinwatch on {path} refused: {message}")]
    Refused { path: PathBuf, message: String },
}

/// The daemon's answer: the report, and the JSON line it came as (printed
/// by `--json` as is: key order kept, and fields this client does not know
/// still show).
#[derive(Debug, Clone)]
pub struct StatusReply {
    pub report: StatusReport,
    pub json: String,
}

/// Asks the daemon on `socket` for its status, within [`REPLY_TIMEOUT`].
pub async fn request_status(socket: &Path) -> Result<StatusReply, ClientError> {
    request_status_within(socket, REPLY_TIMEOUT).await
}

pub(super) async fn request_status_within(
    socket: &Path,
    timeout: Duration,
) -> Result<StatusReply, ClientError> {
    match tokio::time::timeout(timeout, exchange(socket)).await {
        Ok(result) => result,
        Err(_) => Err(ClientError::Timeout {
            path: socket.to_owned(),
            secs: timeout.as_secs_f64(),
        }),
    }
}

async fn exchange(socket: &Path) -> Result<StatusReply, ClientError> {
    let path = socket.to_owned();
    let io_error = |source: io::Error| ClientError::Io {
        path: path.clone(),
        source,
    };
    let mut stream = UnixStream::connect(socket)
        .await
        .map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => ClientError::NoSocket { path: path.clone() },
            io::ErrorKind::PermissionDenied => ClientError::Permission { path: path.clone() },
            io::ErrorKind::ConnectionRefused => ClientError::NotListening { path: path.clone() },
            _ => io_error(source),
        })?;
    stream
        .write_all(request_line(Request::Status).as_bytes())
        .await
        .map_err(io_error)?;
    let mut line = Vec::new();
    BufReader::new(stream)
        .take(MAX_REPLY as u64 + 1)
        .read_until(b'\n', &mut line)
        .await
        .map_err(io_error)?;
    if line.len() > MAX_REPLY {
        return Err(ClientError::ReplyTooLong { path });
    }
    parse_reply(&line, &path)
}

/// A status report, or the daemon's `{"error": ...}`.
pub(super) fn parse_reply(line: &[u8], path: &Path) -> Result<StatusReply, ClientError> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err(ClientError::NoReply {
            path: path.to_owned(),
        });
    }
    let malformed = |error: serde_json::Error| ClientError::Malformed {
        path: path.to_owned(),
        detail: error.to_string(),
    };
    let value: serde_json::Value = serde_json::from_slice(line).map_err(malformed)?;
    if let Some(message) = value.get("error") {
        return Err(ClientError::Refused {
            path: path.to_owned(),
            message: message
                .as_str()
                .map_or_else(|| message.to_string(), str::to_owned),
        });
    }
    let report = serde_json::from_value(value).map_err(malformed)?;
    Ok(StatusReply {
        report,
        json: String::from_utf8_lossy(line).trim_end().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_reply_is_the_daemons_refusal() {
        let error = parse_reply(b"{\"error\":\"permission denied\"}\n", Path::new("/s"))
            .expect_err("refused");
        assert_eq!(
            error.to_string(),
            "pinwatch on /s refused: permission denied"
        );
    }

    #[test]
    fn an_empty_or_foreign_reply_is_an_error() {
        assert!(matches!(
            parse_reply(b"", Path::new("/s")),
            Err(ClientError::NoReply { .. })
        ));
        assert!(matches!(
            parse_reply(b"{\"version\":1}\n", Path::new("/s")),
            Err(ClientError::Malformed { .. })
        ));
        assert!(matches!(
            parse_reply(b"\x00\xff", Path::new("/s")),
            Err(ClientError::Malformed { .. })
        ));
    }
}
