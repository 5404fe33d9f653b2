//! Inputs that are not captures, or never end: replay streams them under a
//! byte limit and exits 2 quickly, its memory bounded. Peak memory is the
//! child's own (`ru_maxrss` from wait4), time is wall-clock.
use std::{
    fs,
    io::Write,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::*;

/// How a run of `pinwatch replay` ended.
struct Bounded {
    code: i32,
    stderr: String,
    took: Duration,
    peak_kib: i64,
}

/// Quick and small: what every case here must be.
const MAX_TIME: Duration = Duration::from_secs(10);
const MAX_PEAK_KIB: i64 = 64 * 1024;

/// `pinwatch replay ARGS… -c CONFIG`, stdin from `stdin` (or fed `head`
/// then `body` forever, given `endless`), measured.
#[expect(
    clippy::zombie_processes,
    reason = "reaped by wait4, which also reports its peak memory"
)]
fn measured(
    args: &[&str],
    config: &Path,
    stdin: Stdio,
    endless: Option<(Vec<u8>, Vec<u8>)>,
) -> Bounded {
    let stderr_file = config.with_file_name("stderr.txt");
    let start = Instant::now();
    let mut child = Command::new(pinwatch_bin())
        .arg("replay")
        .args(args)
        .arg("-c")
        .arg(config)
        .stdin(if endless.is_some() {
            Stdio::piped()
        } else {
            stdin
        })
        .stdout(Stdio::null())
        .stderr(fs::File::create(&stderr_file).unwrap())
        .spawn()
        .unwrap();
    let feeder = endless.map(|(head, body)| {
        let mut pipe = child.stdin.take().unwrap();
        // Writes until replay closes the pipe.
        std::thread::spawn(move || {
            if pipe.write_all(&head).is_ok() {
                while pipe.write_all(&body).is_ok() {}
            }
        })
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pid is our child's, status and usage are valid pointers.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4");
    let took = start.elapsed();
    if let Some(feeder) = feeder {
        feeder.join().unwrap();
    }
    assert!(libc::WIFEXITED(status), "replay was killed: {status:#x}");
    Bounded {
        code: libc::WEXITSTATUS(status),
        stderr: fs::read_to_string(&stderr_file).unwrap(),
        took,
        peak_kib: usage.ru_maxrss,
    }
}

fn assert_refused(run: &Bounded, name: &str, reason: &str) {
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert_eq!(run.code, 2, "{name}: {}", run.stderr);
    let error = run.stderr.lines().last().unwrap_or_default();
    assert!(error.contains(name), "{name}: names the input: {error}");
    assert!(
        error.contains(reason),
        "{name}: wanted {reason:?} in {error}"
    );
    assert!(run.took < MAX_TIME, "{name}: took {:?}", run.took);
    assert!(
        run.peak_kib < MAX_PEAK_KIB,
        "{name}: peak RSS {} KiB",
        run.peak_kib
    );
}

fn pcap_header() -> Vec<u8> {
    let mut header = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    header.extend_from_slice(&65_535u32.to_le_bytes());
    header.extend_from_slice(&1u32.to_le_bytes());
    header
}

#[test]
fn dev_zero_sparse_files_and_endless_pipes_exit_2_quickly_with_bounded_memory() {
    let dir = Workdir::new("bounded");
    let config = dir.path("pinwatch.toml");
    let config = config.as_path();

    let run = measured(&["/dev/zero"], config, Stdio::null(), None);
    assert_refused(&run, "/dev/zero", "not a pcap or pcapng capture");
    let zero = fs::File::open("/dev/zero").unwrap();
    let run = measured(&["-"], config, Stdio::from(zero), None);
    assert_refused(&run, "pinwatch: -:", "not a pcap or pcapng capture");

    // 2 GiB of nothing, and 2 GiB of nothing after a valid file header.
    let sparse = dir.path("sparse.pcap");
    let file = fs::File::create(&sparse).unwrap();
    file.set_len(2 << 30).unwrap();
    drop(file);
    let name = sparse.to_str().unwrap();
    let run = measured(&[name], config, Stdio::null(), None);
    assert_refused(&run, name, "not a pcap or pcapng capture");
    let mut file = fs::OpenOptions::new().write(true).open(&sparse).unwrap();
    file.write_all(&pcap_header()).unwrap();
    drop(file);
    assert_eq!(fs::metadata(&sparse).unwrap().len(), 2 << 30);
    let run = measured(&[name], config, Stdio::null(), None);
    assert_refused(&run, name, "corrupt capture at byte offset 24");
    // Longer than the limit: refused before a byte is read.
    let run = measured(&[name, "--max-bytes", "1GiB"], config, Stdio::null(), None);
    assert_refused(&run, name, "longer than the limit of 1073741824 bytes");

    // A pipe of valid records that never ends stops at the limit.
    let mut record = vec![1, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0];
    record.extend_from_slice(&[0x45, 0, 0, 4]);
    let run = measured(
        &["/dev/stdin", "--max-bytes", "8MiB"],
        config,
        Stdio::null(),
        Some((pcap_header(), record.repeat(4096))),
    );
    assert_refused(&run, "/dev/stdin", "longer than the limit of 8388608 bytes");
    assert!(
        run.stderr.contains("packets"),
        "the summary: {}",
        run.stderr
    );
}
