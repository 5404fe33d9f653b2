//! What the running kernel offers pinwatch's programs, probed once at start.
//!
//! Each probe picks how a program is loaded or attached (one object; the
//! variant is chosen at load), and each answer is reported by status and
//! metrics, so what a kernel lacks is never a silent downgrade. Only a
//! missing feature that costs a detection makes the daemon degraded; one
//! with a full substitute is listed with what replaces it.
use aya::{
    programs::ProgramType,
    sys::{BpfHelper, is_helper_supported},
    util::KernelVersion,
};
use serde::{Deserialize, Serialize};

/// The kernel's answers, as status and metrics show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelFeatures {
    /// `uname -r`.
    pub release: String,
    /// Every probed feature, present or not.
    pub features: Vec<Feature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feature {
    /// Stable name, also the `feature` label of `pinwatch_kernel_feature`.
    pub name: String,
    pub available: bool,
    /// When unavailable: what pinwatch does instead, or what it cannot do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

/// `bpf_ktime_get_coarse_ns` from cgroup_skb programs (Linux 5.11).
pub const COARSE_CLOCK: &str = "coarse-clock";
/// tcx, links for tc programs (Linux 6.6).
pub const TCX: &str = "tcx";

/// The probes' results the loader acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probed {
    pub coarse_clock: bool,
    pub tcx: bool,
}

impl Probed {
    /// Probes the running kernel. A probe that cannot run counts as the
    /// feature missing: the fallbacks work everywhere.
    pub fn run() -> Probed {
        let coarse_clock = is_helper_supported(
            ProgramType::CgroupSkb,
            BpfHelper::BPF_FUNC_ktime_get_coarse_ns,
        )
        .unwrap_or(false);
        let tcx = KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0));
        Probed { coarse_clock, tcx }
    }

    /// What status and metrics report.
    pub fn report(&self) -> KernelFeatures {
        let feature = |name: &str, available: bool, fallback: &str| Feature {
            name: name.to_owned(),
            available,
            fallback: (!available).then(|| fallback.to_owned()),
        };
        KernelFeatures {
            release: release(),
            features: vec![
                feature(
                    COARSE_CLOCK,
                    self.coarse_clock,
                    "records are stamped with the precise clock (bpf_ktime_get_ns), which costs more per packet",
                ),
                feature(
                    TCX,
                    self.tcx,
                    "the interface hook is attached with legacy tc (a clsact qdisc and a bpf filter per interface)",
                ),
            ],
        }
    }
}

fn release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_feature_says_what_replaces_it() {
        let old = Probed {
            coarse_clock: false,
            tcx: false,
        }
        .report();
        assert_eq!(old.features.len(), 2);
        for feature in &old.features {
            assert!(!feature.available);
            assert!(
                feature.fallback.as_deref().is_some_and(|f| !f.is_empty()),
                "{feature:?}"
            );
        }
        let new = Probed {
            coarse_clock: true,
            tcx: true,
        }
        .report();
        assert!(
            new.features
                .iter()
                .all(|f| f.available && f.fallback.is_none())
        );
        let names: Vec<&str> = new.features.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, [COARSE_CLOCK, TCX]);
    }
}
