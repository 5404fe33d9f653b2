//! `pinwatch check-config` refuses what the kernel's maps cannot hold, with
//! exit 2 and a message naming the key and the limit, before anything is
//! loaded (no root, no kernel needed).
use std::{path::Path, process::Command};

fn check_config(text: &str) -> (Option<i32>, String) {
    // Removed with the guard, also when the test fails.
    let dir = tempfile::Builder::new()
        .prefix("pinwatch-check-config-")
        .tempdir()
        .expect("temp dir");
    let file = dir.path().join("pinwatch.toml");
    std::fs::write(&file, text).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_pinwatch"))
        .args(["check-config", "-c"])
        .arg(Path::new(&file))
        .output()
        .expect("run pinwatch check-config");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn database(ports: &[String], pinned: &[String], mode: &str) -> String {
    format!(
        "[[database]]\nname = \"orders\"\nhostnames = [\"db.internal\"]\nports = [{}]\npinned = [{}]\nmode = \"{mode}\"\n",
        ports.join(", "),
        pinned.join(", ")
    )
}

fn ports(range: std::ops::RangeInclusive<u32>) -> Vec<String> {
    range.map(|p| p.to_string()).collect()
}

#[test]
fn check_config_refuses_1025_ports_naming_the_key_and_the_limit() {
    let (code, text) = check_config(&database(
        &ports(1..=1025),
        &["\"192.0.2.1\"".into()],
        "monitor",
    ));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("database[0].ports"), "{text}");
    assert!(
        text.contains("1025 distinct ports") && text.contains("1024"),
        "{text}"
    );

    let (code, text) = check_config(&database(
        &ports(1..=1024),
        &["\"192.0.2.1\"".into()],
        "monitor",
    ));
    assert_eq!(code, Some(0), "1,024 ports fit: {text}");
}

#[test]
fn check_config_refuses_an_oversized_pinned_set_naming_the_key_and_the_limit() {
    // 16,385 /32s on one enforced port: one pair more than PINNED_V4 holds.
    let pinned: Vec<String> = (0..16_385u32)
        .map(|n| format!("\"{}\"", std::net::Ipv4Addr::from(0x0a00_0000 + n)))
        .collect();
    let (code, text) = check_config(&database(&ports(26257..=26257), &pinned, "block"));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("database[0].pinned"), "{text}");
    assert!(
        text.contains("16385 (port, IPv4 network) pairs") && text.contains("16384"),
        "{text}"
    );

    let (code, text) = check_config(&database(&ports(26257..=26257), &pinned[1..], "block"));
    assert_eq!(code, Some(0), "16,384 pairs fit: {text}");
}
