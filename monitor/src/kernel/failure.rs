//! What went wrong with one program or map: the error itself where there is
//! one, kept as the source. The text carries its causes too (and for a
//! refused load the verifier's last lines), because the daemon reports an
//! error by its text alone.
#[derive(Debug, thiserror::Error)]
pub enum BpfFailure {
    #[error("not in the object")]
    Missing,
    #[error("not in the object, or already taken")]
    Taken,
    /// Boxed, as the next one: aya's errors are large, and every start-up
    /// step returns this type.
    #[error("{}", describe_program(.0))]
    Program(#[source] Box<aya::programs::ProgramError>),
    #[error("{}", chain(.0.as_ref()))]
    Map(#[source] Box<aya::maps::MapError>),
    #[error("{}", chain(.0))]
    Io(#[source] std::io::Error),
    #[error(
        "{entries} (port, pinned network) pairs on enforced ports, more than the {limit} it holds"
    )]
    TooManyEntries { entries: usize, limit: u32 },
}

impl BpfFailure {
    pub fn program(error: aya::programs::ProgramError) -> BpfFailure {
        BpfFailure::Program(Box::new(error))
    }

    pub fn map(error: aya::maps::MapError) -> BpfFailure {
        BpfFailure::Map(Box::new(error))
    }
}

/// A refused load says why in the verifier log: its last lines, which name
/// the instruction and the rule it broke.
fn describe_program(error: &aya::programs::ProgramError) -> String {
    match error {
        aya::programs::ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            let tail: Vec<&str> = log.lines().rev().take(6).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!("{io_error}; verifier: {}", tail.join(" | "))
        }
        other => chain(other),
    }
}

/// The error and its causes, `: `-separated.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::kernel::KernelError;

    #[test]
    fn a_map_error_stays_the_source_and_its_text_names_the_cause() {
        let error = KernelError::MapUpdate {
            map: "PINNED_V4",
            source: BpfFailure::map(aya::maps::MapError::SyscallError(aya::sys::SyscallError {
                call: "bpf_map_update_elem",
                io_error: std::io::Error::from_raw_os_error(libc::E2BIG),
            })),
        };
        let text = error.to_string();
        assert!(
            text.starts_with("cannot update eBPF map PINNED_V4: "),
            "{text}"
        );
        assert!(text.contains("bpf_map_update_elem"), "{text}");
        let failure = error.source().expect("the failure is the source");
        let map_error = failure
            .source()
            .and_then(|e| e.downcast_ref::<Box<aya::maps::MapError>>())
            .expect("aya's error is kept, not flattened into text");
        assert!(matches!(**map_error, aya::maps::MapError::SyscallError(_)));
    }

    #[test]
    fn a_missing_program_says_so() {
        let error = KernelError::Load {
            program: "pw_connect4",
            kind: "cgroup/connect4",
            source: BpfFailure::Missing,
        };
        assert_eq!(
            error.to_string(),
            "the kernel refused to load program pw_connect4 (cgroup/connect4): not in the object"
        );
    }
}
