//! Raw TOML → runtime [`Config`]. Stops at the first bad value and names it;
//! a default applies only where a key is absent, never in place of a bad value.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::error::{ConfigError, Problem};
use super::host::{HostDefaults, HostPaths};
use super::limits;
use super::net::{LOOPBACK_STUBS, normalize_hostname, parse_ip, parse_pinned};
use super::raw::{
    RawAlerts, RawConfig, RawControl, RawDatabase, RawDns, RawHost, RawKernel, RawMetrics,
};
use super::{
    AlertSettings, AlertSink, Config, ControlSettings, DEFAULT_CONTROL_SOCKET, DEFAULT_DB_PORT,
    DEFAULT_DEDUP_WINDOW, DEFAULT_QUERY_TIMEOUT, DEFAULT_TXID_MISMATCH_THRESHOLD, Database,
    DnsSettings, KernelSettings, Mode, OnCrash,
};

/// Builds [`ConfigError::Invalid`] values that carry the file name.
struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, key: impl Into<String>, problem: Problem) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_owned(),
            key: key.into(),
            problem,
        }
    }
}

pub(crate) fn validate(
    raw: RawConfig,
    file: &str,
    path: Option<PathBuf>,
    hash: String,
    host: &HostDefaults,
) -> Result<Config, ConfigError> {
    let cx = Ctx { file };
    let databases = databases(&cx, raw.database)?;
    limits::check(&databases).map_err(|(key, problem)| cx.err(key, problem))?;
    Ok(Config {
        path,
        hash,
        databases,
        dns: dns(&cx, raw.dns, host)?,
        alerts: alerts(&cx, raw.alerts)?,
        control: control(&cx, raw.control)?,
        metrics: metrics(&cx, raw.metrics)?,
        host: host_paths(&cx, raw.host)?,
        watch: raw.config.watch.unwrap_or(false),
        kernel: kernel(&cx, raw.kernel)?,
    })
}

fn kernel(cx: &Ctx, raw: RawKernel) -> Result<KernelSettings, ConfigError> {
    let defaults = KernelSettings::default();
    let on_crash = match raw.on_crash.as_deref() {
        None | Some("fail-open") => OnCrash::FailOpen,
        Some("keep-enforcing") => OnCrash::KeepEnforcing,
        Some(other) => {
            let problem = Problem::BadChoice {
                value: other.to_owned(),
                expected: r#""fail-open" or "keep-enforcing""#,
            };
            return Err(cx.err("kernel.on_crash", problem));
        }
    };
    Ok(KernelSettings {
        pin_path: match raw.pin_path {
            None => defaults.pin_path,
            Some(s) => absolute(cx, "kernel.pin_path", s)?,
        },
        on_crash,
    })
}

