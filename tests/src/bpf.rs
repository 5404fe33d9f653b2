//! Which pinwatch programs the kernel has loaded.
use aya::programs::loaded_programs;

/// The programs the daemon attaches.
pub const PINWATCH_PROGRAMS: [&str; 9] = [
    "pw_dns_egress",
    "pw_dns_ingress",
    "pw_dns_iface",
    "pw_connect4",
    "pw_connect6",
    "pw_dns_sendmsg4",
    "pw_dns_sendmsg6",
    "pw_dns_connect4",
    "pw_dns_connect6",
];

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LoadedProgram {
    pub id: u32,
    pub name: String,
}

/// Loaded programs whose name is one of [`PINWATCH_PROGRAMS`].
pub fn loaded_pinwatch_programs() -> Vec<LoadedProgram> {
    let mut found: Vec<LoadedProgram> = loaded_programs()
        // A program can be unloaded between listing and opening it.
        .filter_map(Result::ok)
        .filter_map(|info| {
            let name = info.name_as_str()?.to_owned();
            PINWATCH_PROGRAMS
                .contains(&name.as_str())
                .then(|| LoadedProgram {
                    id: info.id(),
                    name,
                })
        })
        .collect();
    found.sort();
    found
}
