//! The journald sink against a fake journal: a datagram socket in a temp
//! dir, read the way journald reads it.
use std::{
    fs::File,
    io::{IoSliceMut, Read, Seek, SeekFrom},
    os::fd::{FromRawFd, RawFd},
    time::UNIX_EPOCH,
};

use nix::sys::socket::{ControlMessageOwned, recvmsg};

use super::*;
use crate::alert::{AgentInfo, Alert, DnsAnswer, DnsFacts, Rule, encode};

/// One entry as journald would read it: the datagram, or the memfd sent
/// with an empty one.
fn receive(socket: &UnixDatagram) -> (Vec<u8>, bool) {
    let mut buf = vec![0u8; 1 << 20];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .unwrap();
    let fd = msg.cmsgs().unwrap().find_map(|cmsg| match cmsg {
        ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
        _ => None,
    });
    let len = msg.bytes;
    match fd {
        Some(fd) => {
            assert_eq!(len, 0, "a memfd entry comes with an empty datagram");
            // SAFETY: the kernel just installed this descriptor for us.
            let mut file = unsafe { File::from_raw_fd(fd) };
            let seals = fcntl(&file, FcntlArg::F_GET_SEALS).unwrap();
            assert_eq!(
                SealFlag::from_bits_truncate(seals),
                SealFlag::all(),
                "journald refuses unsealed memfds"
            );
            // journald maps the memfd from its start; the offset the sender
            // left is at its end.
            file.seek(SeekFrom::Start(0)).unwrap();
            let mut entry = Vec::new();
            file.read_to_end(&mut entry).unwrap();
            (entry, true)
        }
        None => (buf[..len].to_vec(), false),
    }
}

/// (name, value) pairs, both field forms, as journald parses them.
fn parse(bytes: &[u8]) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let end = rest.iter().position(|&b| b == b'\n' || b == b'=').unwrap();
        let name = String::from_utf8(rest[..end].to_vec()).unwrap();
        if rest[end] == b'=' {
            let stop = end + rest[end..].iter().position(|&b| b == b'\n').unwrap();
            fields.push((
                name,
                String::from_utf8(rest[end + 1..stop].to_vec()).unwrap(),
            ));
            rest = &rest[stop + 1..];
        } else {
            let body = &rest[end + 1..];
            let len = u64::from_le_bytes(body[..8].try_into().unwrap()) as usize;
            assert_eq!(
                body[8 + len],
                b'\n',
                "length-prefixed value ends in a newline"
            );
            fields.push((name, String::from_utf8(body[8..8 + len].to_vec()).unwrap()));
            rest = &body[8 + len + 1..];
        }
    }
    fields
}

fn values<'a>(fields: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    fields
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn one<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    match values(fields, name)[..] {
        [value] => value,
        ref other => panic!("{name}: expected one value, got {other:?} in {fields:?}"),
    }
}

struct FakeJournal {
    _dir: tempfile::TempDir,
    path: PathBuf,
    socket: UnixDatagram,
}

impl FakeJournal {
    fn new() -> FakeJournal {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        let socket = UnixDatagram::bind(&path).unwrap();
        FakeJournal {
            _dir: dir,
            path,
            socket,
        }
    }

    fn next(&self) -> (Vec<(String, String)>, bool) {
        let (bytes, memfd) = receive(&self.socket);
        (parse(&bytes), memfd)
    }
}

fn agent() -> AgentInfo {
    AgentInfo {
        host_name: "app-1".into(),
        version: "9.9.9".into(),
    }
}

fn diverged() -> Alert {
    let mut alert = Alert::new(UNIX_EPOCH, Rule::DnsAnswerDiverged, "forged answer".into());
    alert.database = Some("orders".into());
    alert.source = Some("198.51.100.53:53".parse().unwrap());
    alert.destination = Some("198.51.100.10:40000".parse().unwrap());
    alert.unexpected_ips = vec![
        "203.0.113.66".parse().unwrap(),
        "203.0.113.67".parse().unwrap(),
    ];
    alert.dns = Some(DnsFacts {
        id: 7,
        question_name: "DB.lab.test".into(),
        question_type: "A".into(),
        resolved_ips: vec!["203.0.113.66".parse().unwrap()],
        answers: vec![DnsAnswer {
            name: "DB.lab.test".into(),
            record_type: "A".into(),
            data: "203.0.113.66".into(),
            ttl: 30,
        }],
    });
    alert
}

