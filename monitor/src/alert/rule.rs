use serde::Serialize;

/// The rules of SPEC's table; `id()` is `event.action` and `rule.id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    DnsAnswerDiverged,
    UnexpectedDbPeer,
    EventLoss,
}

impl Rule {
    pub const ALL: [Rule; 3] = [
        Rule::DnsAnswerDiverged,
        Rule::UnexpectedDbPeer,
        Rule::EventLoss,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Rule::DnsAnswerDiverged => "dns-answer-diverged",
            Rule::UnexpectedDbPeer => "unexpected-db-peer",
            Rule::EventLoss => "event-loss",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Rule::DnsAnswerDiverged => "DNS answer for a database hostname left its pinned set",
            Rule::UnexpectedDbPeer => "Database connection to an address outside the pinned sets",
            Rule::EventLoss => "pinwatch lost events",
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
        }
    }
}
