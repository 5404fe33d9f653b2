//! At start, before attaching: pinwatch programs an earlier run left on the
//! cgroup root (`kernel::stale`) are detached and reported as a
//! `stale-programs-removed` alert; another running pinwatch refuses the
//! start.
use std::path::Path;

use super::{Shared, detect};
use crate::{
    alert::{Alert, Rule, StaleProgramRef, sink::AlertWriter},
    clock::TimeBase,
    kernel::{
        pins::PinnedIds,
        stale::{self, StaleCheck, StaleError},
    },
};

/// Runs the check, sparing what this daemon adopts (`adopted`); the alert
/// to raise once the writer is up, if any.
pub(super) fn check(
    cgroup_root: &Path,
    time: &TimeBase,
    adopted: &PinnedIds,
) -> Result<Option<Alert>, StaleError> {
    match stale::remove_stale(cgroup_root, adopted)? {
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

/// The pins of an incompatible version, replaced: its links now run this
/// version's programs (switched in one step), its maps are unpinned.
pub(super) fn replaced(time: &TimeBase, replaced: &[std::path::PathBuf]) -> Option<Alert> {
    if replaced.is_empty() {
        return None;
    }
    let dirs: Vec<String> = replaced.iter().map(|p| p.display().to_string()).collect();
    let message = format!(
        "pinwatch pins of an incompatible version were found ({}); their links were switched to this version's programs without detaching (BPF_LINK_UPDATE) and their maps removed, with any records their ring buffer still held",
        dirs.join(", ")
    );
    tracing::warn!("{message}");
    Some(Alert::new(time.now(), Rule::StaleProgramsRemoved, message))
}

/// Writes the alert the way the detector thread writes its own, counted in
/// status and metrics; hands the writer back for that thread.
pub(super) fn report(
    alerts: impl IntoIterator<Item = Alert>,
    mut writer: AlertWriter,
    shared: &Shared,
) -> AlertWriter {
    for alert in alerts {
        shared.detector().count_raised(&alert);
        detect::emit(&mut writer, shared, &alert);
    }
    writer
}
