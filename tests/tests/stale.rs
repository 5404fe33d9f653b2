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
    os::{
        fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use pinwatch_integration_tests::{
    Daemon, DaemonConfig, Database, assert_ecs_base, field, lines, loaded_pinwatch_programs,
    pinwatch_bin, poll, require_root, str_field,
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

/// The cgroup v2 root, as the daemon finds it.
fn cgroup_root() -> PathBuf {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    mountinfo
        .lines()
        .find_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let mut fields = before.split_whitespace();
            if !after.starts_with("cgroup2 ") || fields.nth(3)? != "/" {
                return None;
            }
            fields.next().map(PathBuf::from)
        })
        .expect("a cgroup v2 mount")
}

/// The cgroup hooks pinwatch attaches to (BPF_CGROUP_INET_INGRESS, _EGRESS,
/// INET4_CONNECT, INET6_CONNECT, UDP4_SENDMSG, UDP6_SENDMSG).
const PINWATCH_HOOKS: [u32; 6] = [0, 1, 10, 11, 14, 15];

/// (name, program id) of the pinwatch programs attached to the cgroup
/// root, by the test's own BPF_PROG_QUERY on each hook pinwatch uses: a view
/// independent of the daemon's code. (Not `bpftool cgroup show`: Debian
/// 12's bpftool queries attach types 5.10 does not know and gives up with
/// an error there.)
fn attached_pinwatch_programs(root: &Path) -> Vec<(String, u32)> {
    let cgroup = fs::File::open(root).expect("open the cgroup root");
    let names = loaded_pinwatch_programs();
    let mut found: Vec<(String, u32)> = PINWATCH_HOOKS
        .iter()
        .flat_map(|&hook| bpf::prog_query(cgroup.as_fd(), hook))
        .filter_map(|id| {
            names
                .iter()
                .find(|p| p.id == id)
                .map(|p| (p.name.clone(), id))
        })
        .collect();
    found.sort();
    found
}

/// bpf(2) for what aya does not offer a test: attaching a program found by
/// id the way an older pinwatch or a person with bpftool would.
mod bpf {
    use super::*;

    const BPF_OBJ_PIN: libc::c_long = 6;
    const BPF_PROG_ATTACH: libc::c_long = 8;
    const BPF_PROG_DETACH: libc::c_long = 9;
    const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
    const BPF_PROG_QUERY: libc::c_long = 16;
    const BPF_LINK_CREATE: libc::c_long = 28;
    pub const INET_INGRESS: u32 = 0;
    pub const INET4_CONNECT: u32 = 10;
    const BPF_F_ALLOW_MULTI: u32 = 2;

    #[repr(C, align(8))]
    struct Attr([u8; 160]);

    fn call(cmd: libc::c_long, fields: &[(usize, u64, usize)]) -> std::io::Result<i64> {
        call_with(cmd, fields, &mut Attr([0; 160]))
    }

    /// As [`call`], leaving what the kernel wrote back in `attr`.
    fn call_with(
        cmd: libc::c_long,
        fields: &[(usize, u64, usize)],
        attr: &mut Attr,
    ) -> std::io::Result<i64> {
        for &(offset, value, size) in fields {
            attr.0[offset..offset + size].copy_from_slice(&value.to_ne_bytes()[..size]);
        }
        // SAFETY: attr is a valid buffer of the size passed; pointers in it
        // refer to buffers the caller keeps alive across the call.
        let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.0.as_mut_ptr(), 160usize) };
        if ret < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(ret)
        }
    }

    /// BPF_PROG_QUERY: the ids of the programs attached to `cgroup` itself
    /// (not inherited) at `attach_type`.
    pub fn prog_query(cgroup: BorrowedFd, attach_type: u32) -> Vec<u32> {
        let mut ids = [0u32; 64];
        let mut attr = Attr([0; 160]);
        let fields = [
            (0, cgroup.as_raw_fd() as u64, 4),
            (4, u64::from(attach_type), 4),
            (16, ids.as_mut_ptr() as u64, 8),
            (24, ids.len() as u64, 4),
        ];
        call_with(BPF_PROG_QUERY, &fields, &mut attr)
            .unwrap_or_else(|e| panic!("BPF_PROG_QUERY of attach type {attach_type}: {e}"));
        let mut count = [0u8; 4];
        count.copy_from_slice(&attr.0[24..28]);
        let count = (u32::from_ne_bytes(count) as usize).min(ids.len());
        ids[..count].to_vec()
    }

    fn owned(ret: i64) -> OwnedFd {
        // SAFETY: the command returned a new descriptor nothing else owns.
        unsafe { OwnedFd::from_raw_fd(ret as i32) }
    }

    pub fn prog_fd(id: u32) -> std::io::Result<OwnedFd> {
        call(BPF_PROG_GET_FD_BY_ID, &[(0, u64::from(id), 4)]).map(owned)
    }

    /// A cgroup link, as pinwatch makes them.
    pub fn link_create(prog: BorrowedFd, cgroup: BorrowedFd, attach_type: u32) -> OwnedFd {
        let fields = [
            (0, prog.as_raw_fd() as u64, 4),
            (4, cgroup.as_raw_fd() as u64, 4),
            (8, u64::from(attach_type), 4),
        ];
        owned(call(BPF_LINK_CREATE, &fields).expect("bpf_link_create"))
    }

    pub fn pin(fd: BorrowedFd, path: &Path) {
        let path = CString::new(path.as_os_str().as_bytes()).unwrap();
        let fields = [(0, path.as_ptr() as u64, 8), (8, fd.as_raw_fd() as u64, 4)];
        call(BPF_OBJ_PIN, &fields).expect("bpf_obj_pin");
    }

    /// BPF_PROG_ATTACH: the cgroup itself holds the program from now on.
    pub fn prog_attach(prog: BorrowedFd, cgroup: BorrowedFd, attach_type: u32) {
        let fields = [
            (0, cgroup.as_raw_fd() as u64, 4),
            (4, prog.as_raw_fd() as u64, 4),
            (8, u64::from(attach_type), 4),
            (12, u64::from(BPF_F_ALLOW_MULTI), 4),
        ];
        call(BPF_PROG_ATTACH, &fields).expect("bpf_prog_attach");
    }

    pub fn prog_detach(
        prog: BorrowedFd,
        cgroup: BorrowedFd,
        attach_type: u32,
    ) -> std::io::Result<()> {
        let fields = [
            (0, cgroup.as_raw_fd() as u64, 4),
            (4, prog.as_raw_fd() as u64, 4),
            (8, u64::from(attach_type), 4),
        ];
        call(BPF_PROG_DETACH, &fields).map(drop)
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
    // The kernel frees programs after an RCU grace period: wait for it.
    let freed = poll(Duration::from_secs(10), || {
        loaded_pinwatch_programs().is_empty().then_some(())
    });
    assert!(
        freed.is_some(),
        "no pinwatch program stays loaded once the pin is gone: {:?}",
        loaded_pinwatch_programs()
    );
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
