use std::{path::Path, process::ExitCode};

use crate::{
    config::{Config, KernelSettings},
    kernel::{self, unload::UnloadError},
};

/// `pinwatch unload`: exit 0 when nothing of pinwatch's is left in the
/// kernel, 2 when a daemon runs or the file is invalid, 3 when the kernel
/// refused.
pub fn unload(path: &Path) -> ExitCode {
    super::init_tracing();
    // A package being removed may have lost its file already: the default
    // pin path is where everything is then.
    let (kernel_settings, cgroup) = if path.exists() {
        match Config::load(path) {
            Ok(config) => (config.kernel, config.host.cgroup),
            Err(error) => {
                eprintln!("pinwatch: invalid configuration: {error}");
                return ExitCode::from(2);
            }
        }
    } else {
        (KernelSettings::default(), None)
    };
    let cgroup = match cgroup.map_or_else(kernel::find_cgroup2_root, Ok) {
        Ok(root) => root,
        Err(error) => {
            eprintln!("pinwatch: {error}");
            return ExitCode::from(3);
        }
    };
    match kernel::unload::unload(&kernel_settings.pin_path, &cgroup) {
        Ok(unloaded) => {
            println!(
                "pinwatch unloaded: {} pinned links removed under {}, {} legacy tc filters removed, {} other programs detached from {}",
                unloaded.links.len(),
                kernel_settings.pin_path.display(),
                unloaded.tc_filters.len(),
                unloaded.programs.len(),
                cgroup.display()
            );
            ExitCode::SUCCESS
        }
        Err(error @ UnloadError::Running { .. }) => {
            eprintln!("pinwatch: {error}");
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("pinwatch: {error}");
            ExitCode::from(3)
        }
    }
}
