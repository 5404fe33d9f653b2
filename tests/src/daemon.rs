//! The pinwatch daemon under test, in the foreground, as a guard.
use std::{
    ffi::OsStr,
    fmt::Write as _,
    fs,
    net::IpAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use crate::{alerts::AlertLog, cmd::Captured, siem::Settings};

/// How long the daemon may take to attach and say `pinwatch ready`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long it may take to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);
const READY_LINE: &str = "pinwatch ready";
/// How long a reload may take to be logged after SIGHUP.
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The journald sink's test hook: the socket it sends to.
const JOURNAL_SOCKET_ENV: &str = "PINWATCH_JOURNAL_SOCKET";
const RELOADED_LINE: &str = "configuration reloaded";
const RELOAD_FAILED_LINE: &str = "configuration reload failed";

/// `$PINWATCH_BIN`, or `<workspace>/target/debug/pinwatch`; panics when it
/// does not exist.
/// How many times slower than this machine the kernel runs the daemon:
/// `PINWATCH_TEST_SLOWDOWN`, which `cargo xtask vmtest` sets under QEMU's
/// software emulation (loading and verifying the programs alone takes tens
/// of seconds there); 1 otherwise.
pub fn slowdown() -> u32 {
    std::env::var("PINWATCH_TEST_SLOWDOWN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1)
}

pub fn pinwatch_bin() -> PathBuf {
    let path = match std::env::var_os("PINWATCH_BIN") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/pinwatch"),
    };
    assert!(
        path.is_file(),
        "the pinwatch binary is missing at {}: build it first: cargo build -p pinwatch \
         (or point PINWATCH_BIN at it)",
        path.display()
    );
    path
}

/// One `[[database]]` table.
#[derive(Debug, Clone)]
pub struct Database {
    pub name: String,
    pub hostnames: Vec<String>,
    pub ports: Vec<u16>,
    pub pinned: Vec<String>,
    /// `mode`; left out (monitor) when `None`.
    pub mode: Option<String>,
}

impl Database {
    pub fn new(name: &str, hostnames: &[&str], ports: &[u16], pinned: &[&str]) -> Database {
        Database {
            name: name.to_owned(),
            hostnames: hostnames.iter().map(|s| (*s).to_owned()).collect(),
            ports: ports.to_vec(),
            pinned: pinned.iter().map(|s| (*s).to_owned()).collect(),
            mode: None,
        }
    }

    /// The same database with `mode = mode` ("monitor" or "block").
    pub fn with_mode(mut self, mode: &str) -> Database {
        self.mode = Some(mode.to_owned());
        self
    }
}

/// What goes into the daemon's configuration file; the harness adds the
/// `[alerts]` file sink and the `[control]` socket in its temp dir.
#[derive(Debug, Clone, Default)]
pub struct DaemonConfig {
    pub databases: Vec<Database>,
    /// `[dns] trusted_resolvers`; left out when empty.
    pub trusted_resolvers: Vec<IpAddr>,
}

impl DaemonConfig {
    /// The file, with alerts to the file `alerts` and the socket at `socket`.
    pub fn to_toml(&self, alerts: &Path, socket: &Path) -> String {
        let mut toml = String::new();
        for db in &self.databases {
            let ports: Vec<String> = db.ports.iter().map(u16::to_string).collect();
            let _ = write!(
                toml,
                "[[database]]\nname = {}\nhostnames = {}\nports = [{}]\npinned = {}\n",
                quote(&db.name),
                quote_list(&db.hostnames),
                ports.join(", "),
                quote_list(&db.pinned),
            );
            if let Some(mode) = &db.mode {
                let _ = writeln!(toml, "mode = {}", quote(mode));
            }
            toml.push('\n');
        }
        if !self.trusted_resolvers.is_empty() {
            let resolvers: Vec<String> = self
                .trusted_resolvers
                .iter()
                .map(IpAddr::to_string)
                .collect();
            let _ = write!(
                toml,
                "[dns]\ntrusted_resolvers = {}\n\n",
                quote_list(&resolvers)
            );
        }
        let _ = write!(
            toml,
            "[alerts]\nsink = \"file\"\npath = {}\n\n[control]\nsocket = {}\n",
            quote(&alerts.to_string_lossy()),
            quote(&socket.to_string_lossy()),
        );
        // Each daemon pins under its own path (named after its temp dir),
        // which Drop unloads: a test that kills its daemon leaves nothing
        // for the next one to adopt.
        let dir = alerts.parent().unwrap_or(Path::new("/"));
        let _ = write!(
            toml,
            "\n[kernel]\npin_path = {}\n",
            quote(&pin_path_for(dir).to_string_lossy())
        );
        toml
    }
}

/// A TOML basic string (JSON's escapes are valid TOML).
fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

fn quote_list(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| quote(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("pwt-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `pinwatch run -c <temp>/pinwatch.toml`, started and ready.
///
/// Its stderr and stdout are drained into buffers ([`Daemon::stderr`]) and
/// printed when a test fails. Drop sends SIGTERM, waits, and — unless the
/// test is already failing — asserts that the daemon exited 0.
pub struct Daemon {
    child: Option<Child>,
    stderr: Captured,
    stdout: Captured,
    bin: PathBuf,
    env: Vec<(String, std::ffi::OsString)>,
    config_path: PathBuf,
    config_text: String,
    alerts_path: PathBuf,
    socket_path: PathBuf,
    // Last, so it is removed after the daemon stopped.
    dir: TempDir,
}

impl Daemon {
    /// Writes the configuration, starts the daemon and waits (30 s at most)
    /// for `pinwatch ready` on its stderr.
    pub fn start(config: &DaemonConfig) -> Daemon {
        Daemon::start_with_bin(&pinwatch_bin(), config)
    }

    /// [`Daemon::start`] with another binary (the harness's own tests use a
    /// stand-in).
    pub fn start_with_bin(bin: &Path, config: &DaemonConfig) -> Daemon {
        Daemon::start_with_env(bin, config, &[])
    }

    /// [`Daemon::start_with_bin`] with extra environment variables (systemd's
    /// `NOTIFY_SOCKET`, `WATCHDOG_USEC`).
    pub fn start_with_env(bin: &Path, config: &DaemonConfig, env: &[(&str, &OsStr)]) -> Daemon {
        Daemon::launch(bin, config, env, None, &Settings::default())
    }

    /// [`Daemon::start`] with `[control] group = group`: the control socket
    /// is group-owned, mode 0660.
    pub fn start_with_control_group(config: &DaemonConfig, group: &str) -> Daemon {
        Daemon::launch(
            &pinwatch_bin(),
            config,
            &[],
            Some(group),
            &Settings::default(),
        )
    }

    /// [`Daemon::start`] with `[alerts] dedup_window` and `[metrics] listen`.
    pub fn start_with_settings(config: &DaemonConfig, settings: &Settings) -> Daemon {
        Daemon::launch(&pinwatch_bin(), config, &[], None, settings)
    }

    /// [`Daemon::start`] with `[alerts] sink = "journald"` writing to the
    /// fake journal listening at `socket` (`crate::FakeJournal`), through
    /// the sink's test hook `PINWATCH_JOURNAL_SOCKET`. The alert file stays
    /// empty.
    pub fn start_with_journal(config: &DaemonConfig, socket: &Path) -> Daemon {
        let env = [(JOURNAL_SOCKET_ENV, socket.as_os_str())];
        Daemon::launch(&pinwatch_bin(), config, &env, None, &Settings::default())
    }

    /// `bin run -c PATH` where `write(dir, alerts, socket)` lays the
    /// configuration out in the daemon's temp dir as the test wants it (an
    /// installed file adjusted, a ConfigMap's symlinks) and returns PATH.
    /// The file must send alerts to `alerts` and put the socket at `socket`.
    pub fn start_with_file(
        bin: &Path,
        write: impl FnOnce(&Path, &Path, &Path) -> PathBuf,
    ) -> Daemon {
        crate::require_root();
        let dir = TempDir::new();
        let alerts_path = dir.0.join("alerts.ndjson");
        let socket_path = dir.0.join("pinwatch.sock");
        let config_path = write(&dir.0, &alerts_path, &socket_path);
        let config_text = fs::read_to_string(&config_path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", config_path.display()));
        Daemon::spawn(
            bin,
            &[],
            dir,
            config_path,
            config_text,
            alerts_path,
            socket_path,
        )
    }

    fn launch(
        bin: &Path,
        config: &DaemonConfig,
        env: &[(&str, &OsStr)],
        control_group: Option<&str>,
        settings: &Settings,
    ) -> Daemon {
        crate::require_root();
        let dir = TempDir::new();
        let config_path = dir.0.join("pinwatch.toml");
        let alerts_path = dir.0.join("alerts.ndjson");
        let socket_path = dir.0.join("pinwatch.sock");
        let mut config_text = config.to_toml(&alerts_path, &socket_path);
        if let Some(group) = control_group {
            let table = format!("[control]\ngroup = {}\n", quote(group));
            config_text = config_text.replacen("[control]\n", &table, 1);
        }
        let mut config_text = settings.apply(&config_text);
        if env.iter().any(|(name, _)| *name == JOURNAL_SOCKET_ENV) {
            config_text = config_text.replacen(
                &format!(
                    "sink = \"file\"\npath = {}\n",
                    quote(&alerts_path.to_string_lossy())
                ),
                "sink = \"journald\"\n",
                1,
            );
        }
        fs::write(&config_path, &config_text).expect("write the daemon's config");
        Daemon::spawn(
            bin,
            env,
            dir,
            config_path,
            config_text,
            alerts_path,
            socket_path,
        )
    }

    /// Starts `bin run -c config_path` and waits until it is ready.
    fn spawn(
        bin: &Path,
        env: &[(&str, &OsStr)],
        dir: TempDir,
        config_path: PathBuf,
        config_text: String,
        alerts_path: PathBuf,
        socket_path: PathBuf,
    ) -> Daemon {
        let mut daemon = Daemon {
            child: None,
            stderr: Captured::default(),
            stdout: Captured::default(),
            bin: bin.to_owned(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            config_path,
            config_text,
            alerts_path,
            socket_path,
            dir,
        };
        let child = daemon.run_child(&[]);
        daemon.child = Some(child);
        daemon
    }

    /// Starts `bin run [extra] -c config_path`, its output appended to this
    /// daemon's, and waits until it says it is ready.
    fn run_child(&mut self, extra: &[&str]) -> Child {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("run").args(extra).arg("-c").arg(&self.config_path);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));

        let (ready_tx, ready_rx) = mpsc::channel();
        self.stderr
            .drain(child.stderr.take().expect("piped"), move |line| {
                if line.contains(READY_LINE) {
                    let _ = ready_tx.send(());
                }
            });
        self.stdout
            .drain(child.stdout.take().expect("piped"), |_| {});

        let deadline = Instant::now() + READY_TIMEOUT * slowdown();
        loop {
            match ready_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(()) => break,
                Err(mpsc::RecvTimeoutError::Timeout)
                | Err(mpsc::RecvTimeoutError::Disconnected) => {}
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "pinwatch exited ({status}) before saying `{READY_LINE}`\nconfig:\n{}\nstderr:\n{}",
                    self.config_text,
                    self.stderr()
                );
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "pinwatch did not say `{READY_LINE}` on stderr within {:?}\nstderr:\n{}",
                    READY_TIMEOUT * slowdown(),
                    self.stderr()
                );
            }
        }
        child
    }

    /// Starts the daemon again, with the same file, after [`Daemon::kill`]
    /// or [`Daemon::stop`]; waits until it is ready.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the daemon is still running");
        let child = self.run_child(&[]);
        self.child = Some(child);
    }

    /// The upgrade in place: `pinwatch run --handover` with the same file
    /// while this daemon runs. Waits until the new one is ready and the old
    /// one exited (returned), and goes on as the new one.
    pub fn take_over(&mut self) -> ExitStatus {
        let mut old = self.child.take().expect("the daemon is running");
        let new = self.run_child(&["--handover"]);
        self.child = Some(new);
        let deadline = Instant::now() + STOP_TIMEOUT * slowdown();
        loop {
            match old.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = old.kill();
                    let _ = old.wait();
                    panic!(
                        "the old pinwatch did not exit after handing over\n{}",
                        self.dump()
                    );
                }
            }
        }
    }

    /// Where this daemon pins its programs (`[kernel] pin_path`).
    pub fn pin_path(&self) -> PathBuf {
        pin_path_for(&self.dir.0)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The daemon's alert file.
    pub fn alerts(&self) -> AlertLog {
        AlertLog::new(&self.alerts_path)
    }

    pub fn alerts_path(&self) -> &Path {
        &self.alerts_path
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    pub fn dir(&self) -> &Path {
        &self.dir.0
    }

    /// What the daemon wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// What the daemon wrote to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    /// Rewrites the configuration file from `config`, with the same alert
    /// file and socket; the daemon reads it on the next [`Daemon::reload`].
    pub fn rewrite_config(&mut self, config: &DaemonConfig) {
        let text = config.to_toml(&self.alerts_path, &self.socket_path);
        self.write_config_text(&text);
    }

    /// Writes `text` as the configuration file, as it is (for bad files).
    pub fn write_config_text(&mut self, text: &str) {
        fs::write(&self.config_path, text).expect("rewrite the daemon's config");
        self.config_text = text.to_owned();
    }

    /// Sends SIGHUP and waits (10 s at most) for the daemon's verdict on
    /// stderr: `Ok(line)` when it logged `configuration reloaded`, `Err(line)`
    /// when it logged `configuration reload failed`.
    pub fn reload(&self) -> Result<String, String> {
        self.reload_after("SIGHUP", || self.signal(libc::SIGHUP))
    }

    /// Does `trigger` (a signal, a change to a watched file) and waits (10 s
    /// at most) for the reload outcome it causes, as [`Daemon::reload`].
    pub fn reload_after(&self, what: &str, trigger: impl FnOnce()) -> Result<String, String> {
        let before = self.reload_outcomes().len();
        trigger();
        crate::poll(RELOAD_TIMEOUT, || {
            self.reload_outcomes().into_iter().nth(before)
        })
        .unwrap_or_else(|| {
            panic!(
                "pinwatch logged no reload outcome within {RELOAD_TIMEOUT:?} of {what}\n{}",
                self.dump()
            )
        })
    }

    fn reload_outcomes(&self) -> Vec<Result<String, String>> {
        self.stderr()
            .lines()
            .filter_map(|line| {
                if line.contains(RELOADED_LINE) {
                    Some(Ok(line.to_owned()))
                } else if line.contains(RELOAD_FAILED_LINE) {
                    Some(Err(line.to_owned()))
                } else {
                    None
                }
            })
            .collect()
    }

    /// Sends `signal` to the running daemon; panics when it is not running.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = self.pid().expect("the daemon is running") as libc::pid_t;
        // SAFETY: kill has no memory-safety preconditions; pid is our child,
        // not yet reaped, so it cannot have been reused.
        let ret = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            ret,
            0,
            "kill({pid}, {signal}): {}",
            std::io::Error::last_os_error()
        );
    }

    /// Sends SIGTERM and waits for the exit (SIGKILL after 15 s, then
    /// panics). Returns the exit status; later calls and Drop do nothing.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let pid = child.id() as libc::pid_t;
        // SAFETY: kill has no memory-safety preconditions; pid is our child,
        // not yet reaped, so it cannot have been reused.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT * slowdown();
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    if !std::thread::panicking() {
                        panic!(
                            "pinwatch did not exit within {STOP_TIMEOUT:?} of SIGTERM (killed: {status:?})\nstderr:\n{}",
                            self.stderr()
                        );
                    }
                    return status;
                }
            }
        }
    }

    /// SIGKILL, as a crash or the OOM killer would end it: no shutdown path
    /// runs. Waits for the exit and returns its status; later calls and
    /// Drop do nothing.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = child.kill();
        Some(child.wait().expect("wait for the killed daemon"))
    }

    /// Everything useful for a failure message.
    pub fn dump(&self) -> String {
        format!(
            "--- pinwatch config ({}) ---\n{}\n--- pinwatch stderr ---\n{}\n--- pinwatch stdout ---\n{}\n--- alerts ({}) ---\n{}",
            self.config_path.display(),
            self.config_text,
            self.stderr(),
            self.stdout(),
            self.alerts_path.display(),
            fs::read_to_string(&self.alerts_path).unwrap_or_else(|e| format!("(unreadable: {e})")),
        )
    }
}

/// `/sys/fs/bpf/<the daemon's temp dir name>`.
fn pin_path_for(dir: &Path) -> PathBuf {
    Path::new("/sys/fs/bpf").join(dir.file_name().unwrap_or_default())
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let status = self.stop();
        // A daemon that was killed (or failed) leaves its pins: unload them,
        // so nothing stays attached after the test, pass or fail.
        if self.pin_path().exists() {
            let unloaded = Command::new(&self.bin)
                .arg("unload")
                .arg("-c")
                .arg(&self.config_path)
                .output();
            if !std::thread::panicking() {
                let output = unloaded.expect("run pinwatch unload");
                assert!(
                    output.status.success(),
                    "pinwatch unload: {output:?}\n{}",
                    self.dump()
                );
            }
        }
        if std::thread::panicking() {
            eprintln!("{}", self.dump());
            return;
        }
        if let Some(status) = status {
            assert!(
                status.code() == Some(0),
                "pinwatch should exit 0 on SIGTERM, it exited {status}\n{}",
                self.dump()
            );
        }
    }
}
