//! Which pinwatch programs the kernel has loaded, and which are attached
//! to the cgroup v2 root.
use std::{
    fs,
    os::fd::AsFd,
    path::{Path, PathBuf},
    time::Duration,
};

use aya::programs::loaded_programs;

/// The programs the daemon attaches.
pub const PINWATCH_PROGRAMS: [&str; 9] = [
    "pw_dns_egress",
    "pw_dns_ingress",
    "pw_dns_iface",
    "pw_connect4",
    "pw_connect6",
    "pw_dns_sendmsg4",
    "pw_dns_sendmsg6",
    "pw_dns_connect4",
    "pw_dns_connect6",
];

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LoadedProgram {
    pub id: u32,
    pub name: String,
}

/// Loaded programs whose name is one of [`PINWATCH_PROGRAMS`].
pub fn loaded_pinwatch_programs() -> Vec<LoadedProgram> {
    let mut found: Vec<LoadedProgram> = loaded_programs()
        // A program can be unloaded between listing and opening it.
        .filter_map(Result::ok)
        .filter_map(|info| {
            let name = info.name_as_str()?.to_owned();
            PINWATCH_PROGRAMS
                .contains(&name.as_str())
                .then(|| LoadedProgram {
                    id: info.id(),
                    name,
                })
        })
        .collect();
    found.sort();
    found
}

/// The cgroup v2 root, as the daemon finds it.
pub fn cgroup_root() -> PathBuf {
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
pub fn attached_pinwatch_programs(root: &Path) -> Vec<(String, u32)> {
    let cgroup = fs::File::open(root).expect("open the cgroup root");
    let names = loaded_pinwatch_programs();
    let mut found: Vec<(String, u32)> = PINWATCH_HOOKS
        .iter()
        .flat_map(|&hook| crate::bpf_sys::prog_query(cgroup.as_fd(), hook))
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

/// Waits (10 s at most: the kernel frees programs after an RCU grace
/// period) until no pinwatch program is loaded — so none is attached
/// anywhere, nor pinned; panics with `context` otherwise.
pub fn assert_all_unloaded(context: &str) {
    let freed = crate::poll(Duration::from_secs(10), || {
        loaded_pinwatch_programs().is_empty().then_some(())
    });
    assert!(
        freed.is_some(),
        "pinwatch programs are still loaded: {:?}\n{context}",
        loaded_pinwatch_programs()
    );
}
