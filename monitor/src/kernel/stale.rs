//! pinwatch programs already attached to the cgroup v2 root when the
//! daemon starts.
//!
//! pinwatch's own attachments are links pinned under `[kernel] pin_path`
//! (`kernel::pins`), which the next daemon adopts: they are never stale.
//! Other programs named like pinwatch's found on the root can only be:
//! another running pinwatch (a live process holds them: starting a second
//! daemon would double every alert, so the start is refused), or orphans
//! that nothing runs for — a link someone pinned elsewhere in bpffs, or a
//! program attached without a link by an older version — which still cost
//! every packet and connect, and are detached and reported.
use std::{
    collections::BTreeSet,
    fs::File,
    io,
    os::{fd::AsFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
};

use super::{
    bpf_sys::{self, CgroupLink},
    pins::PinnedIds,
};

/// The programs pinwatch attaches, with their hook.
const HOOKS: [(&str, u32, &str); 8] = [
    (
        "pw_dns_egress",
        bpf_sys::BPF_CGROUP_INET_EGRESS,
        "cgroup_skb/egress",
    ),
    (
        "pw_dns_ingress",
        bpf_sys::BPF_CGROUP_INET_INGRESS,
        "cgroup_skb/ingress",
    ),
    (
        "pw_connect4",
        bpf_sys::BPF_CGROUP_INET4_CONNECT,
        "cgroup/connect4",
    ),
    (
        "pw_connect6",
        bpf_sys::BPF_CGROUP_INET6_CONNECT,
        "cgroup/connect6",
    ),
    (
        "pw_dns_sendmsg4",
        bpf_sys::BPF_CGROUP_UDP4_SENDMSG,
        "cgroup/sendmsg4",
    ),
    (
        "pw_dns_sendmsg6",
        bpf_sys::BPF_CGROUP_UDP6_SENDMSG,
        "cgroup/sendmsg6",
    ),
    (
        "pw_dns_connect4",
        bpf_sys::BPF_CGROUP_INET4_CONNECT,
        "cgroup/connect4",
    ),
    (
        "pw_dns_connect6",
        bpf_sys::BPF_CGROUP_INET6_CONNECT,
        "cgroup/connect6",
    ),
];

/// One pinwatch program found attached to the cgroup root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleProgram {
    pub name: String,
    pub program_id: u32,
    pub kind: &'static str,
    /// The link that attached it; `None` when attached without one.
    pub link_id: Option<u32>,
    attach_type: u32,
}

impl std::fmt::Display for StaleProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (program id {}, {}, ",
            self.name, self.program_id, self.kind
        )?;
        match self.link_id {
            Some(link) => write!(f, "link id {link})"),
            None => write!(f, "attached without a link)"),
        }
    }
}

/// What the check found.
#[derive(Debug)]
pub enum StaleCheck {
    /// No pinwatch program was attached.
    Clean,
    /// Orphans were found and detached.
    Removed(Vec<StaleProgram>),
    /// The kernel would not say (privileges); the daemon starts anyway.
    Unchecked(String),
}

#[derive(Debug, thiserror::Error)]
pub enum StaleError {
    #[error(
        "another pinwatch is running: pid {pid} ({comm}) holds {programs}, attached to the cgroup v2 root {cgroup}; a second daemon would double every alert — stop that one first"
    )]
    InUse {
        pid: u32,
        comm: String,
        programs: String,
        cgroup: PathBuf,
    },
    #[error(
        "cannot detach the stale pinwatch program {program} from the cgroup v2 root {cgroup}: {source}"
    )]
    Detach {
        program: String,
        cgroup: PathBuf,
        source: io::Error,
    },
    #[error("cannot read what is attached to the cgroup v2 root {cgroup}: {source}")]
    Query { cgroup: PathBuf, source: io::Error },
}

impl StaleError {
    /// 2 for a second daemon (the operator's setup), 3 for what the kernel
    /// refused.
    pub fn exit_code(&self) -> u8 {
        match self {
            StaleError::InUse { .. } => 2,
            StaleError::Detach { .. } | StaleError::Query { .. } => 3,
        }
    }
}

