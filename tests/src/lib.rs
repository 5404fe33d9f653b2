//! The lab harness for pinwatch's kernel integration tests.
//!
//! Everything here needs root and the real kernel: network namespaces joined
//! by a veth pair ([`Lab`]), a real resolver in one of them ([`Dnsmasq`]), real
//! clients in the other ([`dig()`], [`connect()`]), and the daemon itself
//! ([`Daemon`]) writing alerts to a file read back with [`AlertLog`]. Every
//! resource is a guard that cleans up in `Drop`, also when a test panics.
//!
//! Kernel tests are required, never skipped: [`require_root`] panics when the
//! process is not root. Tests that use the harness must run serially
//! (`--test-threads=1`): the daemon sees every DNS message and every watched
//! connect of the host, so two labs at once would see each other's traffic.

mod alerts;
mod bpf;
/// Raw bpf(2) commands the tests need beyond aya.
pub mod bpf_sys;
mod cmd;
mod connect;
mod crafted;
mod daemon;
mod dig;
/// The release artifacts of `cargo xtask dist`.
pub mod dist;
mod dnsmasq;
mod ecs;
mod flask_app;
pub mod hostile;
mod journal;
mod lab;
mod learn;
mod netns;
mod podman;
mod postgres;
pub mod provision;
mod resolv;
mod scenario;
mod siem;
mod spoof;
mod stack;
mod status;
mod tls;

pub use alerts::{
    AlertLog, assert_ecs_base, assert_unique_event_ids, field, ip_field, ip_list_field, lines,
    now_secs, str_field, timestamp_secs,
};
pub use bpf::{
    LoadedProgram, PINWATCH_PROGRAMS, assert_all_unloaded, attached_pinwatch_programs, cgroup_root,
    loaded_pinwatch_programs,
};
pub use connect::{Connect, connect};
pub use crafted::{
    CraftedServer, Evasion, LONG_CHAIN, PADDED_LEN, Responder, asks_for_a, getent_ahostsv4,
    in_netns, injected, question_name, response, udp_socket_in,
};
pub use daemon::{Daemon, DaemonConfig, Database, pinwatch_bin};
pub use dig::{Answer, DigResult, LingeringDig, dig, try_dig};
pub use dist::{Dist, workspace_root};
pub use dnsmasq::{DnsRecords, Dnsmasq};
pub use ecs::assert_ecs_fields;
pub use flask_app::{APP_PORT, AppSettings, FlaskApp, HttpResponse};
pub use journal::{FakeJournal, JournalEntry};
pub use lab::{CLIENT_V4, CLIENT_V6, DNS_V4, DNS_V6, Lab};
pub use learn::{LearnRun, check_config, learn};
pub use netns::{NS_PREFIX, NetNs, pwt_namespaces, reap_stale_namespaces};
pub use podman::{Container, ContainerSpec, Foreground, Podman};
pub use postgres::{PG_BIN, PG_DATABASE, PG_PASSWORD, PG_PORT, PG_USER, Postgres};
pub use provision::python3;
pub use resolv::ResolvConf;
pub use scenario::{
    ALERT_TIMEOUT, Fixture, SENTINEL_DB, SENTINEL_HOST, SENTINEL_IP, SENTINEL_PORT, is_sentinel,
    without_sentinel,
};
pub use siem::{Scrape, Settings, free_loopback_addr, http, scrape};
pub use spoof::{Forged, HostLink, Resolved, Stub, UdpDnsClient, resolve_with_libc, spoof};
pub use stack::{
    ATTACKER_DB, ATTACKER_ROW, DbAnswer, GENUINE_DB, GENUINE_ROW, STACK_DB, STACK_HOST, Stack,
};
pub use status::{NOBODY, StatusRun, StatusUser, TestGroup, status};
pub use tls::{ServerCert, ca_signed, self_signed};

use std::time::{Duration, Instant};

/// Panics unless the process runs as root: kernel tests fail, never skip.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "pinwatch kernel integration tests need root (euid is {euid}): they create network \
         namespaces and load eBPF programs. Run them as root, e.g. \
         `sudo -E cargo test -p pinwatch-integration-tests -- --test-threads=1`; \
         they are required in CI and are never skipped."
    );
}

/// Polls `check` every 50 ms until it returns `Some`, or `timeout` passes.
pub fn poll<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
