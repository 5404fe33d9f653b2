//! The application under attack: a small Flask service that reads one row
//! through psycopg2, run with the setup's python3 in the client namespace.
use std::{fs, net::IpAddr, process::Child, time::Duration};

use crate::{
    cmd::{Captured, describe, output, spawn_logged},
    netns::NetNs,
    poll,
    postgres::{PG_DATABASE, PG_PASSWORD, PG_PORT, PG_USER},
    provision::python3,
};

pub const APP_PORT: u16 = 8080;
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// `GET /item` opens a connection per request, as a pool does after a
/// restart: the hostname is resolved each time.
const APP: &str = r#"
import os
import psycopg2
from flask import Flask

app = Flask(__name__)

@app.get("/health")
def health():
    return {"pid": os.getpid()}

@app.get("/item")
def item():
    try:
        conn = psycopg2.connect(
            host=os.environ["DB_HOST"], port=int(os.environ["DB_PORT"]),
            dbname=os.environ["DB_NAME"], user=os.environ["DB_USER"],
            password=os.environ["DB_PASSWORD"], sslmode=os.environ["SSLMODE"],
            sslrootcert=os.environ.get("SSLROOTCERT") or None, connect_timeout=5)
    except psycopg2.OperationalError as error:
        return {"error": str(error), "pid": os.getpid()}, 500
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT name FROM items")
            (name,) = cursor.fetchone()
    finally:
        conn.close()
    return {"name": name, "pid": os.getpid()}

app.run(host=os.environ["LISTEN"], port=int(os.environ["PORT"]))
"#;

/// A small HTTP client run in the client namespace: prints the status, then
/// the body.
const GET: &str = r#"
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=20) as response:
        status, body = response.status, response.read()
except urllib.error.HTTPError as error:
    status, body = error.code, error.read()
print(status)
print(body.decode())
"#;

/// How the application reaches its database.
#[derive(Debug, Clone)]
pub struct AppSettings {
    /// `DB_HOST`: the hostname, resolved by libpq through the C library.
    pub db_host: String,
    /// `SSLMODE`: `verify-full`, `disable`, …
    pub sslmode: String,
    /// `SSLROOTCERT`: the CA certificate the application pins.
    pub sslrootcert: Option<String>,
}

/// One HTTP response from the application.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

impl HttpResponse {
    /// The body as JSON (every route of the app answers JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!("HTTP {} body is not JSON ({e}): {}", self.status, self.body)
        })
    }
}

/// The Flask application, started and answering. Drop kills it and
/// removes its temp dir.
pub struct FlaskApp {
    child: Child,
    log: Captured,
    listen: IpAddr,
    ns_name: String,
    _dir: tempfile::TempDir,
}

impl FlaskApp {
    /// Writes the app to a temp dir and runs `ip netns exec <ns> python3
    /// app.py` listening on `listen:8080`.
    pub fn start(ns: &NetNs, listen: IpAddr, settings: &AppSettings) -> FlaskApp {
        crate::require_root();
        let dir = tempfile::tempdir().expect("temp dir");
        let app = dir.path().join("app.py");
        fs::write(&app, APP).expect("write app.py");
        let mut cmd = ns.command(python3());
        cmd.arg("-u")
            .arg(&app)
            .env("LISTEN", listen.to_string())
            .env("PORT", APP_PORT.to_string())
            .env("DB_HOST", &settings.db_host)
            .env("DB_PORT", PG_PORT.to_string())
            .env("DB_NAME", PG_DATABASE)
            .env("DB_USER", PG_USER)
            .env("DB_PASSWORD", PG_PASSWORD)
            .env("SSLMODE", &settings.sslmode)
            .env("SSLROOTCERT", settings.sslrootcert.as_deref().unwrap_or(""));
        let line = describe(&cmd);
        let (child, log) = spawn_logged(&mut cmd);
        let mut app = FlaskApp {
            child,
            log,
            listen,
            ns_name: ns.name().to_owned(),
            _dir: dir,
        };
        let ready = poll(READY_TIMEOUT, || {
            if let Ok(Some(status)) = app.child.try_wait() {
                panic!("`{line}` exited early ({status}):\n{}", app.log());
            }
            let response = app.try_get(ns, "/health")?;
            (response.status == 200).then_some(response)
        });
        let health = ready.unwrap_or_else(|| {
            panic!(
                "the Flask app did not answer within {READY_TIMEOUT:?}: `{line}`\n{}",
                app.log()
            )
        });
        assert_eq!(
            health.json()["pid"].as_u64(),
            Some(u64::from(app.pid())),
            "the app answering is not the python3 that `ip netns exec` started (pid {}): {}",
            app.pid(),
            health.body
        );
        app
    }

    /// The pid of the python3 process, which makes the database connects.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the app (Flask's server) logged so far.
    pub fn log(&self) -> String {
        self.log.text()
    }

    /// `GET <path>` from `ns`; panics when no HTTP response comes.
    pub fn get(&self, ns: &NetNs, path: &str) -> HttpResponse {
        assert_eq!(ns.name(), self.ns_name, "request from the app's namespace");
        self.try_get(ns, path)
            .unwrap_or_else(|| panic!("no HTTP response for {path}; app log:\n{}", self.log()))
    }

    fn try_get(&self, ns: &NetNs, path: &str) -> Option<HttpResponse> {
        let url = match self.listen {
            IpAddr::V4(v4) => format!("http://{v4}:{APP_PORT}{path}"),
            IpAddr::V6(v6) => format!("http://[{v6}]:{APP_PORT}{path}"),
        };
        let out = output(ns.command(python3()).args(["-c", GET, &url]));
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let (status, body) = text.split_once('\n')?;
        Some(HttpResponse {
            status: status.trim().parse().ok()?,
            body: body.trim().to_owned(),
        })
    }
}

impl Drop for FlaskApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- Flask app log ---\n{}", self.log());
        }
    }
}
