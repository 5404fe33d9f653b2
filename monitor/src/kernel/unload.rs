//! `pinwatch unload`: removes everything pinwatch leaves in the kernel on
//! purpose — the pins under `[kernel] pin_path` (which detaches their links
//! and frees the maps), legacy tc filters, and any other pinwatch program
//! on the cgroup v2 root.
use std::path::Path;

use aya::programs::{TcAttachType, tc};

use super::{
    interfaces,
    pins::{PinDir, PinError, PinnedIds},
    stale::{self, StaleCheck, StaleError, StaleProgram},
};

#[derive(Debug, thiserror::Error)]
pub enum UnloadError {
    #[error(
        "pinwatch is running (pid {pid}, {comm}): stop it first (`systemctl stop pinwatch`), which detaches and unpins everything itself"
    )]
    Running { pid: u32, comm: String },
    #[error(transparent)]
    Stale(#[from] StaleError),
    #[error(transparent)]
    Pins(#[from] PinError),
}

/// What was removed.
#[derive(Debug, Default)]
pub struct Unloaded {
    pub links: Vec<String>,
    pub tc_filters: Vec<String>,
    pub programs: Vec<StaleProgram>,
}

pub fn unload(pin_path: &Path, cgroup_root: &Path) -> Result<Unloaded, UnloadError> {
    if let Some((pid, comm)) = stale::running_daemon(cgroup_root)? {
        return Err(UnloadError::Running { pid, comm });
    }
    let pins = PinDir::new(pin_path);
    let mut unloaded = Unloaded {
        links: pins.link_names()?,
        ..Unloaded::default()
    };
    pins.remove_all()?;
    for name in interfaces::names() {
        if tc::qdisc_detach_program(&name, TcAttachType::Ingress, interfaces::PROGRAM).is_ok() {
            unloaded.tc_filters.push(name);
        }
    }
    if let StaleCheck::Removed(programs) = stale::remove_stale(cgroup_root, &PinnedIds::default())?
    {
        unloaded.programs = programs;
    }
    Ok(unloaded)
}
