//! The TOML file as written, before validation. Values that need a key path
//! in their error (ports, addresses, enums, durations) stay strings or plain
//! integers here, so `validate` can name the key and the value itself instead
//! of relying on serde's messages. Unknown keys are refused by serde.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    /// `[[database]]` tables; at least one is required (checked in validate).
    #[serde(default)]
    pub database: Vec<RawDatabase>,
    #[serde(default)]
    pub dns: RawDns,
    #[serde(default)]
    pub alerts: RawAlerts,
    #[serde(default)]
    pub control: RawControl,
    #[serde(default)]
    pub metrics: RawMetrics,
    #[serde(default)]
    pub host: RawHost,
    #[serde(default)]
    pub config: RawConfigSection,
    #[serde(default)]
    pub kernel: RawKernel,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDatabase {
    pub name: String,
    pub hostnames: Vec<String>,
    /// Integers wider than u16 so 70000 gets our message, not serde's.
    pub ports: Option<Vec<i64>>,
    pub pinned: Vec<String>,
    pub mode: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDns {
    /// Absent means "resolv.conf nameservers and loopback stubs"; an explicit
    /// empty list is refused rather than read as either.
    pub trusted_resolvers: Option<Vec<String>>,
    /// Wrong-id responses to one waiting query that raise
    /// `dns-txid-mismatch-burst`.
    pub txid_mismatch_threshold: Option<i64>,
    /// How long a query waits for its response (a duration such as "15s").
    pub query_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlerts {
    pub sink: Option<String>,
    pub path: Option<String>,
    pub dedup_window: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawControl {
    pub socket: Option<String>,
    pub group: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetrics {
    /// Absent (or an empty `[metrics]` table) means no metrics endpoint.
    pub listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHost {
    /// Roots the host's `/proc`, `/run` and cgroup v2 tree are read through
    /// when pinwatch runs in a container (`/host/proc`…).
    pub proc: Option<String>,
    pub run: Option<String>,
    pub cgroup: Option<String>,
}

/// `[config]`: how the daemon treats its own file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfigSection {
    /// Reload when the file changes, as on SIGHUP; default false.
    pub watch: Option<bool>,
}

/// `[kernel]`: what outlives the daemon.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKernel {
    /// Where links and maps are pinned (a bpffs path).
    pub pin_path: Option<String>,
    /// `"fail-open"` or `"keep-enforcing"`.
    pub on_crash: Option<String>,
}
