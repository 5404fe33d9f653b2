//! A TCP connect from a process in a namespace whose pid the test knows.
use std::{net::IpAddr, process::Stdio};

use crate::{cmd::spawn_piped, netns::NetNs, provision::python3};

/// The connecting process: python3 prints its own pid so the harness can
/// check that it is the pid of the child it spawned.
const SCRIPT: &str = r#"
import os, socket, sys
ip, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(1.0)
try:
    s.connect((ip, port))
    result = "connected"
except OSError as e:
    result = "%s/%s" % (type(e).__name__, e.errno)
s.close()
print("pid=%d result=%s" % (os.getpid(), result), flush=True)
"#;

/// What one [`connect()`] did.
#[derive(Debug, Clone)]
pub struct Connect {
    /// Pid of the process that called connect(); its name is `python3`.
    pub pid: u32,
    /// `connected` or the error (`ConnectionRefusedError/111`, `TimeoutError/None`, ...).
    pub result: String,
}

/// Runs a short python3 TCP connect (1 s timeout) to `ip:port` inside `ns`
/// and waits for it. The connect may fail: pinwatch's hook fires at connect().
pub fn connect(ns: &NetNs, ip: impl Into<IpAddr>, port: u16) -> Connect {
    let ip = ip.into();
    let mut cmd = ns.command(python3());
    cmd.args(["-c", SCRIPT, &ip.to_string(), &port.to_string()]);
    let (child, line) = spawn_piped(&mut cmd, Stdio::null(), Stdio::piped());
    let pid = child.id();
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("`{line}`: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = stdout
        .lines()
        .find_map(|l| l.strip_prefix("pid="))
        .unwrap_or_else(|| {
            panic!(
                "`{line}` printed no report ({}):\n{stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let (reported_pid, result) = report.split_once(" result=").expect("pid=N result=R");
    assert_eq!(
        reported_pid.parse::<u32>().ok(),
        Some(pid),
        "the connecting python3 is not the process `ip netns exec` spawned: {report}"
    );
    Connect {
        pid,
        result: result.to_owned(),
    }
}
