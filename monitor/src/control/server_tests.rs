use std::{
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::UnixStream,
};

use super::*;
use crate::{
    config::ControlSettings,
    control::{
        ClientError,
        client::{request_status, request_status_within},
    },
    state::tests::shared,
};

fn settings(socket: PathBuf, group: Option<String>) -> ControlSettings {
    ControlSettings { socket, group }
}

/// Sends `bytes`, closes the sending side, and returns the whole reply.
async fn raw_exchange(socket: &Path, bytes: &[u8]) -> String {
    let mut stream = UnixStream::connect(socket).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    reply
}

fn error_of(reply: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(reply.trim_end())
        .unwrap_or_else(|e| panic!("reply {reply:?} is not JSON: {e}"));
    value["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {reply:?}"))
        .to_owned()
}

#[tokio::test]
async fn serves_status_and_removes_its_socket_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("run/pinwatch/pinwatch.sock");
    let server = ControlServer::bind(&settings(socket.clone(), None)).unwrap();

    let parent = fs::metadata(socket.parent().unwrap()).unwrap();
    assert_eq!(parent.permissions().mode() & 0o7777, 0o755);
    let meta = fs::symlink_metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);

    let handle = server.spawn(Arc::new(shared()));
    let reply = request_status(&socket).await.unwrap();
    assert_eq!(reply.report.databases[0].name, "orders");
    assert!(reply.json.starts_with("{\"version\":"), "{}", reply.json);

    drop(handle);
    assert!(!socket.exists(), "the socket file is removed on shutdown");
}

#[tokio::test]
async fn garbage_gets_an_error_reply_and_the_next_client_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("pinwatch.sock");
    let _handle = ControlServer::bind(&settings(socket.clone(), None))
        .unwrap()
        .spawn(Arc::new(shared()));

    let binary: Vec<u8> = (0..=255u8).cycle().skip(1).take(1000).collect();
    let long = vec![b'x'; MAX_REQUEST * 3];
    for (bytes, expected) in [
        (&binary[..], "not a request"),
        (&long[..], "longer than 4096 bytes"),
        (b"not json\n".as_slice(), "not a request"),
        (b"{\"command\":\"reboot\"}\n".as_slice(), "not a request"),
        (b"\n".as_slice(), "empty request"),
        (b"".as_slice(), "empty request"),
    ] {
        let error = error_of(&raw_exchange(&socket, bytes).await);
        assert!(error.contains(expected), "{error:?} for {bytes:?}");
    }
    // Without the newline, a request that ends with the connection counts.
    let reply = raw_exchange(&socket, b"{\"command\":\"status\"}").await;
    assert!(reply.contains("\"databases\""), "{reply}");
    request_status(&socket).await.unwrap();
}

#[tokio::test]
async fn a_silent_client_is_answered_after_the_deadline_without_holding_up_others() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("pinwatch.sock");
    let _handle = ControlServer::bind(&settings(socket.clone(), None))
        .unwrap()
        .spawn(Arc::new(shared()));

    let started = Instant::now();
    let mut silent = UnixStream::connect(&socket).await.unwrap();
    request_status(&socket).await.unwrap();
    assert!(started.elapsed() < REQUEST_DEADLINE, "served meanwhile");

    let mut reply = String::new();
    silent.read_to_string(&mut reply).await.unwrap();
    assert!(started.elapsed() >= REQUEST_DEADLINE);
    assert!(error_of(&reply).contains("no complete request within 2s"));
}

#[tokio::test]
async fn a_stale_socket_is_replaced_but_a_live_one_or_another_file_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("pinwatch.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists(), "a socket file nothing listens on");
    let live = ControlServer::bind(&settings(socket.clone(), None)).unwrap();

    match ControlServer::bind(&settings(socket.clone(), None)) {
        Err(ControlError::InUse { path }) => assert_eq!(path, socket),
        Err(other) => panic!("expected InUse, got {other}"),
        Ok(_) => panic!("bound over a live socket"),
    }
    drop(live);

    let file = dir.path().join("not-a-socket");
    fs::write(&file, "keep me").unwrap();
    assert!(matches!(
        ControlServer::bind(&settings(file.clone(), None)),
        Err(ControlError::NotASocket { .. })
    ));
    assert_eq!(fs::read_to_string(&file).unwrap(), "keep me");
}

#[tokio::test]
async fn with_a_group_the_socket_is_group_owned_and_0660() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("pinwatch.sock");
    let gid = nix::unistd::getegid();
    let group = nix::unistd::Group::from_gid(gid)
        .unwrap()
        .expect("the test's own group has a name");
    let _server = ControlServer::bind(&settings(socket.clone(), Some(group.name))).unwrap();
    let meta = fs::symlink_metadata(&socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o660);
    assert_eq!(meta.gid(), gid.as_raw());
}

#[tokio::test]
async fn an_unknown_group_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("pinwatch.sock");
    let error = ControlServer::bind(&settings(socket, Some("no-such-group-pw".into())))
        .err()
        .expect("refused");
    assert!(
        error.to_string().contains("\"no-such-group-pw\""),
        "{error}"
    );
}

#[tokio::test]
async fn the_client_says_why_the_daemon_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.sock");
    assert!(matches!(
        request_status(&missing).await,
        Err(ClientError::NoSocket { .. })
    ));

    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(matches!(
        request_status(&stale).await,
        Err(ClientError::NotListening { .. })
    ));

    // Accepts but never answers: the client gives up at its deadline.
    let mute = dir.path().join("mute.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&mute).unwrap();
    let error = request_status_within(&mute, Duration::from_millis(200))
        .await
        .expect_err("times out");
    assert!(matches!(error, ClientError::Timeout { .. }), "{error}");
}