/// Finds pinwatch programs on the cgroup root; refuses when a live process
/// holds them, detaches them when none does, except those attached by the
/// links pinned in this daemon's pin path (`adopted`), which it takes over.
pub fn remove_stale(cgroup_root: &Path, adopted: &PinnedIds) -> Result<StaleCheck, StaleError> {
    let query_error = |source| StaleError::Query {
        cgroup: cgroup_root.into(),
        source,
    };
    let cgroup = File::open(cgroup_root).map_err(query_error)?;
    let found = match attached(&cgroup, cgroup_root) {
        Ok(found) => found,
        // Naming programs by id needs CAP_SYS_ADMIN, which the systemd unit
        // does not grant.
        Err(StaleError::Query { source, .. }) if source.raw_os_error() == Some(libc::EPERM) => {
            return Ok(StaleCheck::Unchecked(format!(
                "reading attached programs by id needs CAP_SYS_ADMIN: {source}"
            )));
        }
        Err(error) => return Err(error),
    };
    if found.is_empty() {
        return Ok(StaleCheck::Clean);
    }
    let ids: BTreeSet<u32> = found.iter().map(|p| p.program_id).collect();
    if let Some((pid, comm)) = holder(&ids) {
        let programs: Vec<String> = found.iter().map(ToString::to_string).collect();
        return Err(StaleError::InUse {
            pid,
            comm,
            programs: programs.join(", "),
            cgroup: cgroup_root.into(),
        });
    }
    let stale: Vec<StaleProgram> = found
        .into_iter()
        .filter(|p| !p.link_id.is_some_and(|link| adopted.links.contains(&link)))
        .collect();
    if stale.is_empty() {
        return Ok(StaleCheck::Clean);
    }
    let mut removed = Vec::new();
    for program in stale {
        match detach(&cgroup, &program) {
            Ok(()) => removed.push(program),
            // Detached meanwhile: a link whose last pin just went is
            // released after the query listed its program.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(source) => {
                return Err(StaleError::Detach {
                    program: program.to_string(),
                    cgroup: cgroup_root.into(),
                    source,
                });
            }
        }
    }
    if removed.is_empty() {
        return Ok(StaleCheck::Clean);
    }
    Ok(StaleCheck::Removed(removed))
}

/// The pinwatch process that holds programs on the cgroup root, other than
/// this one: its pid and name.
pub fn running_daemon(cgroup_root: &Path) -> Result<Option<(u32, String)>, StaleError> {
    let cgroup = File::open(cgroup_root).map_err(|source| StaleError::Query {
        cgroup: cgroup_root.into(),
        source,
    })?;
    let found = attached(&cgroup, cgroup_root)?;
    let ids: BTreeSet<u32> = found.iter().map(|p| p.program_id).collect();
    Ok(if ids.is_empty() { None } else { holder(&ids) })
}

/// pinwatch's programs attached directly to the root, with their links.
fn attached(cgroup: &File, cgroup_root: &Path) -> Result<Vec<StaleProgram>, StaleError> {
    let query_error = |source| StaleError::Query {
        cgroup: cgroup_root.into(),
        source,
    };
    // The kernel's cgroup id is the inode number of its directory.
    let cgroup_id = std::fs::metadata(cgroup_root).map_err(query_error)?.ino();
    let mut links: Option<Vec<CgroupLink>> = None;
    let mut found = Vec::new();
    for (name, attach_type, kind) in HOOKS {
        for program_id in bpf_sys::query_cgroup(cgroup.as_fd(), attach_type).map_err(query_error)? {
            let fd = match bpf_sys::prog_fd_by_id(program_id) {
                Ok(fd) => fd,
                // Detached and freed since the query.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(query_error(e)),
            };
            if bpf_sys::prog_name(fd.as_fd()).map_err(query_error)? != name {
                continue;
            }
            let links = match &mut links {
                Some(links) => links,
                None => links.insert(bpf_sys::cgroup_links().map_err(query_error)?),
            };
            let link_id = links
                .iter()
                .find(|l| {
                    l.prog_id == program_id
                        && l.cgroup_id == cgroup_id
                        && l.attach_type == attach_type
                })
                .map(|l| l.id);
            found.push(StaleProgram {
                name: name.to_owned(),
                program_id,
                kind,
                link_id,
                attach_type,
            });
        }
    }
    Ok(found)
}

