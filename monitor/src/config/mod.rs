//! Configuration: the TOML file of SPEC "Configuration (TOML)" → a validated
//! [`Config`]. Parsing ([`raw`]) and checking ([`validate`]) are separate so
//! that the rest of the daemon only ever sees values that passed every check.
//! A bad file is refused whole, with the file, key path and value named.

mod error;
mod host;
pub mod limits;
mod net;
mod raw;
#[cfg(test)]
mod tests;
mod validate;
mod watch;

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use sha2::{Digest, Sha256};

pub use error::{ConfigError, HostnameFault, Problem};
pub use host::{HostDefaults, HostPaths, RESOLV_CONF_PATH, parse_resolv_conf};
pub use net::LOOPBACK_STUBS;
pub use watch::{ConfigWatch, WatchError};
// `pinwatch learn --hostname` takes names under the same rules as the file.
pub(crate) use net::normalize_hostname;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/pinwatch/pinwatch.toml";
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/pinwatch/pinwatch.sock";
/// CockroachDB's SQL port.
pub const DEFAULT_DB_PORT: u16 = 26257;
pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(60);

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it came from; `None` when built from text in tests.
    pub path: Option<PathBuf>,
    /// SHA-256 of the file bytes, lowercase hex: shown by `status` so an
    /// operator can tell which file version is in force.
    pub hash: String,
    pub databases: Vec<Database>,
    pub dns: DnsSettings,
    pub alerts: AlertSettings,
    pub control: ControlSettings,
    /// OpenMetrics listen address; `None` means no endpoint.
    pub metrics: Option<SocketAddr>,
    /// `[host]`: where the host is read from (container identity, resolv.conf).
    pub host: HostPaths,
    /// `[config] watch`: reload when the file changes, as on SIGHUP.
    pub watch: bool,
    /// `[kernel]`: pins, and enforcement while no daemon runs.
    pub kernel: KernelSettings,
}

/// Where pinwatch pins its programs' links and maps.
pub const DEFAULT_PIN_PATH: &str = "/sys/fs/bpf/pinwatch";

/// `[kernel]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSettings {
    pub pin_path: PathBuf,
    pub on_crash: OnCrash,
}

impl Default for KernelSettings {
    fn default() -> KernelSettings {
        KernelSettings {
            pin_path: PathBuf::from(DEFAULT_PIN_PATH),
            on_crash: OnCrash::FailOpen,
        }
    }
}

/// What `mode = "block"` does while no daemon runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnCrash {
    /// The connect hooks stop refusing once the daemon's heartbeat is
    /// older than its grace period (5 s).
    #[default]
    FailOpen,
    /// The pinned sets stay in force.
    KeepEnforcing,
}

/// One `[[database]]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Database {
    pub name: String,
    /// Lowercase, no trailing dot, unique across all databases.
    pub hostnames: Vec<String>,
    /// Non-empty, no zero, no repeats, file order.
    pub ports: Vec<u16>,
    /// Non-empty; bare addresses as /32 or /128, IPv4-mapped IPv6 as IPv4.
    pub pinned: Vec<IpNet>,
    pub mode: Mode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Alert only.
    Monitor,
    /// Refuse the connect, and alert.
    Block,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Monitor => "monitor",
            Mode::Block => "block",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    /// Canonical (IPv4-mapped IPv6 written as IPv4), no repeats.
    pub trusted_resolvers: Vec<IpAddr>,
    /// Responses with a wrong transaction id to one outstanding query that
    /// make a `dns-txid-mismatch-burst`; at least 1.
    pub txid_mismatch_threshold: u32,
    /// How long a query is remembered waiting for (and after) its response;
    /// never zero.
    pub query_timeout: Duration,
}

/// `[dns] txid_mismatch_threshold` default: a resolver never sends wrong ids
/// on its own, and a spoofer racing a query sends hundreds.
pub const DEFAULT_TXID_MISMATCH_THRESHOLD: u32 = 10;
/// `[dns] query_timeout` default: longer than glibc's 5 s × 2 attempts and a
/// recursive resolver's own retries.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertSettings {
    pub sink: AlertSink,
    /// Repeats of one alert inside this window fold into one line; never zero.
    pub dedup_window: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertSink {
    Stdout,
    /// Absolute path of an NDJSON file.
    File(PathBuf),
    Journald,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlSettings {
    /// Absolute path of the Unix socket.
    pub socket: PathBuf,
    /// When set, the socket is 0660 and owned by this group; else 0600.
    pub group: Option<String>,
}

impl Config {
    /// Reads and validates `path`; reads /etc/resolv.conf for the
    /// `trusted_resolvers` default.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            file: path.to_owned(),
            source,
        })?;
        let host = HostDefaults::from_system()?;
        Config::from_toml(&text, Some(path), &host)
    }

    /// Parses and validates `text`. Pure: host facts come in through `host`.
    pub fn from_toml(
        text: &str,
        path: Option<&Path>,
        host: &HostDefaults,
    ) -> Result<Config, ConfigError> {
        let file = match path {
            Some(p) => p.display().to_string(),
            None => "<config>".to_owned(),
        };
        let raw: raw::RawConfig = toml::from_str(text).map_err(|source| ConfigError::Parse {
            file: file.clone(),
            source,
        })?;
        let hash = sha256_hex(text.as_bytes());
        validate::validate(raw, &file, path.map(Path::to_owned), hash, host)
    }

    /// Every port some database watches.
    pub fn watched_ports(&self) -> BTreeSet<u16> {
        self.databases
            .iter()
            .flat_map(|d| d.ports.iter().copied())
            .collect()
    }

    /// The short normalized summary printed by `pinwatch check-config`.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let file = self
            .path
            .as_ref()
            .map_or("<config>".into(), |p| p.display().to_string());
        let _ = writeln!(s, "config {file} (sha256 {})", self.hash);
        for db in &self.databases {
            let _ = writeln!(s, "database {:?}: mode {}", db.name, db.mode);
            let _ = writeln!(s, "  hostnames {}", db.hostnames.join(", "));
            let _ = writeln!(s, "  ports {}", join(&db.ports));
            let _ = writeln!(s, "  pinned {}", join(&db.pinned));
        }
        let _ = writeln!(
            s,
            "dns trusted_resolvers {}",
            join(&self.dns.trusted_resolvers)
        );
        let sink = match &self.alerts.sink {
            AlertSink::Stdout => "stdout".to_owned(),
            AlertSink::File(p) => format!("file {}", p.display()),
            AlertSink::Journald => "journald".to_owned(),
        };
        let window = humantime::format_duration(self.alerts.dedup_window);
        let _ = writeln!(s, "alerts sink {sink}, dedup_window {window}");
        let access = match &self.control.group {
            Some(g) => format!("mode 0660, group {g}"),
            None => "mode 0600".to_owned(),
        };
        let _ = writeln!(
            s,
            "control socket {} ({access})",
            self.control.socket.display()
        );
        match self.metrics {
            Some(addr) => {
                let _ = writeln!(s, "metrics listen {addr}");
            }
            None => s.push_str("metrics off\n"),
        }
        let watch = if self.watch { "on" } else { "off" };
        let _ = writeln!(s, "config watch {watch}");
        s
    }
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
