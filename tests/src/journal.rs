//! A fake systemd-journald: a datagram socket in a temp dir that reads
//! entries the way journald's native protocol does
//! (<https://systemd.io/JOURNAL_NATIVE_PROTOCOL/>): `NAME=value` lines,
//! length-prefixed values, and entries too large for a datagram passed as
//! a memfd with SCM_RIGHTS.
use std::{
    fs::{self, File},
    io::{Read, Seek, SeekFrom},
    os::{
        fd::{AsRawFd, FromRawFd},
        unix::net::UnixDatagram,
    },
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use crate::poll;

/// One journal entry: its fields in the order they were sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub fields: Vec<(String, String)>,
    /// Whether it came as a memfd rather than in the datagram.
    pub via_memfd: bool,
}

impl JournalEntry {
    /// Every value of `name` (a field may repeat).
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one value of `name`; panics when it is absent or repeated.
    pub fn get(&self, name: &str) -> &str {
        match self.values(name)[..] {
            [value] => value,
            ref other => {
                panic!("journal field {name}: expected one value, got {other:?} in {self:?}")
            }
        }
    }
}

/// The fake journal; entries are collected by a thread until drop.
pub struct FakeJournal {
    dir: PathBuf,
    path: PathBuf,
    entries: Arc<Mutex<Vec<JournalEntry>>>,
    errors: Arc<Mutex<Vec<String>>>,
    socket: UnixDatagram,
}

impl FakeJournal {
    pub fn bind() -> FakeJournal {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("pwt-journal-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the fake journal's dir");
        let path = dir.join("socket");
        let socket = UnixDatagram::bind(&path)
            .unwrap_or_else(|e| panic!("bind the fake journal at {}: {e}", path.display()));
        let entries = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let reader = socket.try_clone().expect("clone the fake journal's socket");
        let (found, failed) = (entries.clone(), errors.clone());
        std::thread::spawn(move || {
            // Ends when drop shuts the socket down.
            while let Some(received) = receive(&reader) {
                match received.and_then(|(bytes, via_memfd)| {
                    parse(&bytes).map(|fields| JournalEntry { fields, via_memfd })
                }) {
                    Ok(entry) => found.lock().unwrap().push(entry),
                    Err(error) => failed.lock().unwrap().push(error),
                }
            }
        });
        FakeJournal {
            dir,
            path,
            entries,
            errors,
            socket,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every entry so far; panics if one was malformed.
    pub fn entries(&self) -> Vec<JournalEntry> {
        let errors = self.errors.lock().unwrap().clone();
        assert!(errors.is_empty(), "malformed journal entries: {errors:?}");
        self.entries.lock().unwrap().clone()
    }

    /// Polls until an entry matches; returns every entry at that moment.
    pub fn wait_for(
        &self,
        timeout: Duration,
        predicate: impl Fn(&JournalEntry) -> bool,
    ) -> Vec<JournalEntry> {
        poll(timeout, || {
            let entries = self.entries();
            entries.iter().any(&predicate).then_some(entries)
        })
        .unwrap_or_else(|| {
            panic!(
                "no matching journal entry within {timeout:?}; entries:\n{:#?}",
                self.entries()
            )
        })
    }
}

impl Drop for FakeJournal {
    fn drop(&mut self) {
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// One datagram and the memfd it may carry: `None` once the socket is shut
/// down.
fn receive(socket: &UnixDatagram) -> Option<Result<(Vec<u8>, bool), String>> {
    let mut buf = vec![0u8; 1 << 20];
    // Room for one cmsghdr carrying one descriptor, aligned.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: zeroed msghdr is valid; the pointers below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: msg points at live buffers of the lengths it states.
    let len = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if len < 0 {
        return Some(Err(format!("recvmsg: {}", std::io::Error::last_os_error())));
    }
    if len == 0 && msg.msg_controllen == 0 {
        // Shut down (journald never gets an empty entry without a memfd).
        return None;
    }
    // SAFETY: CMSG_FIRSTHDR reads msg's control fields set by recvmsg.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    // SAFETY: cmsg, when not null, points into `control`, filled by the kernel.
    let memfd = unsafe {
        (!cmsg.is_null()
            && (*cmsg).cmsg_level == libc::SOL_SOCKET
            && (*cmsg).cmsg_type == libc::SCM_RIGHTS)
            .then(|| std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>()))
    };
    match memfd {
        Some(fd) => {
            // SAFETY: the kernel installed this descriptor for us; we own it.
            let mut file = unsafe { File::from_raw_fd(fd) };
            // journald maps only sealed memfds.
            // SAFETY: fcntl on a descriptor we own.
            let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
            if seals & libc::F_SEAL_WRITE == 0 {
                return Some(Err(format!(
                    "memfd entry not sealed against writes ({seals:#x})"
                )));
            }
            // journald maps the memfd from its start; the offset the sender
            // left is at its end.
            let mut bytes = Vec::new();
            Some(
                file.seek(SeekFrom::Start(0))
                    .and_then(|_| file.read_to_end(&mut bytes))
                    .map(|_| (bytes, true))
                    .map_err(|e| format!("read the memfd: {e}")),
            )
        }
        None => {
            buf.truncate(len as usize);
            Some(Ok((buf, false)))
        }
    }
}

/// Native-protocol bytes into (name, value) pairs.
fn parse(bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|e| e.to_string());
    let mut fields = Vec::new();
    let mut rest = bytes;
    while let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'=') {
        let name = text(&rest[..end])?;
        if rest[end] == b'=' {
            let line_end = end
                + rest[end..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .ok_or(format!("{name}= has no final newline"))?;
            fields.push((name, text(&rest[end + 1..line_end])?));
            rest = &rest[line_end + 1..];
        } else {
            let body = &rest[end + 1..];
            let size: [u8; 8] = body
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .ok_or(format!("{name}: length cut short"))?;
            let size = u64::from_le_bytes(size) as usize;
            let value = body
                .get(8..8 + size)
                .ok_or(format!("{name}: value cut short"))?;
            if body.get(8 + size) != Some(&b'\n') {
                return Err(format!(
                    "{name}: length-prefixed value has no final newline"
                ));
            }
            fields.push((name, text(value)?));
            rest = &body[8 + size + 1..];
        }
    }
    if !rest.is_empty() {
        return Err(format!("trailing bytes {rest:?}"));
    }
    Ok(fields)
}
