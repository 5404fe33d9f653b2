//! The alert stream: NDJSON lines to stdout or a file, one write and one
//! flush per alert. Writes block rather than drop: back-pressure reaches the
//! event pipeline, whose losses are themselves counted and reported.
use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use super::{
    AgentInfo, Alert, encode,
    journald::{Journal, JournalError},
};

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot open alert file {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot write alert to {target}: {source}")]
    Write { target: String, source: io::Error },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Where the lines go: a byte stream, or journald entries.
enum Output {
    Stream(Box<dyn Write + Send>),
    Journal(Journal),
}

pub struct AlertWriter {
    out: Output,
    target: String,
    agent: AgentInfo,
    line: Vec<u8>,
}

impl AlertWriter {
    pub fn stdout(agent: AgentInfo) -> AlertWriter {
        AlertWriter {
            out: Output::Stream(Box::new(io::stdout())),
            target: "stdout".into(),
            agent,
            line: Vec::new(),
        }
    }

    /// Appends to `path`, creating it (mode 0640) and its parent directory.
    pub fn file(path: &Path, agent: AgentInfo) -> Result<AlertWriter, SinkError> {
        let open_error = |source| SinkError::Open {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(open_error)?;
        }
        let file: File = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(path)
            .map_err(open_error)?;
        Ok(AlertWriter {
            out: Output::Stream(Box::new(file)),
            target: path.display().to_string(),
            agent,
            line: Vec::new(),
        })
    }

    /// Any writer; for tests and for `pinwatch replay`.
    pub fn to_writer(out: Box<dyn Write + Send>, agent: AgentInfo) -> AlertWriter {
        AlertWriter {
            out: Output::Stream(out),
            target: "writer".into(),
            agent,
            line: Vec::new(),
        }
    }

    /// One journal entry per alert, to journald's socket
    /// (`alert::journald`).
    pub fn journald(agent: AgentInfo) -> Result<AlertWriter, SinkError> {
        let journal = Journal::open_default()?;
        Ok(AlertWriter {
            target: format!("journald ({})", journal.path().display()),
            out: Output::Journal(journal),
            agent,
            line: Vec::new(),
        })
    }

    /// Writes one alert as one line (a single write call, so concurrent
    /// readers never see half a line) and flushes it; for journald, as one
    /// entry.
    pub fn write(&mut self, alert: &Alert) -> Result<(), SinkError> {
        let event_id = uuid::Uuid::new_v4().to_string();
        let encoded = encode(alert, &self.agent, &event_id);
        let result = match &mut self.out {
            Output::Journal(journal) => journal.send(&encoded),
            Output::Stream(out) => {
                self.line.clear();
                self.line.extend_from_slice(encoded.as_bytes());
                self.line.push(b'\n');
                out.write_all(&self.line).and_then(|()| out.flush())
            }
        };
        result.map_err(|source| SinkError::Write {
            target: self.target.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{Arc, Mutex},
        time::UNIX_EPOCH,
    };

    use super::*;
    use crate::alert::Rule;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn writes_one_line_per_alert_with_unique_ids() {
        let buffer = Shared::default();
        let agent = AgentInfo {
            host_name: "h".into(),
            version: "0".into(),
        };
        let mut writer = AlertWriter::to_writer(Box::new(buffer.clone()), agent);
        for _ in 0..3 {
            writer
                .write(&Alert::new(UNIX_EPOCH, Rule::EventLoss, "lost".into()))
                .unwrap();
        }
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let ids: std::collections::HashSet<String> = text
            .lines()
            .map(|line| {
                serde_json::from_str::<serde_json::Value>(line).unwrap()["event"]["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(text.lines().count(), 3);
        assert_eq!(ids.len(), 3);
    }

    #[test]
    fn file_sink_appends_and_names_unopenable_path() {
        let dir = std::env::temp_dir().join(format!("pinwatch-sink-{}", std::process::id()));
        let path = dir.join("nested/alerts.ndjson");
        let agent = AgentInfo {
            host_name: "h".into(),
            version: "0".into(),
        };
        AlertWriter::file(&path, agent.clone())
            .unwrap()
            .write(&Alert::new(UNIX_EPOCH, Rule::EventLoss, "a".into()))
            .unwrap();
        AlertWriter::file(&path, agent.clone())
            .unwrap()
            .write(&Alert::new(UNIX_EPOCH, Rule::EventLoss, "b".into()))
            .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
        let err = AlertWriter::file(Path::new("/proc/version/x/alerts"), agent)
            .err()
            .unwrap();
        assert!(err.to_string().contains("/proc/version/x/alerts"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
