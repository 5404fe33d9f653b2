//! A PostgreSQL server in a lab namespace: initdb into a temp dir as the
//! `postgres` OS user, TLS on, password (SCRAM) authentication for a test
//! role, and a table with one row.
use std::{
    fs,
    net::IpAddr,
    os::unix::fs::{PermissionsExt, chown},
    path::{Path, PathBuf},
    process::{Child, Command},
    time::{Duration, Instant},
};

use crate::{
    cmd::{Captured, describe, output, run, spawn_logged},
    netns::NetNs,
    poll,
    tls::ServerCert,
};

/// Debian's PostgreSQL 15 server binaries (package `postgresql`).
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// The port the lab's databases listen on (CockroachDB's, which pinwatch
/// watches by default).
pub const PG_PORT: u16 = 26257;
/// The application's login, database and table.
pub const PG_USER: &str = "app";
pub const PG_PASSWORD: &str = "app-secret";
pub const PG_DATABASE: &str = "shop";
const SUPERUSER_PASSWORD: &str = "lab-superuser";
const OS_USER: &str = "postgres";
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The server, started and ready. Drop stops it (fast shutdown, then
/// SIGKILL) and removes its temp dir.
pub struct Postgres {
    child: Option<Child>,
    log: Captured,
    listen: IpAddr,
    // Last, so it is removed after the server stopped.
    dir: tempfile::TempDir,
}

impl Postgres {
    /// initdb, then `postgres -p 26257 -c listen_addresses=<listen> -c
    /// ssl=on` inside `ns`, with `cert`; the table `items` of database
    /// `shop` holds the one row `row`, readable by role `app`.
    pub fn start(ns: &NetNs, listen: IpAddr, cert: &ServerCert, row: &str) -> Postgres {
        crate::require_root();
        let dir = tempfile::tempdir().expect("temp dir");
        let (uid, gid) = os_user();
        // The server runs as `postgres`: it must reach its files.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let data = dir.path().join("data");
        let sockets = dir.path().join("sockets");
        let password_file = dir.path().join("superuser-password");
        fs::write(&password_file, SUPERUSER_PASSWORD).expect("write the password file");
        let cert_file = dir.path().join("server.crt");
        let key_file = dir.path().join("server.key");
        fs::copy(&cert.cert, &cert_file).expect("copy the certificate");
        fs::copy(&cert.key, &key_file).expect("copy the key");
        fs::create_dir(&sockets).expect("mkdir sockets");
        fs::create_dir(&data).expect("mkdir data");
        for path in [&data, &sockets, &password_file, &cert_file, &key_file] {
            chown(path, Some(uid), Some(gid)).expect("chown to postgres");
        }
        // PostgreSQL refuses a key or a data directory others can read.
        for path in [&key_file, &data] {
            let mode = if path.is_dir() { 0o700 } else { 0o600 };
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
        }

        let mut initdb = as_postgres(None, "initdb");
        initdb
            .current_dir(dir.path())
            .args(["--no-sync", "--no-locale", "-E", "UTF8", "-U", OS_USER])
            .args(["-A", "scram-sha-256", "--pwfile"])
            .arg(&password_file)
            .arg("-D")
            .arg(&data);
        run(&mut initdb);
        // initdb's pg_hba.conf admits TCP from loopback only; the lab's
        // clients come over the veth, with or without TLS.
        let hba = data.join("pg_hba.conf");
        let mut rules = fs::read_to_string(&hba).expect("read pg_hba.conf");
        rules.push_str("host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n");
        fs::write(&hba, rules).expect("write pg_hba.conf");

        let mut server = as_postgres(Some(ns), "postgres");
        server
            .current_dir(dir.path())
            .arg("-D")
            .arg(&data)
            .args(["-p", &PG_PORT.to_string(), "-k"])
            .arg(&sockets)
            .args(["-c", &format!("listen_addresses={listen}")])
            .args(["-c", "ssl=on", "-c"])
            .arg(format!("ssl_cert_file={}", cert_file.display()))
            .arg("-c")
            .arg(format!("ssl_key_file={}", key_file.display()))
            .args(["-c", "fsync=off", "-c", "shared_buffers=16MB"]);
        let line = describe(&server);
        let (child, log) = spawn_logged(&mut server);
        let mut postgres = Postgres {
            child: Some(child),
            log,
            listen,
            dir,
        };
        postgres.wait_ready(&line);
        // One statement per call: CREATE DATABASE refuses a transaction.
        for sql in [
            format!("CREATE ROLE {PG_USER} LOGIN PASSWORD '{PG_PASSWORD}'"),
            format!("CREATE DATABASE {PG_DATABASE} OWNER {PG_USER}"),
        ] {
            postgres.psql("postgres", &sql);
        }
        postgres.psql(
            PG_DATABASE,
            &format!(
                "CREATE TABLE items (name text NOT NULL); INSERT INTO items VALUES ('{row}'); GRANT SELECT ON items TO {PG_USER};"
            ),
        );
        postgres
    }

    pub fn listen(&self) -> IpAddr {
        self.listen
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.log.text()
    }

    fn sockets(&self) -> PathBuf {
        self.dir.path().join("sockets")
    }

    /// Waits until the server takes connections on its Unix socket.
    fn wait_ready(&mut self, line: &str) {
        let ready = poll(READY_TIMEOUT, || {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!("`{line}` exited early ({status}):\n{}", self.log());
            }
            let out = output(&mut self.psql_command("postgres", "SELECT 1"));
            out.status.success().then_some(())
        });
        if ready.is_none() {
            panic!(
                "PostgreSQL did not take connections within {READY_TIMEOUT:?}: `{line}`\n{}",
                self.log()
            );
        }
    }

    fn psql(&self, database: &str, sql: &str) {
        run(&mut self.psql_command(database, sql));
    }

    /// psql as the superuser over the Unix socket (file system, not network
    /// namespace: it reaches the server from anywhere).
    fn psql_command(&self, database: &str, sql: &str) -> Command {
        let mut cmd = Command::new(Path::new(PG_BIN).join("psql"));
        cmd.arg("-h")
            .arg(self.sockets())
            .args(["-p", &PG_PORT.to_string(), "-U", OS_USER, "-d", database])
            .args(["-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql])
            .env("PGPASSWORD", SUPERUSER_PASSWORD)
            .env("PGCONNECT_TIMEOUT", "2");
        cmd
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- PostgreSQL {} log ---\n{}", self.listen, self.log());
        }
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SIGINT: fast shutdown, backends included.
        // SAFETY: kill has no memory-safety preconditions; the child is not reaped yet.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// `[ip netns exec <ns>] setpriv … <PG_BIN>/<program>`: setpriv execs, so the
/// child's pid is the program's.
fn as_postgres(ns: Option<&NetNs>, program: &str) -> Command {
    let mut cmd = match ns {
        Some(ns) => ns.command("setpriv"),
        None => Command::new("setpriv"),
    };
    cmd.args([
        &format!("--reuid={OS_USER}"),
        &format!("--regid={OS_USER}"),
        "--init-groups",
    ])
    .arg(Path::new(PG_BIN).join(program));
    cmd
}

/// The `postgres` OS user the Debian package creates.
fn os_user() -> (u32, u32) {
    let out = run(Command::new("id").args(["-u", OS_USER]));
    let uid = out.trim().parse().expect("numeric uid");
    let out = run(Command::new("id").args(["-g", OS_USER]));
    let gid = out.trim().parse().expect("numeric gid");
    (uid, gid)
}
