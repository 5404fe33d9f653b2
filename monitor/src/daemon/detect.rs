//! The detector thread: synchronous, so the detector stays a plain function
//! of (state, event), and alert writes block instead of dropping.
use tokio::sync::mpsc;

use super::{DaemonError, Shared};
use crate::{alert::sink::AlertWriter, event::Event};

pub(super) fn run(
    mut events: mpsc::Receiver<Vec<Event>>,
    shared: &Shared,
    mut writer: AlertWriter,
) -> Result<(), DaemonError> {
    while let Some(batch) = events.blocking_recv() {
        // One lock per batch: status readers wait at most one batch.
        let alerts: Vec<_> = {
            let mut detector = shared.detector();
            batch
                .iter()
                .flat_map(|event| detector.observe(event))
                .collect()
        };
        for alert in &alerts {
            if let Err(error) = writer.write(alert) {
                // The alert must reach someone: say it on stderr.
                tracing::error!(rule = alert.rule.id(), message = %alert.message, "{error}");
            }
        }
    }
    Ok(())
}
