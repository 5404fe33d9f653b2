//! Config tests: one per refusal (the message must name file, key and value),
//! normalization and defaults, and the shipped example file.

mod limits;
mod normalize;
mod refusals;

use std::path::Path;

pub(super) use super::*;

pub(super) const FILE: &str = "/etc/x.toml";

/// A minimal valid database table; tests swap one line to break it.
pub(super) const DB: &str = r#"
[[database]]
name = "orders"
hostnames = ["cockroach.prod.internal"]
pinned = ["192.0.2.0/24"]
"#;

pub(super) fn host() -> HostDefaults {
    HostDefaults {
        resolv_conf_nameservers: vec!["192.0.2.53".parse().unwrap(), "127.0.0.53".parse().unwrap()],
    }
}

pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, Some(Path::new(FILE)), &host())
}

pub(super) fn ok(text: &str) -> Config {
    parse(text).unwrap_or_else(|e| panic!("expected valid, got: {e}"))
}

pub(super) fn refused(text: &str) -> ConfigError {
    match parse(text) {
        Ok(c) => panic!("expected refusal, got {c:?}"),
        Err(e) => e,
    }
}

/// Asserts a validation error at `key` whose message contains `needle`.
pub(super) fn assert_refused(text: &str, key: &str, needle: &str) {
    let err = refused(text);
    let msg = err.to_string();
    assert_eq!(err.key(), Some(key), "{msg}");
    assert!(msg.starts_with(&format!("{FILE}: {key}: ")), "{msg}");
    assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
}

pub(super) fn db_with(old: &str, new: &str) -> String {
    assert!(DB.contains(old), "{old}");
    DB.replace(old, new)
}
