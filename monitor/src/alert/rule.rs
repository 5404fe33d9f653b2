use serde::Serialize;

/// The rules of SPEC's table; `id()` is `event.action` and `rule.id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    DnsAnswerDiverged,
    UnexpectedDbPeer,
    DbConnectBlocked,
    PlaintextDbConnection,
    EventLoss,
    ConfigReloadFailed,
    StaleProgramsRemoved,
}

impl Rule {
    pub const ALL: [Rule; 7] = [
        Rule::DnsAnswerDiverged,
        Rule::UnexpectedDbPeer,
        Rule::DbConnectBlocked,
        Rule::PlaintextDbConnection,
        Rule::EventLoss,
        Rule::ConfigReloadFailed,
        Rule::StaleProgramsRemoved,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Rule::DnsAnswerDiverged => "dns-answer-diverged",
            Rule::UnexpectedDbPeer => "unexpected-db-peer",
            Rule::DbConnectBlocked => "db-connect-blocked",
            Rule::PlaintextDbConnection => "plaintext-db-connection",
            Rule::EventLoss => "event-loss",
            Rule::ConfigReloadFailed => "config-reload-failed",
            Rule::StaleProgramsRemoved => "stale-programs-removed",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Rule::DnsAnswerDiverged => "DNS answer for a database hostname left its pinned set",
            Rule::UnexpectedDbPeer => "Database connection to an address outside the pinned sets",
            Rule::DbConnectBlocked => {
                "Database connection to an address outside the pinned sets refused"
            }
            Rule::PlaintextDbConnection => "Database connection started without TLS",
            Rule::EventLoss => "pinwatch lost events",
            Rule::ConfigReloadFailed => {
                "Configuration reload refused; the previous configuration stays in force"
            }
            Rule::StaleProgramsRemoved => {
                "pinwatch programs left attached by an earlier run were removed"
            }
        }
    }

    /// ECS `event.severity`: 1 low, 2 medium, 3 high, 4 critical.
    pub fn severity(self) -> u8 {
        match self {
            // A forged answer is the attack in progress; the connect that
            // follows is where credentials leave the host.
            Rule::DnsAnswerDiverged => 3,
            Rule::UnexpectedDbPeer => 4,
            // Stopped before anything left the host, but something sent an
            // application to an impostor, and the application is failing.
            Rule::DbConnectBlocked => 3,
            // User and database names went out in the clear, and whatever
            // follows them may too: a forged address then gets everything.
            Rule::PlaintextDbConnection => 3,
            // Blind spots hide attacks but are not one.
            Rule::EventLoss => 2,
            // The file on disk is not what runs: protection may differ from
            // what the operator deployed, but nothing is under attack yet.
            Rule::ConfigReloadFailed => 2,
            // Someone pinned pinwatch's programs, or an older version left
            // them: worth a look, but they are gone now.
            Rule::StaleProgramsRemoved => 2,
        }
    }
}