fn detach(cgroup: &File, program: &StaleProgram) -> io::Result<()> {
    match program.link_id {
        Some(link) => bpf_sys::link_detach(bpf_sys::link_fd_by_id(link)?.as_fd()),
        None => {
            let prog = bpf_sys::prog_fd_by_id(program.program_id)?;
            bpf_sys::prog_detach(cgroup.as_fd(), prog.as_fd(), program.attach_type)
        }
    }
}

/// A live process other than this one with a descriptor on one of the
/// programs (a link's fdinfo names its program too): its pid and name.
fn holder(program_ids: &BTreeSet<u32>) -> Option<(u32, String)> {
    let me = std::process::id();
    let procs = std::fs::read_dir("/proc").ok()?;
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        // Processes come and go, and some fdinfo may be unreadable: skip.
        let Ok(fds) = std::fs::read_dir(entry.path().join("fdinfo")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_to_string(fd.path())
                .is_ok_and(|info| fdinfo_prog_id(&info).is_some_and(|id| program_ids.contains(&id)))
        });
        if holds {
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            return Some((pid, comm.trim().to_owned()));
        }
    }
    None
}

/// `prog_id:` in a bpf-prog or bpf-link descriptor's fdinfo.
fn fdinfo_prog_id(info: &str) -> Option<u32> {
    info.lines()
        .find_map(|line| line.strip_prefix("prog_id:"))
        .and_then(|id| id.trim().parse().ok())
}

/// One sentence for the alert and the log.
pub fn describe_removed(cgroup_root: &Path, removed: &[StaleProgram]) -> String {
    let programs: Vec<String> = removed.iter().map(ToString::to_string).collect();
    format!(
        "pinwatch programs from an earlier run were still attached to the cgroup v2 root {} with no running process behind them (pinned in bpffs, or attached without a link by an older version): {}; they were detached so only this daemon's programs run — remove any pin of them left under /sys/fs/bpf",
        cgroup_root.display(),
        programs.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_prog_id_from_link_and_prog_fdinfo() {
        let link = "pos:\t0\nflags:\t02000000\nmnt_id:\t15\nino:\t1057\nlink_type:\tcgroup\nlink_id:\t7\nprog_tag:\tab\nprog_id:\t42\n";
        assert_eq!(fdinfo_prog_id(link), Some(42));
        let prog =
            "pos:\t0\nprog_type:\t8\nprog_jited:\t1\nprog_tag:\tab\nmemlock:\t4096\nprog_id:\t43\n";
        assert_eq!(fdinfo_prog_id(prog), Some(43));
        assert_eq!(fdinfo_prog_id("pos:\t0\nflags:\t02\n"), None);
    }

    #[test]
    fn names_programs_with_their_ids() {
        let removed = [
            StaleProgram {
                name: "pw_connect4".into(),
                program_id: 12,
                kind: "cgroup/connect4",
                link_id: Some(3),
                attach_type: bpf_sys::BPF_CGROUP_INET4_CONNECT,
            },
            StaleProgram {
                name: "pw_dns_ingress".into(),
                program_id: 13,
                kind: "cgroup_skb/ingress",
                link_id: None,
                attach_type: bpf_sys::BPF_CGROUP_INET_INGRESS,
            },
        ];
        let text = describe_removed(Path::new("/sys/fs/cgroup"), &removed);
        assert!(
            text.contains("pw_connect4 (program id 12, cgroup/connect4, link id 3)"),
            "{text}"
        );
        assert!(
            text.contains(
                "pw_dns_ingress (program id 13, cgroup_skb/ingress, attached without a link)"
            ),
            "{text}"
        );
    }
}
