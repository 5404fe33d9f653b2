//! Stale pinwatch programs on the cgroup root at start: orphans (a link
//! pinned in bpffs, a program attached without a link) are detached and
//! reported as `stale-programs-removed`; programs a running pinwatch holds
//! make a second daemon refuse to start (exit 2), naming the first's pid.
//!
//!     cargo build -p pinwatch
//!     cargo test -p pinwatch-integration-tests --test stale -- --test-threads=1
use std::{
    ffi::CString,
    fs,
    os::{fd::AsFd, unix::ffi::OsStrExt},
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use pinwatch_integration_tests::{
    Daemon, DaemonConfig, Database, assert_all_unloaded, assert_ecs_base,
    attached_pinwatch_programs, bpf_sys as bpf, cgroup_root, field, lines, pinwatch_bin,
    require_root, str_field,
};
use serde_json::Value;

const RULE: &str = "stale-programs-removed";

fn config() -> DaemonConfig {
    DaemonConfig {
        databases: vec![Database::new(
            "orders",
            &["db.stale.test"],
            &[26257],
            &["192.0.2.0/24"],
        )],
        trusted_resolvers: Vec::new(),
    }
}

/// A bpffs mounted in a temp dir for the test's pins, and the orphans the
/// test made: on drop (also when the test fails) what is still attached is
/// detached, the bpffs unmounted (releasing the pinned link) and the dir
/// removed.
struct Orphans {
    bpffs: PathBuf,
    mounted: bool,
    cgroup: fs::File,
    prog_attached: Vec<(u32, u32)>,
}

impl Orphans {
    fn new() -> Orphans {
        let bpffs = std::env::temp_dir().join(format!("pwt-bpffs-{}", std::process::id()));
        fs::create_dir_all(&bpffs).expect("create the bpffs mount point");
        let target = CString::new(bpffs.as_os_str().as_bytes()).unwrap();
        // SAFETY: valid NUL-terminated strings; no data argument.
        let ret = unsafe {
            libc::mount(
                c"bpf".as_ptr(),
                target.as_ptr(),
                c"bpf".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        assert_eq!(ret, 0, "mount -t bpf: {}", std::io::Error::last_os_error());
        Orphans {
            bpffs,
            mounted: true,
            cgroup: fs::File::open(cgroup_root()).expect("open the cgroup root"),
            prog_attached: Vec::new(),
        }
    }

    /// Attaches program `id` through a new link pinned in the bpffs, then
    /// closes every descriptor: only the pin keeps it attached.
    fn pin_link(&self, id: u32, attach_type: u32) -> PathBuf {
        let prog = bpf::prog_fd(id).expect("program fd by id");
        let link = bpf::link_create(prog.as_fd(), self.cgroup.as_fd(), attach_type);
        let path = self.bpffs.join(format!("link-{id}"));
        bpf::pin(link.as_fd(), &path);
        path
    }

    /// Attaches program `id` without a link (as before bpf_links): the
    /// cgroup holds it once the descriptor is closed.
    fn attach_without_link(&mut self, id: u32, attach_type: u32) {
        let prog = bpf::prog_fd(id).expect("program fd by id");
        bpf::prog_attach(prog.as_fd(), self.cgroup.as_fd(), attach_type);
        self.prog_attached.push((id, attach_type));
    }
}

impl Drop for Orphans {
    fn drop(&mut self) {
        for &(id, attach_type) in &self.prog_attached {
            // Gone already when the daemon did its job.
            if let Ok(prog) = bpf::prog_fd(id) {
                let _ = bpf::prog_detach(prog.as_fd(), self.cgroup.as_fd(), attach_type);
            }
        }
        if self.mounted {
            let target = CString::new(self.bpffs.as_os_str().as_bytes()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
        let _ = fs::remove_dir(&self.bpffs);
    }
}

fn id_of(programs: &[(String, u32)], name: &str) -> u32 {
    programs
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name} not attached: {programs:?}"))
        .1
}

#[test]
fn orphaned_programs_are_detached_and_reported() {
    require_root();
    let root = cgroup_root();
    assert_eq!(
        attached_pinwatch_programs(&root),
        [],
        "pinwatch programs are attached before the test: is another daemon running?"
    );
    let mut orphans = Orphans::new();

    // A first daemon's programs, attached again behind its back.
    let mut first = Daemon::start(&config());
    let theirs = attached_pinwatch_programs(&root);
    assert_eq!(theirs.len(), 8, "{theirs:?}");
    let connect4 = id_of(&theirs, "pw_connect4");
    let ingress = id_of(&theirs, "pw_dns_ingress");
    let pin = orphans.pin_link(connect4, bpf::INET4_CONNECT);
    orphans.attach_without_link(ingress, bpf::INET_INGRESS);
    assert_eq!(
        first.stop().and_then(|s| s.code()),
        Some(0),
        "{}",
        first.dump()
    );
    drop(first);
    let left = attached_pinwatch_programs(&root);
    assert_eq!(
        left,
        [
            ("pw_connect4".to_owned(), connect4),
            ("pw_dns_ingress".to_owned(), ingress)
        ],
        "after the first daemon stopped, only the orphans are attached"
    );

    let daemon = Daemon::start(&config());
    let alerts = daemon.alerts().read();
    let context = format!("alerts:\n{}\n{}", lines(&alerts), daemon.dump());
    let stale: Vec<&Value> = alerts
        .iter()
        .filter(|a| field(a, "event.action").and_then(Value::as_str) == Some(RULE))
        .collect();
    assert_eq!(
        stale.len(),
        1,
        "one {RULE} alert, written before `ready`:\n{context}"
    );
    assert_ecs_base(stale[0], RULE);
    assert_eq!(
        field(stale[0], "event.severity").and_then(Value::as_u64),
        Some(2)
    );
    let message = str_field(stale[0], "message");
    let link = format!("pw_connect4 (program id {connect4}, cgroup/connect4, link id ");
    let unlinked = format!(
        "pw_dns_ingress (program id {ingress}, cgroup_skb/ingress, attached without a link)"
    );
    assert!(message.contains(&link), "{message}");
    assert!(message.contains(&unlinked), "{message}");
    assert!(message.contains(&*root.to_string_lossy()), "{message}");
    let mut programs: Vec<(String, u64, String, bool)> = field(stale[0], "pinwatch.stale_programs")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no pinwatch.stale_programs list:\n{context}"))
        .iter()
        .map(|p| {
            (
                str_field(p, "name").to_owned(),
                p["id"].as_u64().unwrap_or_default(),
                str_field(p, "kind").to_owned(),
                p["link_id"].as_u64().is_some(),
            )
        })
        .collect();
    programs.sort();
    assert_eq!(
        programs,
        [
            (
                "pw_connect4".into(),
                u64::from(connect4),
                "cgroup/connect4".into(),
                true
            ),
            (
                "pw_dns_ingress".into(),
                u64::from(ingress),
                "cgroup_skb/ingress".into(),
                false
            ),
        ],
        "{context}"
    );

    let ours = attached_pinwatch_programs(&root);
    let mut names: Vec<&str> = ours.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "pw_connect4",
            "pw_connect6",
            "pw_dns_connect4",
            "pw_dns_connect6",
            "pw_dns_egress",
            "pw_dns_ingress",
            "pw_dns_sendmsg4",
            "pw_dns_sendmsg6"
        ],
        "only the new daemon's eight programs are attached:\n{context}"
    );
    assert!(
        ours.iter().all(|(_, id)| *id != connect4 && *id != ingress),
        "the orphans are detached: {ours:?}\n{context}"
    );
    // The pin itself is the operator's to remove; the link behind it is
    // detached and no longer runs anything.
    assert!(pin.exists());
    drop(daemon);
    drop(orphans);
    assert_eq!(
        attached_pinwatch_programs(&root),
        [],
        "everything detached at the end"
    );
    assert_all_unloaded("no pinwatch program stays loaded once the pin is gone");
}

#[test]
fn a_second_daemon_refuses_to_start_and_names_the_first() {
    require_root();
    let first = Daemon::start(&config());
    let first_pid = first.pid().expect("running");
    let dir = first.dir().join("second");
    fs::create_dir_all(&dir).unwrap();
    let config_path = dir.join("pinwatch.toml");
    // Its own alert file and control socket: only the programs collide.
    let text = fs::read_to_string(first.config_path())
        .unwrap()
        .replace(&*first.dir().to_string_lossy(), &dir.to_string_lossy());
    fs::write(&config_path, text).unwrap();

    let mut second = Command::new(pinwatch_bin())
        .arg("run")
        .arg("-c")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the second daemon");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            panic!("the second pinwatch kept running beside the first (pid {first_pid})");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = second.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(status.code(), Some(2), "exit 2:\n{stderr}");
    assert!(
        stderr.contains(&format!("pid {first_pid} (pinwatch)")),
        "names the running daemon:\n{stderr}"
    );
    assert!(!stderr.contains("pinwatch ready"), "{stderr}");
    assert!(
        first
            .alerts()
            .read()
            .iter()
            .all(|a| str_field(a, "event.action") != RULE),
        "the first daemon's programs were not touched:\n{}",
        first.dump()
    );
    // Drop asserts that the first daemon still stops cleanly (exit 0).
    drop(first);
}
