//! Without the privileges it needs, `pinwatch run` must stop before touching
//! the kernel, exit 3, and name what is missing.
//!
//! Kernel tests run one at a time: `cargo test -p pinwatch-integration-tests -- --test-threads=1`.
use std::process::Command;

use pinwatch_integration_tests::{pinwatch_bin, require_root};

#[test]
fn unprivileged_run_exits_3_and_names_the_missing_capabilities() {
    require_root();
    let dir = std::env::temp_dir().join(format!("pinwatch-privileges-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("pinwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[[database]]\nname = \"orders\"\nhostnames = [\"db.lab.test\"]\npinned = [\"192.0.2.0/24\"]\n\
             [control]\nsocket = \"{}\"\n",
            dir.join("pinwatch.sock").display()
        ),
    )
    .unwrap();
    // World-readable so the unprivileged user can read the config.
    Command::new("chmod")
        .args(["-R", "a+rX", dir.to_str().unwrap()])
        .status()
        .unwrap();

    let output = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(pinwatch_bin())
        .args(["run", "-c"])
        .arg(&config)
        .output()
        .expect("setpriv runs");
    std::fs::remove_dir_all(&dir).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "stderr: {stderr}");
    for capability in ["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON"] {
        assert!(
            stderr.contains(capability),
            "the message names {capability}: {stderr}"
        );
    }
    assert!(
        output.stdout.is_empty(),
        "no alert stream output: {:?}",
        String::from_utf8_lossy(&output.stdout)
    );
}
