//! The whole test suite: unit tests of every host crate, then the kernel
//! integration tests, which need root and run one at a time (each attaches
//! to the cgroup root and watches the whole host's traffic).
use anyhow::bail;

use crate::{setup, shell};

pub fn run() -> anyhow::Result<()> {
    if !setup::is_root() {
        bail!(
            "the kernel integration tests need root (they load eBPF programs and create network namespaces); they are required, not skipped"
        );
    }
    shell::cargo(&["build", "--package", "pinwatch"])?;
    shell::cargo(&[
        "test",
        "--package",
        "pinwatch",
        "--package",
        "pinwatch-common",
        "--package",
        "xtask",
    ])?;
    shell::cargo(&[
        "test",
        "--package",
        "pinwatch-integration-tests",
        "--",
        "--test-threads=1",
    ])
}
