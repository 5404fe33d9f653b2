//! What the fuzz targets share: one fixed configuration, parsed once, and
//! for `detector_state` a script reader and hostile-response builder.
pub mod script;
pub mod wire;

use std::sync::OnceLock;

use pinwatch::{
    alert::AgentInfo,
    config::{Config, HostDefaults},
};

/// Two databases on a shared port, IPv4 and IPv6 pins, one CNAME-able name:
/// enough for every detector branch.
const CONFIG: &str = r#"
[[database]]
name = "orders"
hostnames = ["db.lab.test", "cockroach.prod.internal"]
ports = [26257]
pinned = ["192.0.2.0/24", "2001:db8::7"]

[[database]]
name = "billing"
hostnames = ["billing.lab.test"]
ports = [26257, 5432]
pinned = ["198.51.100.20"]

[dns]
trusted_resolvers = ["198.51.100.53", "127.0.0.53"]
txid_mismatch_threshold = 3

[alerts]
dedup_window = "10s"
"#;

pub fn config() -> &'static Config {
    static CONFIG_ONCE: OnceLock<Config> = OnceLock::new();
    CONFIG_ONCE.get_or_init(|| {
        let host = HostDefaults {
            resolv_conf_nameservers: vec!["198.51.100.53".parse().unwrap()],
        };
        Config::from_toml(CONFIG, None, &host).expect("the fuzz configuration is valid")
    })
}

pub fn agent() -> AgentInfo {
    AgentInfo {
        host_name: "fuzz".into(),
        version: "0".into(),
    }
}
