//! Which pinwatch programs the kernel has loaded, and which are attached
//! to the cgroup v2 root.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use aya::programs::loaded_programs;
use serde_json::Value;

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

/// (name, program id) of the pinwatch programs attached to the cgroup
/// root, by bpftool: a view independent of the daemon's own code.
pub fn attached_pinwatch_programs(root: &Path) -> Vec<(String, u32)> {
    let output = Command::new("bpftool")
        .args(["-j", "cgroup", "show"])
        .arg(root)
        .output()
        .expect("run bpftool (cargo xtask setup installs it)");
    assert!(output.status.success(), "bpftool cgroup show: {output:?}");
    // bpftool prints nothing at all when nothing is attached.
    let text = String::from_utf8_lossy(&output.stdout);
    let list: Vec<Value> = if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bpftool's JSON ({e}): {text}"))
    };
    let mut found: Vec<(String, u32)> = list
        .iter()
        .filter_map(|p| {
            let name = p["name"].as_str()?;
            let id = u32::try_from(p["id"].as_u64()?).ok()?;
            name.starts_with("pw_").then(|| (name.to_owned(), id))
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
