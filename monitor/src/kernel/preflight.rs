use std::path::Path;

use super::KernelError;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Checks the effective capabilities before touching the kernel, so a
/// missing privilege is named rather than surfacing as EPERM from bpf().
pub fn preflight() -> Result<(), KernelError> {
    let path = Path::new("/proc/self/status");
    let status = std::fs::read_to_string(path).map_err(|source| KernelError::Read {
        path: path.into(),
        source,
    })?;
    let effective = effective_capabilities(&status).unwrap_or(0);
    let missing = missing_capabilities(effective);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(KernelError::Capabilities {
            missing: missing.join(", "),
        })
    }
}

fn effective_capabilities(status: &str) -> Option<u64> {
    let hex = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// CAP_SYS_ADMIN covers the finer-grained capabilities on every kernel.
fn missing_capabilities(effective: u64) -> Vec<&'static str> {
    let has = |cap: u32| effective & (1 << cap) != 0;
    if has(CAP_SYS_ADMIN) {
        return Vec::new();
    }
    let mut missing = Vec::new();
    // Loading programs and reading packet data from them.
    if !has(CAP_BPF) {
        missing.push("CAP_BPF");
    }
    // Attaching to cgroups and reading socket fields.
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    // Reading pid and comm of the connecting process.
    if !has(CAP_PERFMON) {
        missing.push("CAP_PERFMON");
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_missing_capability() {
        assert_eq!(
            missing_capabilities(0),
            vec!["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON"]
        );
        assert_eq!(
            missing_capabilities(1 << CAP_BPF | 1 << CAP_PERFMON),
            vec!["CAP_NET_ADMIN"]
        );
        assert!(missing_capabilities(1 << CAP_SYS_ADMIN).is_empty());
        assert!(
            missing_capabilities(1 << CAP_BPF | 1 << CAP_NET_ADMIN | 1 << CAP_PERFMON).is_empty()
        );
    }

    #[test]
    fn reads_capeff_from_status() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(effective_capabilities(status), Some(0x1ff_ffff_ffff));
        assert_eq!(effective_capabilities("Name: x\n"), None);
    }
}
