//! The daemon's side of the control socket.
use std::{
    fs::{self, DirBuilder, Permissions},
    io,
    os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::Semaphore,
    task::JoinHandle,
};

use super::{
    peer::Access,
    protocol::{
        DRAIN_DEADLINE, DRAIN_LIMIT, MAX_REQUEST, REQUEST_DEADLINE, Request, RequestError,
        WRITE_DEADLINE, error_line, parse_request,
    },
};
use crate::{
    config::ControlSettings,
    state::{Shared, Snapshot},
    status::StatusReport,
};

/// Connections served at once; more wait in the listen backlog. A slot
/// costs a task and a few KiB, and is held for at most REQUEST_DEADLINE +
/// WRITE_DEADLINE + DRAIN_DEADLINE: generous, so that a client holding
/// idle connections open does not keep an on-call engineer waiting.
const MAX_CONNECTIONS: usize = 128;
/// Pause after a failed accept (out of file descriptors, say) so the loop
/// does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control.group = {group:?}: no such group on this host")]
    UnknownGroup { group: String },
    #[error("control.group = {group:?}: cannot look the group up: {source}")]
    GroupLookup { group: String, source: nix::Error },
    #[error(
        "control.socket = {path:?}: another pinwatch answers on this socket; stop it or choose another path"
    )]
    InUse { path: PathBuf },
    #[error("control.socket = {path:?}: exists and is not a socket; refusing to replace it")]
    NotASocket { path: PathBuf },
    #[error("control.socket = {path:?}: {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
}

/// A bound control socket, not yet serving.
pub struct ControlServer {
    listener: UnixListener,
    file: SocketFile,
    access: Access,
}

/// The running server. Dropping it stops serving and removes the socket
/// file.
pub struct ControlHandle {
    task: JoinHandle<()>,
    _file: SocketFile,
}

impl Drop for ControlHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ControlServer {
    /// Creates the socket: parent directory (0755) if missing, a stale
    /// socket file replaced only when nothing answers on it, mode 0600 or
    /// group-owned 0660. Must run inside the tokio runtime.
    pub fn bind(settings: &ControlSettings) -> Result<ControlServer, ControlError> {
        let path = settings.socket.clone();
        let io_error = |action: &'static str| {
            let path = path.clone();
            move |source| ControlError::Io {
                path,
                action,
                source,
            }
        };
        let group = settings.group.as_deref().map(lookup_group).transpose()?;
        if let Some(parent) = path.parent() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(io_error("cannot create its directory"))?;
        }
        remove_stale(&path)?;
        let listener = UnixListener::bind(&path).map_err(io_error("cannot listen"))?;
        let meta = fs::symlink_metadata(&path).map_err(io_error("cannot inspect"))?;
        let file = SocketFile {
            path: path.clone(),
            identity: (meta.dev(), meta.ino()),
        };
        // Connections in the moment before the mode is set are still
        // refused by the credential check.
        if let Some(gid) = group {
            std::os::unix::fs::chown(&path, None, Some(gid))
                .map_err(io_error("cannot give it to the control group"))?;
        }
        let mode = if group.is_some() { 0o660 } else { 0o600 };
        fs::set_permissions(&path, Permissions::from_mode(mode))
            .map_err(io_error("cannot set its mode"))?;
        Ok(ControlServer {
            listener,
            file,
            access: Access {
                daemon_uid: nix::unistd::geteuid().as_raw(),
                group,
            },
        })
    }

    /// Serves `shared` on a task of the current runtime until the handle is
    /// dropped. Nothing a client does ends the task.
    pub fn spawn(self, shared: Arc<Shared>) -> ControlHandle {
        let ControlServer {
            listener,
            file,
            access,
        } = self;
        let task = tokio::spawn(accept_loop(listener, access, shared));
        ControlHandle { task, _file: file }
    }
}

