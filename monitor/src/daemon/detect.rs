//! The detector thread: synchronous, so the detector stays a plain function
//! of (state, event), and alert writes block instead of dropping. Between
//! the detector and the writer, the fold stage turns repeats into summary
//! lines; the source's empty batch once a second is the tick that closes
//! fold windows when no event arrives.
use std::{sync::atomic::Ordering, time::SystemTime};

use tokio::sync::mpsc;

use super::{DaemonError, Shared};
use crate::{
    alert::{
        Alert,
        fold::{self, Folder},
        sink::AlertWriter,
    },
    event::Event,
    identity::Resolver,
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
    while let Some(mut batch) = events.blocking_recv() {
        identity.read_resolv_confs(&mut batch);
        // One lock per batch: status readers wait at most one batch.
        let mut alerts: Vec<_> = {
            let mut detector = shared.detector();
            batch
                .iter()
                .flat_map(|event| detector.observe(event))
                .collect()
        };
        // Outside the lock: reading a container's state may touch the disk.
        identity.enrich(&mut alerts);
        if alerts.iter().any(|a| !a.affected.is_empty()) {
            shared.detector().label_workloads(&alerts);
        }
        let mut lines: Vec<Alert> = alerts
            .into_iter()
            .flat_map(|alert| folder.offer(alert))
            .collect();
        lines.extend(folder.tick(SystemTime::now()));
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
    let written = writer.write(alert);
    let stream = &shared.alert_stream;
    stream.lines.fetch_add(1, Ordering::Relaxed);
    if let Err(error) = &written {
        stream.write_errors.fetch_add(1, Ordering::Relaxed);
        // The alert must reach someone: say it on stderr.
        tracing::error!(rule = alert.rule.id(), message = %alert.message, "{error}");
    }
    let written = written.map_err(|e| e.to_string());
    shared
        .alert_history()
        .record(alert, written, SystemTime::now());
}
