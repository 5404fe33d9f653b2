//! Facts about the host that feed configuration defaults. Kept apart so
//! `Config::from_toml` stays pure and tests pass their own values.

use std::io::ErrorKind;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::error::ConfigError;

/// Where the system resolver configuration lives.
pub const RESOLV_CONF_PATH: &str = "/etc/resolv.conf";

/// `[host]`: the roots the host is read through. The defaults are the plain
/// paths; a DaemonSet mounts the host's at `/host/proc`… and says so here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    pub proc: PathBuf,
    pub run: PathBuf,
    /// The cgroup v2 mount; `None`: found in `/proc/self/mountinfo`.
    pub cgroup: Option<PathBuf>,
}

impl Default for HostPaths {
    fn default() -> HostPaths {
        HostPaths {
            proc: PathBuf::from("/proc"),
            run: PathBuf::from("/run"),
            cgroup: None,
        }
    }
}

/// Host facts used for defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostDefaults {
    /// `nameserver` lines of /etc/resolv.conf, in file order.
    pub resolv_conf_nameservers: Vec<IpAddr>,
}

impl HostDefaults {
    /// Reads /etc/resolv.conf. A missing file is normal (containers, minimal
    /// hosts) and yields no nameservers; any other read error is reported.
    pub fn from_system() -> Result<HostDefaults, ConfigError> {
        Self::from_resolv_conf(Path::new(RESOLV_CONF_PATH))
    }

    /// Like [`HostDefaults::from_system`] for a resolv.conf at `path`.
    pub fn from_resolv_conf(path: &Path) -> Result<HostDefaults, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(HostDefaults {
                resolv_conf_nameservers: parse_resolv_conf(&text),
            }),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(HostDefaults::default()),
            Err(source) => Err(ConfigError::Io {
                file: path.to_owned(),
                source,
            }),
        }
    }
}

/// The addresses of `nameserver` lines. Like the C library, it skips lines it
/// cannot use rather than failing: the file belongs to the system, not to us.
/// IPv6 zone ids (`fe80::1%eth0`) are dropped; the detector sees bare addresses.
pub fn parse_resolv_conf(text: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(word) = words.next() else { continue };
        let bare = word.split('%').next().unwrap_or(word);
        if let Ok(addr) = bare.parse::<IpAddr>() {
            let addr = addr.to_canonical();
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nameserver_lines_only() {
        let text = "# generated\nsearch corp.example\nnameserver 192.0.2.53\n\
                    ;nameserver 192.0.2.99\nnameserver fe80::1%eth0 \n\
                    nameserver bogus\nnameserver 192.0.2.53\noptions edns0\n";
        let got: Vec<String> = parse_resolv_conf(text)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(got, ["192.0.2.53", "fe80::1"]);
    }

    #[test]
    fn missing_file_is_empty_not_an_error() {
        let host = HostDefaults::from_resolv_conf(Path::new("/nonexistent/resolv.conf")).unwrap();
        assert!(host.resolv_conf_nameservers.is_empty());
    }
}
