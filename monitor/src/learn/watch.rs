//! The kernel side of `pinwatch learn`: the daemon's programs and ring-buffer
//! source, feeding a [`Learner`] instead of the detector.
use std::{collections::BTreeSet, sync::Arc};

use tokio::sync::mpsc;

use super::{LearnError, Learner, Plan};
use crate::{
    clock::TimeBase,
    kernel::{
        self, Probes,
        source::{KernelSource, SourceStats},
    },
};

/// Batches waiting for the learner, as in the daemon: when it falls behind,
/// the kernel counts what it cannot store.
const PIPELINE_DEPTH: usize = 256;

/// Attaches the programs, learns until `stop` resolves, detaches, and
/// returns what was seen. `on_ready` runs once the programs are attached.
pub async fn watch(
    plan: &Plan,
    stop: impl Future<Output = ()>,
    on_ready: impl FnOnce(),
) -> Result<Learner, LearnError> {
    kernel::preflight()?;
    let cgroup_root = kernel::find_cgroup2_root()?;
    // No watched ports: learning needs DNS only, and must never enforce.
    let mut probes = Probes::attach(&cgroup_root, &BTreeSet::new())?;
    let maps = probes.take_event_maps()?;
    let stats = Arc::new(SourceStats::default());
    let source = KernelSource::new(maps, Arc::new(TimeBase::host()), stats)?;
    on_ready();

    let mut learner = Learner::new(plan);
    let (events_tx, mut events_rx) = mpsc::channel(PIPELINE_DEPTH);
    let learn = async {
        while let Some(batch) = events_rx.recv().await {
            for event in &batch {
                learner.observe(event);
            }
        }
    };
    // The source drops its sender when it returns, which ends `learn`.
    let (result, ()) = tokio::join!(source.run(events_tx, stop), learn);
    drop(probes);
    result?;
    Ok(learner)
}