fn databases(cx: &Ctx, raw: Vec<RawDatabase>) -> Result<Vec<Database>, ConfigError> {
    if raw.is_empty() {
        return Err(cx.err("database", Problem::NoDatabase));
    }
    let mut names: HashMap<String, usize> = HashMap::new();
    // hostname → index of the database that claimed it first
    let mut owners: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<Database> = Vec::with_capacity(raw.len());
    for (i, db) in raw.into_iter().enumerate() {
        let key = |field: &str| format!("database[{i}].{field}");
        if db.name.trim().is_empty() {
            return Err(cx.err(key("name"), Problem::Blank(db.name)));
        }
        if let Some(&first) = names.get(&db.name) {
            return Err(cx.err(
                key("name"),
                Problem::DuplicateName {
                    value: db.name,
                    first,
                },
            ));
        }
        names.insert(db.name.clone(), i);

        if db.hostnames.is_empty() {
            return Err(cx.err(key("hostnames"), Problem::EmptyList));
        }
        let mut hostnames = Vec::new();
        for (j, raw_name) in db.hostnames.iter().enumerate() {
            let k = format!("database[{i}].hostnames[{j}]");
            let name = normalize_hostname(raw_name).map_err(|p| cx.err(&k, p))?;
            match owners.get(&name) {
                // The same name twice in one database is harmless: keep one.
                Some(&owner) if owner == i => continue,
                Some(&owner) => {
                    let problem = Problem::DuplicateHostname {
                        value: raw_name.clone(),
                        first: owner,
                        name: out[owner].name.clone(),
                    };
                    return Err(cx.err(k, problem));
                }
                None => {}
            }
            owners.insert(name.clone(), i);
            hostnames.push(name);
        }

        let ports = ports(cx, i, db.ports)?;

        if db.pinned.is_empty() {
            return Err(cx.err(key("pinned"), Problem::EmptyList));
        }
        let mut pinned = Vec::new();
        for (j, entry) in db.pinned.iter().enumerate() {
            let net =
                parse_pinned(entry).map_err(|p| cx.err(format!("database[{i}].pinned[{j}]"), p))?;
            if !pinned.contains(&net) {
                pinned.push(net);
            }
        }

        let mode = match db.mode.as_deref() {
            None | Some("monitor") => Mode::Monitor,
            Some("block") => Mode::Block,
            Some(other) => {
                let problem = Problem::BadChoice {
                    value: other.to_owned(),
                    expected: r#""monitor" or "block""#,
                };
                return Err(cx.err(key("mode"), problem));
            }
        };
        out.push(Database {
            name: db.name,
            hostnames,
            ports,
            pinned,
            mode,
        });
    }
    Ok(out)
}

/// Ports in file order without repeats; absent means the CockroachDB default.
fn ports(cx: &Ctx, i: usize, raw: Option<Vec<i64>>) -> Result<Vec<u16>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(vec![DEFAULT_DB_PORT]);
    };
    if raw.is_empty() {
        return Err(cx.err(format!("database[{i}].ports"), Problem::EmptyList));
    }
    let mut ports = Vec::new();
    for (j, &p) in raw.iter().enumerate() {
        let key = || format!("database[{i}].ports[{j}]");
        let port = match u16::try_from(p) {
            Ok(0) => return Err(cx.err(key(), Problem::PortZero)),
            Ok(port) => port,
            Err(_) => return Err(cx.err(key(), Problem::PortRange(p))),
        };
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    Ok(ports)
}

fn dns(cx: &Ctx, raw: RawDns, host: &HostDefaults) -> Result<DnsSettings, ConfigError> {
    let txid_mismatch_threshold = match raw.txid_mismatch_threshold {
        None => DEFAULT_TXID_MISMATCH_THRESHOLD,
        Some(n) if (1..=65_535).contains(&n) => n as u32,
        Some(n) => {
            return Err(cx.err("dns.txid_mismatch_threshold", Problem::ThresholdRange(n)));
        }
    };
    let query_timeout = match raw.query_timeout {
        None => DEFAULT_QUERY_TIMEOUT,
        Some(text) => positive_duration(cx, "dns.query_timeout", text)?,
    };
    let settings = |trusted_resolvers| DnsSettings {
        trusted_resolvers,
        txid_mismatch_threshold,
        query_timeout,
    };
    let mut trusted = Vec::new();
    match raw.trusted_resolvers {
        None => trusted.extend(
            host.resolv_conf_nameservers
                .iter()
                .map(|a| a.to_canonical()),
        ),
        // An empty list would distrust every resolver, almost surely a mistake;
        // reading it as "use the default" would be a silent fallback.
        Some(list) if list.is_empty() => {
            return Err(cx.err("dns.trusted_resolvers", Problem::EmptyList));
        }
        Some(list) => {
            for (j, s) in list.iter().enumerate() {
                let ip =
                    parse_ip(s).map_err(|p| cx.err(format!("dns.trusted_resolvers[{j}]"), p))?;
                if !trusted.contains(&ip) {
                    trusted.push(ip);
                }
            }
            return Ok(settings(trusted));
        }
    }
    for stub in LOOPBACK_STUBS {
        if !trusted.contains(&stub) {
            trusted.push(stub);
        }
    }
    Ok(settings(trusted))
}

