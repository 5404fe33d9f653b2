//! At start, before attaching: pinwatch programs an earlier run left on the
//! cgroup root (`kernel::stale`) are detached and reported as a
//! `stale-programs-removed` alert; another running pinwatch refuses the
//! start.
use std::path::Path;

use super::{Shared, detect};
use crate::{
    alert::{Alert, Rule, StaleProgramRef, sink::AlertWriter},
    clock::TimeBase,
    kernel::stale::{self, StaleCheck, StaleError},
};

/// Runs the check; the alert to raise once the writer is up, if any.
pub(super) fn check(cgroup_root: &Path, time: &TimeBase) -> Result<Option<Alert>, StaleError> {
    match stale::remove_stale(cgroup_root)? {
        StaleCheck::Clean => Ok(None),
        StaleCheck::Unchecked(why) => {
            tracing::warn!("cannot check for stale pinwatch programs on the cgroup root: {why}");
            Ok(None)
        }
        StaleCheck::Removed(removed) => {
            let message = stale::describe_removed(cgroup_root, &removed);
            tracing::warn!("{message}");
            let mut alert = Alert::new(time.now(), Rule::StaleProgramsRemoved, message);
            alert.stale_programs = removed
                .iter()
                .map(|p| StaleProgramRef {
                    name: p.name.clone(),
                    id: p.program_id,
                    kind: p.kind.to_owned(),
                    link_id: p.link_id,
                })
                .collect();
            Ok(Some(alert))
        }
    }
}

/// Writes the alert the way the detector thread writes its own, counted in
/// status and metrics; hands the writer back for that thread.
pub(super) fn report(
    alert: Option<Alert>,
    mut writer: AlertWriter,
    shared: &Shared,
) -> AlertWriter {
    if let Some(alert) = alert {
        shared.detector().count_raised(&alert);
        detect::emit(&mut writer, shared, &alert);
    }
    writer
}
