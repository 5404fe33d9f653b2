//! Each process's own resolv.conf: whom it was told to ask. Read through
//! `/proc/PID/root/etc/resolv.conf`, which resolves in the process's mount
//! namespace, so a container's bind-mounted file and the one `ip netns exec`
//! mounts from `/etc/netns/NAME/` are what is read. Cached per mount
//! namespace, and read again when the file's inode, size or modification
//! time changes (checked at most once a second per process).
use std::{
    collections::{HashMap, VecDeque},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{config::parse_resolv_conf, event::ResolvConf};

/// Mount namespaces remembered.
const CAPACITY: usize = 1_024;
/// A resolv.conf is a few lines; anything longer is read no further.
const MAX_BYTES: u64 = 64 << 10;
/// How long one process's answer is reused before the file is checked again.
const RECHECK: Duration = Duration::from_secs(1);

/// What identifies one version of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

#[derive(Debug)]
pub struct ResolvConfs {
    proc: PathBuf,
    by_namespace: HashMap<u64, (Stamp, Arc<ResolvConf>)>,
    order: VecDeque<u64>,
    /// Answers of the last second by pid: a process resolving in a loop
    /// opens a socket per lookup, and each would cost two path walks.
    recent: HashMap<u32, (Instant, Arc<ResolvConf>)>,
}

impl ResolvConfs {
    pub fn new(proc: PathBuf) -> ResolvConfs {
        ResolvConfs {
            proc,
            by_namespace: HashMap::new(),
            order: VecDeque::new(),
            recent: HashMap::new(),
        }
    }

    /// The resolv.conf of process `pid`; `None` when the process is gone.
    /// A process without one gets an empty list (the C library then asks
    /// the loopback address, a trusted stub).
    pub fn of(&mut self, pid: u32) -> Option<Arc<ResolvConf>> {
        let now = Instant::now();
        if let Some((at, conf)) = self.recent.get(&pid)
            && now.duration_since(*at) < RECHECK
        {
            return Some(conf.clone());
        }
        let conf = self.read(pid)?;
        if self.recent.len() >= CAPACITY {
            self.recent
                .retain(|_, (at, _)| now.duration_since(*at) < RECHECK);
            if self.recent.len() >= CAPACITY {
                self.recent.clear();
            }
        }
        self.recent.insert(pid, (now, conf.clone()));
        Some(conf)
    }

    fn read(&mut self, pid: u32) -> Option<Arc<ResolvConf>> {
        let process = self.proc.join(pid.to_string());
        let namespace = std::fs::metadata(process.join("ns/mnt")).ok()?.ino();
        let file = process.join("root/etc/resolv.conf");
        let stamp = match std::fs::metadata(&file) {
            Ok(m) => Stamp {
                dev: m.dev(),
                ino: m.ino(),
                size: m.size(),
                mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            },
            Err(_) if is_exiting(&process) => return None,
            Err(_) => Stamp {
                dev: 0,
                ino: 0,
                size: 0,
                mtime_ns: 0,
            },
        };
        if let Some((cached, conf)) = self.by_namespace.get(&namespace)
            && *cached == stamp
        {
            return Some(conf.clone());
        }
        let text = match read_bounded(&file) {
            Some(text) => text,
            None if is_exiting(&process) => return None,
            None => String::new(),
        };
        let conf = Arc::new(ResolvConf {
            path: mounted_from(&process).unwrap_or_else(|| "/etc/resolv.conf".into()),
            nameservers: parse_resolv_conf(&text),
        });
        if self
            .by_namespace
            .insert(namespace, (stamp, conf.clone()))
            .is_none()
        {
            self.order.push_back(namespace);
        }
        while self.by_namespace.len() > CAPACITY {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.by_namespace.remove(&oldest);
        }
        Some(conf)
    }
}

/// An exiting process lets go of its root directory before its pid, mount
/// namespace and mountinfo: it has no resolv.conf left to read, which is not
/// the same as having none (that would claim it was told of no resolver).
fn is_exiting(process: &Path) -> bool {
    std::fs::read_link(process.join("root")).is_err()
}

fn read_bounded(file: &Path) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(file)
        .ok()?
        .take(MAX_BYTES)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// The source of a bind mount over `/etc/resolv.conf` in the process's
/// mountinfo: its root within the mounted filesystem.
fn mounted_from(process: &Path) -> Option<String> {
    let text = std::fs::read_to_string(process.join("mountinfo")).ok()?;
    mount_source(&text)
}

fn mount_source(mountinfo: &str) -> Option<String> {
    // Fields: id parent major:minor root mountpoint …; the last mount wins.
    mountinfo.lines().rev().find_map(|line| {
        let mut fields = line.split_whitespace();
        let root = fields.nth(3)?;
        (fields.next()? == "/etc/resolv.conf").then(|| root.replace("\\040", " "))
    })
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    #[test]
    fn names_the_bind_mount_source() {
        let mountinfo = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
            400 22 8:1 /etc/netns/pwt-1-client/resolv.conf /etc/resolv.conf rw - ext4 /dev/sda1 rw\n";
        assert_eq!(
            mount_source(mountinfo).as_deref(),
            Some("/etc/netns/pwt-1-client/resolv.conf")
        );
        assert_eq!(mount_source("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"), None);
    }

    #[test]
    fn this_process_reads_the_hosts_file_once_per_version() {
        let mut confs = ResolvConfs::new("/proc".into());
        let pid = std::process::id();
        let first = confs.of(pid).expect("this process exists");
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        assert_eq!(first.nameservers, parse_resolv_conf(&host));
        let again = confs.of(pid).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "cached while unchanged");
        assert_eq!(confs.of(u32::MAX), None, "no such process");
    }

    /// A process as `/proc` shows it: its mount namespace, mountinfo, and a
    /// root directory unless it is exiting.
    fn fake_process(proc: &Path, pid: u32, root: Option<&Path>) {
        let dir = proc.join(pid.to_string());
        std::fs::create_dir_all(dir.join("ns")).unwrap();
        std::fs::write(dir.join("ns/mnt"), "").unwrap();
        std::fs::write(
            dir.join("mountinfo"),
            "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n",
        )
        .unwrap();
        if let Some(root) = root {
            std::os::unix::fs::symlink(root, dir.join("root")).unwrap();
        }
    }

    #[test]
    fn an_exiting_process_has_no_resolv_conf_rather_than_an_empty_one() {
        let scratch = tempfile::tempdir().unwrap();
        let proc = scratch.path().join("proc");
        let root = scratch.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        fake_process(&proc, 10, None);
        fake_process(&proc, 11, Some(&root));
        let mut confs = ResolvConfs::new(proc);
        assert_eq!(
            confs.of(10),
            None,
            "its container's other processes are asked instead"
        );
        let without = confs.of(11).expect("a live process without the file");
        assert!(without.nameservers.is_empty(), "{without:?}");
        std::fs::write(root.join("etc/resolv.conf"), "nameserver 198.51.100.53\n").unwrap();
        let mut confs = ResolvConfs::new(scratch.path().join("proc"));
        assert_eq!(
            confs.of(11).expect("a live process").nameservers,
            ["198.51.100.53".parse::<IpAddr>().unwrap()]
        );
    }
}
