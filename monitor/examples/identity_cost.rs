//! What the daemon's container identity and resolv.conf lookups cost, for
//! the process ids given (e.g. a container's): a first lookup (nothing
//! cached: `/proc/PID/cgroup`, an inode check, the runtime's state), a cached
//! one, and a DNS socket owner's resolv.conf (cached per mount namespace,
//! checked with two stats). Run as root: `cargo run --release --example
//! identity_cost -- PID…`.
use std::{
    net::SocketAddr,
    time::{Instant, SystemTime},
};

use anyhow::Context;
use pinwatch::{
    event::{DnsOwnerEvent, Event, OwnerRole, Process},
    identity::{HostRoots, Resolver},
    kernel::find_cgroup2_root,
};

const ROUNDS: u32 = 2_000;

fn main() -> anyhow::Result<()> {
    let roots = HostRoots {
        proc: "/proc".into(),
        run: "/run".into(),
        cgroup: find_cgroup2_root()?,
    };
    for arg in std::env::args().skip(1) {
        let pid: u32 = arg.parse().context("a pid")?;
        let cgroup_id = cgroup_id(&roots, pid)?;
        let process = Process {
            pid,
            tid: pid,
            uid: 0,
            gid: 0,
            name: String::new(),
            cgroup_id,
        };
        let started = Instant::now();
        let mut found = None;
        for _ in 0..ROUNDS {
            found = Resolver::new(roots.clone()).workload(&process);
        }
        let cold = started.elapsed() / ROUNDS;
        let mut resolver = Resolver::new(roots.clone());
        let started = Instant::now();
        for _ in 0..ROUNDS {
            resolver.workload(&process);
        }
        let warm = started.elapsed() / ROUNDS;
        let mut batch = [Event::DnsOwner(DnsOwnerEvent {
            timestamp: SystemTime::now(),
            socket_cookie: 1,
            process: process.clone(),
            role: OwnerRole::Dns,
            destination: SocketAddr::from(([127, 0, 0, 1], 53)),
            resolv_conf: None,
        })];
        resolver.read_resolv_confs(&mut batch);
        let started = Instant::now();
        for _ in 0..ROUNDS {
            resolver.read_resolv_confs(&mut batch);
        }
        let resolv = started.elapsed() / ROUNDS;
        let container = found.map_or("host process".into(), |w| w.label());
        println!(
            "pid {pid} ({container}): first lookup {cold:?}, cached {warm:?}, resolv.conf per DNS socket {resolv:?}"
        );
    }
    Ok(())
}

/// The cgroup v2 id of `pid`: the inode of its cgroup directory.
fn cgroup_id(roots: &HostRoots, pid: u32) -> anyhow::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .context("no cgroup v2 line")?;
    Ok(std::fs::metadata(roots.cgroup.join(path.trim_start_matches('/')))?.ino())
}
