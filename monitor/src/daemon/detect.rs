//! The detector thread: synchronous, so the detector stays a plain function
//! of (state, event), and alert writes block instead of dropping. Between
//! the detector and the writer, the fold stage turns repeats into summary
//! lines; the source's empty batch once a second is the tick that closes
//! fold windows when no event arrives. Windows run on the daemon's
//! monotonic time base; alerts meet the wall clock only as they are written.
//! Processes are named here too ([`super::process_names`]), off the
//! runtime that drains the ring buffer.
//!
//! A fault while judging one event is caught there ([`Detector::judge`])
//! and becomes a `detector-fault` alert; a panic anywhere else on this
//! thread (fold, sink) is pinwatch's own machinery failing, and ends the
//! daemon.
//!
//! [`Detector::judge`]: crate::detector::Detector::judge
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use super::{
    DaemonError,
    process_names::{self, ProcessNames},
};
use crate::{
    alert::{
        Alert,
        fold::{self, Folder},
        sink::AlertWriter,
    },
    clock::TimeBase,
    event::Event,
    identity::Resolver,
    state::Shared,
};

pub(super) fn run(
    mut events: mpsc::Receiver<Vec<Event>>,
    shared: &Shared,
    mut writer: AlertWriter,
    mut identity: Resolver,
) -> Result<(), DaemonError> {
    // The window is fixed for the daemon's life: a reload that changes it is
    // refused.
    let mut folder = Folder::new(shared.config().alerts.dedup_window, fold::DEFAULT_CAPACITY);
    // The host's /proc, also when pinwatch runs in a container.
    let proc_root = shared.config().host.proc.clone();
    let mut names = ProcessNames::new(proc_root, process_names::LOOKUPS_PER_SECOND);
    while let Some(mut batch) = events.blocking_recv() {
        shared.time.refresh_if_due();
        // Before the detector's lock: status readers never wait on /proc.
        let now = shared.time.now();
        for event in &mut batch {
            names.name_event(event, now);
        }
        identity.read_resolv_confs(&mut batch);
        // One lock per batch: status readers wait at most one batch.
        let mut alerts: Vec<_> = {
            let mut detector = shared.detector();
            batch
                .iter()
                .flat_map(|event| detector.judge(event))
                .collect()
        };
        // Outside the lock: reading a container's state may touch the disk.
        crate::alert::enrich(&mut identity, &mut alerts);
        if alerts.iter().any(|a| !a.affected.is_empty()) {
            shared.detector().label_workloads(&alerts);
        }
        let mut lines: Vec<Alert> = alerts
            .into_iter()
            .flat_map(|alert| folder.offer(alert))
            .collect();
        lines.extend(folder.tick(shared.time.now()));
        for alert in &lines {
            emit(&mut writer, shared, alert);
        }
        shared
            .alert_stream
            .folded
            .store(folder.folded(), Ordering::Relaxed);
    }
    // Shutdown: nothing counted is left unwritten.
    for alert in &folder.flush() {
        emit(&mut writer, shared, alert);
    }
    Ok(())
}

pub(super) fn emit(writer: &mut AlertWriter, shared: &Shared, alert: &Alert) {
    if let Some(fault) = &alert.fault {
        // One diagnostic line per fault written (repeats fold into the
        // window's summary), instead of a backtrace per packet.
        tracing::error!(rules = fault.rules, event = %fault.event, "detector fault, event skipped: {}", fault.detail);
    }
    let written = writer.write(&on_wall_clock(alert, &shared.time));
    if let Err(error) = &written {
        // The alert must reach someone: say it on stderr.
        tracing::error!(rule = alert.rule.id(), message = %alert.message, "{error}");
    }
    let now = shared.time.now();
    shared.note_written(alert, written.map_err(|e| e.to_string()), now);
}

/// `alert` with its times moved from the daemon's time base to the wall
/// clock as it is now.
fn on_wall_clock(alert: &Alert, time: &TimeBase) -> Alert {
    let mut wall = alert.clone();
    wall.timestamp = time.to_wall(alert.timestamp);
    if let Some(repeats) = &mut wall.repeats {
        repeats.first = time.to_wall(repeats.first);
        repeats.last = time.to_wall(repeats.last);
    }
    wall
}

#[cfg(test)]
#[path = "detect_tests.rs"]
mod tests;
