use serde::Serialize;

/// The rules of SPEC's table; `id()` is `event.action` and `rule.id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    DnsAnswerDiverged,
    UnexpectedDbPeer,
    EventLoss,
    ConfigReloadFailed,
}

impl Rule {
    pub const ALL: [Rule; 4] = [
        Rule::DnsAnswerDiverged,
        Rule::UnexpectedDbPeer,
        Rule::EventLoss,
        Rule::ConfigReloadFailed,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Rule::DnsAnswerDiverged => "dns-answer-diverged",
            Rule::UnexpectedDbPeer => "unexpected-db-peer",
            Rule::EventLoss => "event-loss",
            Rule::ConfigReloadFailed => "config-reload-failed",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Rule::DnsAnswerDiverged => "DNS answer for a database hostname left its pinned set",
            Rule::UnexpectedDbPeer => "Database connection to an address outside the pinned sets",
            Rule::EventLoss => "pinwatch lost events",
            Rule::ConfigReloadFailed => {
                "Configuration reload refused; the previous configuration stays in force"
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
            // Blind spots hide attacks but are not one.
            Rule::EventLoss => 2,
            // The file on disk is not what runs: protection may differ from
            // what the operator deployed, but nothing is under attack yet.
            Rule::ConfigReloadFailed => 2,
        }
    }
}
