//! The journald alert sink: each alert is one journal entry, sent over
//! journald's native protocol (<https://systemd.io/JOURNAL_NATIVE_PROTOCOL/>).
//!
//! The entry carries `MESSAGE`, `PRIORITY` (from the severity),
//! `SYSLOG_IDENTIFIER=pinwatch`, `PINWATCH_ALERT` (the whole ECS line, so
//! nothing is lost) and every scalar ECS field flattened to an upper-case
//! journal field (`event.action` → `EVENT_ACTION`, `dns.question.name` →
//! `DNS_QUESTION_NAME`); a list of scalars becomes the field repeated.
//! `journalctl EVENT_KIND=alert` selects the alerts apart from the
//! diagnostic log (which shares `SYSLOG_IDENTIFIER` under systemd).
use std::{
    fs::File,
    io::{self, IoSlice, Write},
    os::{
        fd::AsRawFd,
        unix::{fs::FileTypeExt, net::UnixDatagram},
    },
    path::{Path, PathBuf},
};

use nix::{
    fcntl::{FcntlArg, SealFlag, fcntl},
    sys::{
        memfd::{MFdFlags, memfd_create},
        socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg},
    },
};
use serde_json::Value;

/// Where journald listens for native-protocol datagrams.
pub const DEFAULT_SOCKET: &str = "/run/systemd/journal/socket";

/// Test hook: another socket path for the journald sink (a fake journal in
/// the integration tests). Read by this sink only, at start.
pub const SOCKET_ENV: &str = "PINWATCH_JOURNAL_SOCKET";

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(
        "cannot use the journal socket {path} for sink = \"journald\": {source} (is systemd-journald running?)"
    )]
    Open { path: PathBuf, source: io::Error },
    #[error("{path} is not a socket; sink = \"journald\" needs journald's native socket")]
    NotSocket { path: PathBuf },
}

pub struct Journal {
    socket: UnixDatagram,
    path: PathBuf,
    entry: Vec<u8>,
}

impl Journal {
    /// journald's standard socket, or `$PINWATCH_JOURNAL_SOCKET` when set.
    pub fn open_default() -> Result<Journal, JournalError> {
        match std::env::var_os(SOCKET_ENV) {
            Some(path) => Journal::open(Path::new(&path)),
            None => Journal::open(Path::new(DEFAULT_SOCKET)),
        }
    }

    /// Checks that `path` is a socket now, so a host without journald fails
    /// the start instead of the first alert. Each entry is sent to the path
    /// (not over a connected socket), so a restarted journald is found again.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        let open_error = |source| JournalError::Open {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(open_error)?;
        if !meta.file_type().is_socket() {
            return Err(JournalError::NotSocket {
                path: path.to_owned(),
            });
        }
        let socket = UnixDatagram::unbound().map_err(open_error)?;
        Ok(Journal {
            socket,
            path: path.to_owned(),
            entry: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends one alert, given as its ECS JSON line, as one journal entry.
    /// Blocks while journald's queue is full, like the other sinks.
    pub fn send(&mut self, ecs_line: &str) -> io::Result<()> {
        let doc: Value = serde_json::from_str(ecs_line)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.entry.clear();
        encode_entry(&mut self.entry, &doc, ecs_line);
        match self.socket.send_to(&self.entry, &self.path) {
            Ok(sent) if sent == self.entry.len() => Ok(()),
            Ok(sent) => Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("sent {sent} of {} bytes", self.entry.len()),
            )),
            // Too large for one datagram: hand journald a sealed memfd, as
            // sd_journal_send does.
            Err(error) if error.raw_os_error() == Some(libc::EMSGSIZE) => self.send_memfd(),
            Err(error) => Err(error),
        }
    }

    fn send_memfd(&self) -> io::Result<()> {
        let fd = memfd_create(
            c"pinwatch-alert",
            MFdFlags::MFD_ALLOW_SEALING | MFdFlags::MFD_CLOEXEC,
        )?;
        let mut file = File::from(fd);
        file.write_all(&self.entry)?;
        // journald accepts only sealed memfds: it must not change under it.
        fcntl(&file, FcntlArg::F_ADD_SEALS(SealFlag::all()))?;
        let fds = [file.as_raw_fd()];
        let address = UnixAddr::new(&self.path)?;
        let empty: [IoSlice; 0] = [];
        sendmsg(
            self.socket.as_raw_fd(),
            &empty,
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            Some(&address),
        )?;
        Ok(())
    }
}

/// syslog priority for ECS severity: 4 critical → 2 crit, 3 high → 3 err,
/// 2 medium → 4 warning, 1 low → 5 notice.
pub fn priority(severity: u64) -> u8 {
    match severity {
        4.. => 2,
        3 => 3,
        2 => 4,
        _ => 5,
    }
}

/// The native-protocol bytes of one entry for the ECS document `doc`
/// (whose text is `line`).
pub fn encode_entry(out: &mut Vec<u8>, doc: &Value, line: &str) {
    let message = doc.get("message").and_then(Value::as_str).unwrap_or("");
    let severity = doc
        .pointer("/event/severity")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    field(out, "MESSAGE", message);
    field(out, "PRIORITY", &priority(severity).to_string());
    field(out, "SYSLOG_IDENTIFIER", "pinwatch");
    field(out, "PINWATCH_ALERT", line);
    if let Value::Object(map) = doc {
        for (key, value) in map {
            // MESSAGE is written above; @timestamp becomes TIMESTAMP.
            if key != "message" {
                flatten(out, &journal_name(key), value);
            }
        }
    }
}

fn flatten(out: &mut Vec<u8>, name: &str, value: &Value) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                flatten(out, &format!("{name}_{}", journal_name(key)), value);
            }
        }
        // Objects in lists (dns.answers) stay in PINWATCH_ALERT only.
        Value::Array(items) => {
            for item in items
                .iter()
                .filter(|item| !item.is_object() && !item.is_array())
            {
                flatten(out, name, item);
            }
        }
        Value::String(text) => field(out, name, text),
        Value::Number(number) => field(out, name, &number.to_string()),
        Value::Bool(flag) => field(out, name, if *flag { "1" } else { "0" }),
        Value::Null => {}
    }
}

/// journald field names are `[A-Z0-9_]`, not starting with `_` (reserved
/// for trusted fields) or a digit, at most 64 bytes.
fn journal_name(key: &str) -> String {
    let mut name: String = key
        .chars()
        .map(|c| match c {
            'a'..='z' => c.to_ascii_uppercase(),
            'A'..='Z' | '0'..='9' => c,
            _ => '_',
        })
        .collect();
    let trimmed = name.trim_start_matches(|c: char| c == '_' || c.is_ascii_digit());
    name = trimmed.to_owned();
    name.truncate(64);
    name
}

/// `NAME=value\n`, or for values with a newline `NAME\n<u64 LE length>value\n`.
fn field(out: &mut Vec<u8>, name: &str, value: &str) {
    if name.is_empty() {
        return;
    }
    out.extend_from_slice(name.as_bytes());
    if value.contains('\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

#[cfg(test)]
#[path = "journald_tests.rs"]
mod tests;
