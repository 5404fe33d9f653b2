//! What the alert-stream and metrics tests need beside the lab: settings the
//! harness's configuration leaves out, and a plain HTTP scrape of `/metrics`.
use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    time::Duration,
};

/// `[alerts] dedup_window` and `[metrics] listen`; `None` leaves the
/// daemon's default (60 s; no endpoint).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub dedup_window: Option<String>,
    pub metrics_listen: Option<SocketAddr>,
}

impl Settings {
    /// `toml` (as the harness writes it) with these settings added.
    pub(crate) fn apply(&self, toml: &str) -> String {
        let mut toml = toml.to_owned();
        if let Some(window) = &self.dedup_window {
            let table = format!("[alerts]\ndedup_window = {}\n", quote(window));
            toml = toml.replacen("[alerts]\n", &table, 1);
        }
        if let Some(listen) = self.metrics_listen {
            toml.push_str(&format!(
                "\n[metrics]\nlisten = {}\n",
                quote(&listen.to_string())
            ));
        }
        toml
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// A loopback address with a port nothing listens on right now.
pub fn free_loopback_addr() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address")
}

/// One HTTP response.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub status: u16,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Scrape {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of the sample whose name and labels are exactly `series`
    /// (`pinwatch_alerts_total{rule="event-loss"}`).
    pub fn value(&self, series: &str) -> Option<f64> {
        self.body.lines().find_map(|line| {
            let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
            rest.split(' ').next()?.parse().ok()
        })
    }
}

/// `METHOD path HTTP/1.1` to `addr`, one request per connection.
pub fn http(addr: SocketAddr, method: &str, path: &str) -> Scrape {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("cannot connect to the metrics endpoint {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set a read timeout");
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .unwrap_or_else(|e| panic!("cannot send `{method} {path}` to {addr}: {e}"));
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("no response to `{method} {path}` from {addr}: {e}"));
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response:\n{raw}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status line:\n{raw}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Scrape {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// `GET /metrics` from `addr`; panics unless it answered 200.
pub fn scrape(addr: SocketAddr) -> Scrape {
    let scrape = http(addr, "GET", "/metrics");
    assert_eq!(scrape.status, 200, "GET /metrics:\n{}", scrape.body);
    scrape
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_go_into_their_tables() {
        let settings = Settings {
            dedup_window: Some("2s".into()),
            metrics_listen: Some("127.0.0.1:9464".parse().unwrap()),
        };
        let toml = settings.apply("[alerts]\nsink = \"file\"\n\n[control]\nsocket = \"s\"\n");
        assert_eq!(
            toml,
            "[alerts]\ndedup_window = \"2s\"\nsink = \"file\"\n\n[control]\nsocket = \"s\"\n\n[metrics]\nlisten = \"127.0.0.1:9464\"\n"
        );
    }

    #[test]
    fn finds_sample_values() {
        let scrape = Scrape {
            status: 200,
            headers: vec![],
            body: "# TYPE a counter\na_total{rule=\"x\"} 3\na_total{rule=\"xy\"} 4\nb 1.5\n# EOF\n"
                .into(),
        };
        assert_eq!(scrape.value("a_total{rule=\"x\"}"), Some(3.0));
        assert_eq!(scrape.value("a_total{rule=\"xy\"}"), Some(4.0));
        assert_eq!(scrape.value("b"), Some(1.5));
        assert_eq!(scrape.value("a_total"), None);
    }
}
