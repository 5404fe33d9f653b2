//! The systemd notification protocol (`Type=notify`): READY once the
//! programs are attached, RELOADING/READY around a reload, STOPPING on the
//! way out, WATCHDOG pings. Every call is a no-op outside systemd (no
//! `NOTIFY_SOCKET`), and a failed notification is logged, never fatal: the
//! daemon protects the host with or without a service manager.
use std::time::Duration;

use sd_notify::NotifyState;

pub(super) fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// RELOADING=1 with the CLOCK_MONOTONIC time systemd ≥ 253 requires to
/// match it to the reload request it made.
pub(super) fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(error) => {
            tracing::warn!("cannot read CLOCK_MONOTONIC for systemd: {error}");
            send(&[NotifyState::Reloading]);
        }
    }
}

pub(super) fn stopping() {
    send(&[NotifyState::Stopping]);
}

pub(super) fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// How often to ping: half of `WATCHDOG_USEC`, as sd_watchdog_enabled(3)
/// advises, so one late ping does not get the daemon killed. `None` when
/// the service manager set no watchdog for this process.
pub(super) fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .filter(|timeout| !timeout.is_zero())
        .map(|timeout| timeout / 2)
}

fn send(states: &[NotifyState]) {
    if let Err(error) = sd_notify::notify(states) {
        let states: Vec<String> = states.iter().map(ToString::to_string).collect();
        tracing::warn!(
            "cannot notify the service manager ({}): {error}",
            states.join(" ")
        );
    }
}