fn positive_duration(cx: &Ctx, key: &str, text: String) -> Result<Duration, ConfigError> {
    match humantime::parse_duration(&text) {
        Ok(d) if d.is_zero() => Err(cx.err(key, Problem::ZeroDuration(text))),
        Ok(d) => Ok(d),
        Err(e) => {
            let problem = Problem::BadDuration {
                value: text,
                reason: e.to_string(),
            };
            Err(cx.err(key, problem))
        }
    }
}

fn alerts(cx: &Ctx, raw: RawAlerts) -> Result<AlertSettings, ConfigError> {
    let sink_name = raw.sink.as_deref().unwrap_or("stdout");
    let sink = match (sink_name, raw.path) {
        ("file", None) => return Err(cx.err("alerts.path", Problem::FileSinkWithoutPath)),
        ("file", Some(path)) => AlertSink::File(absolute(cx, "alerts.path", path)?),
        ("stdout" | "journald", Some(value)) => {
            let sink = sink_name.to_owned();
            return Err(cx.err("alerts.path", Problem::PathWithoutFileSink { value, sink }));
        }
        ("stdout", None) => AlertSink::Stdout,
        ("journald", None) => AlertSink::Journald,
        (other, _) => {
            let problem = Problem::BadChoice {
                value: other.to_owned(),
                expected: r#""stdout", "file" or "journald""#,
            };
            return Err(cx.err("alerts.sink", problem));
        }
    };
    let dedup_window = match raw.dedup_window {
        None => DEFAULT_DEDUP_WINDOW,
        Some(text) => match humantime::parse_duration(&text) {
            Ok(d) if d.is_zero() => {
                return Err(cx.err("alerts.dedup_window", Problem::ZeroDuration(text)));
            }
            Ok(d) => d,
            Err(e) => {
                let problem = Problem::BadDuration {
                    value: text,
                    reason: e.to_string(),
                };
                return Err(cx.err("alerts.dedup_window", problem));
            }
        },
    };
    Ok(AlertSettings { sink, dedup_window })
}

fn control(cx: &Ctx, raw: RawControl) -> Result<ControlSettings, ConfigError> {
    let socket = match raw.socket {
        None => PathBuf::from(DEFAULT_CONTROL_SOCKET),
        Some(s) => absolute(cx, "control.socket", s)?,
    };
    if let Some(group) = &raw.group
        && group.trim().is_empty()
    {
        return Err(cx.err("control.group", Problem::Blank(group.clone())));
    }
    Ok(ControlSettings {
        socket,
        group: raw.group,
    })
}

fn host_paths(cx: &Ctx, raw: RawHost) -> Result<HostPaths, ConfigError> {
    let root = |key: &str, value: Option<String>, default: &str| match value {
        None => Ok(PathBuf::from(default)),
        Some(s) => absolute(cx, key, s),
    };
    Ok(HostPaths {
        proc: root("host.proc", raw.proc, "/proc")?,
        run: root("host.run", raw.run, "/run")?,
        cgroup: raw
            .cgroup
            .map(|s| absolute(cx, "host.cgroup", s))
            .transpose()?,
    })
}

fn metrics(cx: &Ctx, raw: RawMetrics) -> Result<Option<SocketAddr>, ConfigError> {
    let Some(text) = raw.listen else {
        return Ok(None);
    };
    match text.parse::<SocketAddr>() {
        Ok(addr) if addr.port() == 0 => {
            Err(cx.err("metrics.listen", Problem::ListenPortZero(text)))
        }
        Ok(addr) => Ok(Some(addr)),
        Err(_) => Err(cx.err("metrics.listen", Problem::BadSocketAddr(text))),
    }
}

/// The daemon's working directory is not the operator's: paths must be absolute.
fn absolute(cx: &Ctx, key: &str, s: String) -> Result<PathBuf, ConfigError> {
    let path = PathBuf::from(&s);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(cx.err(key, Problem::RelativePath(s)))
    }
}
