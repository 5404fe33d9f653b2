use std::path::{Path, PathBuf};

use super::KernelError;

/// The cgroup v2 mount point, from /proc/self/mountinfo. It is
/// /sys/fs/cgroup on unified hosts and /sys/fs/cgroup/unified on hybrid ones;
/// programs attached there see every process below it, in every network
/// namespace.
pub fn find_cgroup2_root() -> Result<PathBuf, KernelError> {
    let path = Path::new("/proc/self/mountinfo");
    let text = std::fs::read_to_string(path).map_err(|source| KernelError::Read {
        path: path.into(),
        source,
    })?;
    cgroup2_root_in(&text).ok_or(KernelError::NoCgroup2)
}

fn cgroup2_root_in(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // Fields: id parent major:minor root mountpoint options [optional…] - fstype source superoptions
        let (before, after) = line.split_once(" - ")?;
        let fstype = after.split_whitespace().next()?;
        let mut fields = before.split_whitespace();
        let root = fields.nth(3)?;
        let mount_point = fields.next()?;
        (fstype == "cgroup2" && root == "/").then(|| PathBuf::from(unescape(mount_point)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_hybrid_and_unified_mounts() {
        let hybrid = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                      40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_root_in(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let unified =
            "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            cgroup2_root_in(unified),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
    }

    #[test]
    fn ignores_v1_and_bind_mounted_subtrees() {
        let text = "40 31 0:37 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n\
                    50 31 0:38 /system.slice /mnt/x rw - cgroup2 cgroup2 rw\n\
                    51 31 0:38 / /mnt/with\\040space rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_root_in(text),
            Some(PathBuf::from("/mnt/with space"))
        );
        assert_eq!(cgroup2_root_in("garbage line\n\n"), None);
    }

    #[test]
    fn finds_this_hosts_mount() {
        let root = find_cgroup2_root().expect("this machine mounts cgroup v2");
        assert!(root.join("cgroup.procs").exists(), "{}", root.display());
    }
}
