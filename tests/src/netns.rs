//! Network namespaces that the tests create and always delete.
use std::{path::Path, process::Command};

use crate::cmd::{command, output, run};

/// Every namespace the harness creates is named `pwt-<test pid>-<name>`.
pub const NS_PREFIX: &str = "pwt-";

/// A network namespace `pwt-<pid>-<name>`, created with `ip netns add`.
///
/// Drop kills every process still inside it and deletes it.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates the namespace and brings its `lo` up.
    pub fn new(short: &str) -> NetNs {
        let name = format!("{NS_PREFIX}{}-{short}", std::process::id());
        if pwt_namespaces().contains(&name) {
            // A leftover of an earlier process that had our pid.
            remove(&name);
        }
        run(&mut command("ip", &["netns", "add", &name]));
        let ns = NetNs { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec <ns> <program>`: add arguments and run. `ip netns exec`
    /// execs the program, so the child's pid is the program's pid.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// `ip -n <ns> <args>`; panics when it fails.
    pub fn ip(&self, args: &[&str]) {
        let mut cmd = command("ip", &["-n", &self.name]);
        cmd.args(args);
        run(&mut cmd);
    }

    /// Pids of the processes inside the namespace.
    pub fn pids(&self) -> Vec<i32> {
        pids(&self.name)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        remove(&self.name);
    }
}

fn pids(name: &str) -> Vec<i32> {
    let out = output(&mut command("ip", &["netns", "pids", name]));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Kills what runs inside `name`, then deletes it. Never panics: it runs in
/// Drop, also while a failed test unwinds.
fn remove(name: &str) {
    for _ in 0..50 {
        let pids = pids(name);
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = output(&mut command("ip", &["netns", "delete", name]));
    if !out.status.success() {
        eprintln!(
            "pinwatch tests: could not delete network namespace {name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
}

/// Names of all `pwt-` namespaces that exist now.
pub fn pwt_namespaces() -> Vec<String> {
    let out = output(&mut command("ip", &["netns", "list"]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        // Lines read `name` or `name (id: 3)`.
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(NS_PREFIX))
        .map(str::to_owned)
        .collect()
}

/// Deletes `pwt-<pid>-*` namespaces whose creating process is gone (a test
/// run killed before its guards ran), so they cannot confuse later runs.
pub fn reap_stale_namespaces() {
    for name in pwt_namespaces() {
        let owner = name[NS_PREFIX.len()..]
            .split('-')
            .next()
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = owner
            && pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            eprintln!("pinwatch tests: deleting stale network namespace {name}");
            remove(&name);
        }
    }
}