#[test]
fn sends_one_entry_with_the_ecs_fields_flattened() {
    let fake = FakeJournal::new();
    let mut journal = Journal::open(&fake.path).unwrap();
    let line = encode(&diverged(), &agent(), "id-1");
    journal.send(&line).unwrap();
    let (fields, memfd) = fake.next();
    assert!(!memfd, "a small entry fits one datagram");
    assert_eq!(one(&fields, "MESSAGE"), "forged answer");
    assert_eq!(one(&fields, "PRIORITY"), "3", "severity 3 high is err");
    assert_eq!(one(&fields, "SYSLOG_IDENTIFIER"), "pinwatch");
    assert_eq!(one(&fields, "PINWATCH_ALERT"), line, "the whole ECS line");
    assert_eq!(one(&fields, "EVENT_KIND"), "alert");
    assert_eq!(one(&fields, "EVENT_ACTION"), "dns-answer-diverged");
    assert_eq!(one(&fields, "EVENT_SEVERITY"), "3");
    assert_eq!(one(&fields, "EVENT_ID"), "id-1");
    assert_eq!(one(&fields, "PINWATCH_DATABASE"), "orders");
    assert_eq!(one(&fields, "DESTINATION_IP"), "198.51.100.10");
    assert_eq!(one(&fields, "SOURCE_PORT"), "53");
    assert_eq!(one(&fields, "DNS_QUESTION_NAME"), "DB.lab.test");
    assert_eq!(one(&fields, "TIMESTAMP"), "1970-01-01T00:00:00.000000Z");
    assert_eq!(
        values(&fields, "PINWATCH_UNEXPECTED_IPS"),
        ["203.0.113.66", "203.0.113.67"],
        "a list of scalars is the field repeated"
    );
    assert!(
        values(&fields, "DNS_ANSWERS").is_empty(),
        "objects stay in PINWATCH_ALERT"
    );
    for (name, _) in &fields {
        assert!(
            !name.is_empty()
                && name.len() <= 64
                && !name.starts_with(|c: char| c == '_' || c.is_ascii_digit())
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
            "{name:?} is not a valid journal field name"
        );
    }
}

#[test]
fn values_with_newlines_use_the_length_prefixed_form() {
    let fake = FakeJournal::new();
    let mut journal = Journal::open(&fake.path).unwrap();
    let mut alert = Alert::new(
        UNIX_EPOCH,
        Rule::UnexpectedDbPeer,
        "line one\nline two=x".into(),
    );
    alert.process = Some(crate::event::Process {
        pid: 4242,
        tid: 4243,
        uid: 0,
        gid: 0,
        name: "python3".into(),
        cgroup_id: 0,
    });
    journal.send(&encode(&alert, &agent(), "id-2")).unwrap();
    let (bytes, _) = receive(&fake.socket);
    assert!(
        bytes.windows(8).any(|w| w == b"MESSAGE\n"),
        "MESSAGE should be length-prefixed: {:?}",
        String::from_utf8_lossy(&bytes)
    );
    let fields = parse(&bytes);
    assert_eq!(one(&fields, "MESSAGE"), "line one\nline two=x");
    assert_eq!(one(&fields, "PRIORITY"), "2", "severity 4 critical is crit");
    assert_eq!(one(&fields, "PROCESS_PID"), "4242");
    assert_eq!(one(&fields, "PROCESS_NAME"), "python3");
}

#[test]
fn large_entries_go_through_a_sealed_memfd() {
    let fake = FakeJournal::new();
    let mut journal = Journal::open(&fake.path).unwrap();
    // Larger than any datagram the socket's send buffer allows.
    let message = "x".repeat(4 << 20);
    let alert = Alert::new(UNIX_EPOCH, Rule::EventLoss, message.clone());
    journal.send(&encode(&alert, &agent(), "id-3")).unwrap();
    let (fields, memfd) = fake.next();
    assert!(memfd, "a 4 MiB entry cannot be one datagram");
    assert_eq!(one(&fields, "MESSAGE").len(), message.len());
    assert_eq!(one(&fields, "EVENT_ACTION"), "event-loss");
    assert_eq!(
        one(&fields, "PRIORITY"),
        "4",
        "severity 2 medium is warning"
    );
}

#[test]
fn a_missing_journal_fails_the_start_and_a_gone_one_fails_the_write() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let err = Journal::open(&missing).err().unwrap();
    assert!(
        err.to_string().contains(&*missing.to_string_lossy()),
        "{err}"
    );
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "").unwrap();
    assert!(matches!(
        Journal::open(&file),
        Err(JournalError::NotSocket { .. })
    ));

    let fake = FakeJournal::new();
    let mut journal = Journal::open(&fake.path).unwrap();
    drop(fake);
    let line = encode(&diverged(), &agent(), "id-4");
    assert!(
        journal.send(&line).is_err(),
        "a send error is an error, never a silent drop"
    );
}

#[test]
fn priorities_follow_severity() {
    assert_eq!([4, 3, 2, 1].map(priority), [2, 3, 4, 5]);
    assert_eq!(journal_name("@timestamp"), "TIMESTAMP");
    assert_eq!(journal_name("resolved_ip"), "RESOLVED_IP");
}
