//! Configuration errors. Every message names the file, the key path and the
//! offending value, so an operator can fix the file without reading code.

use std::path::PathBuf;

use ipnet::IpNet;

/// Why a configuration was refused. `pinwatch` maps every variant to exit 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file (or /etc/resolv.conf, for the resolver default) could not be read.
    #[error("{}: cannot read: {source}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax, a wrong type, a missing required key or an unknown key.
    /// toml's own message carries the line, the column and a caret (its
    /// trailing newline is trimmed so callers can print it like the others).
    #[error("{file}: {}", source.to_string().trim_end())]
    Parse {
        file: String,
        #[source]
        source: toml::de::Error,
    },
    /// The TOML parsed but a value is not acceptable.
    #[error("{file}: {key}: {problem}")]
    Invalid {
        file: String,
        /// Key path such as `database[1].pinned[0]` (indexes count from 0).
        key: String,
        problem: Problem,
    },
}

impl ConfigError {
    /// The key path of an [`ConfigError::Invalid`] error, for tests and for
    /// the `config-reload-failed` alert.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// What is wrong with one value. The Display text starts with the value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    #[error("at least one [[database]] table is required: there is nothing to watch")]
    NoDatabase,
    #[error("must not be empty")]
    EmptyList,
    #[error("{0:?} must not be blank")]
    Blank(String),
    #[error("{value:?} is already the name of database[{first}]")]
    DuplicateName { value: String, first: usize },
    #[error("{value:?} is not a valid hostname: {fault}")]
    BadHostname { value: String, fault: HostnameFault },
    #[error(
        "{value:?} is already watched by database[{first}] ({name:?}); a hostname may belong to one database only"
    )]
    DuplicateHostname {
        value: String,
        first: usize,
        name: String,
    },
    #[error("0 is not a port a client can connect to (use 1-65535)")]
    PortZero,
    #[error("{0} is out of range for a port (1-65535)")]
    PortRange(i64),
    #[error("{0:?} is neither an IP address nor a CIDR")]
    BadPinned(String),
    #[error("{value:?} has host bits set; did you mean {network:?}?", network = network.to_string())]
    HostBits { value: String, network: IpNet },
    #[error("{value:?} is not one of {expected}")]
    BadChoice {
        value: String,
        expected: &'static str,
    },
    #[error("is required with sink = \"file\"")]
    FileSinkWithoutPath,
    #[error("{value:?} is only used with sink = \"file\", but sink = {sink:?}")]
    PathWithoutFileSink { value: String, sink: String },
    #[error("{value:?} is not a duration such as \"60s\" or \"5m\": {reason}")]
    BadDuration { value: String, reason: String },
    #[error("{0:?} must be longer than zero")]
    ZeroDuration(String),
    #[error("{0:?} is not an IP:port address such as \"127.0.0.1:9464\"")]
    BadSocketAddr(String),
    #[error("{0:?} has port 0; pick a fixed port so scrapers can find it")]
    ListenPortZero(String),
    #[error("{0:?} must be an absolute path")]
    RelativePath(String),
    #[error("{0:?} is not an IP address")]
    BadIp(String),
    #[error("{0} is out of range (1-65535)")]
    ThresholdRange(i64),
    #[error(
        "{count} distinct ports over all databases, more than the {limit} the kernel's port map (WATCHED_PORTS) holds"
    )]
    TooManyPorts { limit: usize, count: usize },
    #[error(
        "{count} (port, {family} network) pairs on enforced ports (every database's pinned networks on each port a mode = \"block\" database watches), more than the {limit} the kernel's pinned-set trie {map} holds"
    )]
    TooManyPinnedPairs {
        family: &'static str,
        map: &'static str,
        limit: usize,
        count: usize,
    },
}

/// Why a hostname was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HostnameFault {
    #[error("it is empty")]
    Empty,
    #[error("it is an IP address; put addresses in `pinned`")]
    IpLiteral,
    #[error("its last label is all digits, which looks like a mistyped IP address")]
    NumericTld,
    #[error("it is {0} characters long (at most 253)")]
    TooLong(usize),
    #[error("it has an empty label")]
    EmptyLabel,
    #[error("label {0:?} is longer than 63 characters")]
    LabelTooLong(String),
    #[error("character {0:?} is not allowed (letters, digits, '-' and '_' only)")]
    BadChar(char),
    #[error("the DNS library refuses it: {0}")]
    Rejected(String),
}