async fn accept_loop(listener: UnixListener, access: Access, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, _)) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    serve(stream, access, shared).await;
                    drop(slot);
                });
            }
            Err(error) => {
                tracing::warn!("control socket: accept failed: {error}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// One connection: check the peer, read one request, write one reply.
async fn serve(mut stream: UnixStream, access: Access, shared: Arc<Shared>) {
    let reply = match access.peer(&stream) {
        Ok(peer) if access.allows(&peer) => match read_request(&mut stream).await {
            Ok(Request::Status) => status_line(shared).await,
            Err(error) => {
                tracing::debug!(uid = peer.uid, "control socket: {error}");
                error_line(&error.to_string())
            }
        },
        Ok(peer) => {
            tracing::warn!(
                uid = peer.uid,
                gid = peer.gid,
                "control socket: refused a client that is neither root, pinwatch's user nor in the control group"
            );
            error_line(&format!(
                "permission denied: uid {} is neither root, pinwatch's user nor a member of the control group",
                peer.uid
            ))
        }
        Err(error) => error_line(&format!("cannot read your credentials: {error}")),
    };
    // The peer may be gone already; nothing more to do then.
    let written = tokio::time::timeout(WRITE_DEADLINE, async {
        stream.write_all(reply.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
    if !matches!(written, Ok(Ok(()))) {
        tracing::debug!("control socket: the client did not take its reply");
        return;
    }
    let mut rest = (&mut stream).take(DRAIN_LIMIT);
    let _ = tokio::time::timeout(
        DRAIN_DEADLINE,
        tokio::io::copy(&mut rest, &mut tokio::io::sink()),
    )
    .await;
}

async fn read_request(stream: &mut UnixStream) -> Result<Request, RequestError> {
    let mut line = Vec::with_capacity(256);
    let mut reader = BufReader::new(stream).take(MAX_REQUEST as u64 + 1);
    match tokio::time::timeout(REQUEST_DEADLINE, reader.read_until(b'\n', &mut line)).await {
        Err(_) => Err(RequestError::Timeout),
        Ok(Err(error)) => Err(RequestError::Malformed(error.to_string())),
        Ok(Ok(_)) => parse_request(&line),
    }
}

/// Builds the report off the async thread: it takes the detector's lock,
/// which the detector thread holds for one batch at a time.
async fn status_line(shared: Arc<Shared>) -> String {
    let built = tokio::task::spawn_blocking(move || {
        let report = StatusReport::from(&Snapshot::now(&shared));
        serde_json::to_string(&report)
    })
    .await;
    match built {
        Ok(Ok(mut line)) => {
            line.push('\n');
            line
        }
        Ok(Err(error)) => error_line(&format!("cannot encode the status report: {error}")),
        Err(error) => error_line(&format!("building the status report failed: {error}")),
    }
}

fn lookup_group(name: &str) -> Result<u32, ControlError> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        Ok(None) => Err(ControlError::UnknownGroup {
            group: name.to_owned(),
        }),
        Err(source) => Err(ControlError::GroupLookup {
            group: name.to_owned(),
            source,
        }),
    }
}

/// Removes a socket file nothing answers on (left by a daemon that was
/// killed); refuses to touch a live socket or anything that is not a socket.
fn remove_stale(path: &Path) -> Result<(), ControlError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ControlError::Io {
                path: path.to_owned(),
                action: "cannot inspect",
                source,
            });
        }
    };
    if !meta.file_type().is_socket() {
        return Err(ControlError::NotASocket {
            path: path.to_owned(),
        });
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(ControlError::InUse {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            fs::remove_file(path).map_err(|source| ControlError::Io {
                path: path.to_owned(),
                action: "cannot remove the stale socket",
                source,
            })
        }
        Err(source) => Err(ControlError::Io {
            path: path.to_owned(),
            action: "cannot tell whether the existing socket is live",
            source,
        }),
    }
}

/// The socket file this daemon created; removed on drop unless another
/// file has taken its place since.
struct SocketFile {
    path: PathBuf,
    identity: (u64, u64),
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| (meta.dev(), meta.ino()) == self.identity);
        if ours && let Err(error) = fs::remove_file(&self.path) {
            tracing::warn!(
                "cannot remove the control socket {}: {error}",
                self.path.display()
            );
        }
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
