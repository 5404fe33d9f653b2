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
    DnsUnsolicitedResponse,
    DnsTxidMismatchBurst,
    DnsConflictingResponses,
    DnsUntrustedResolver,
    DnsCaseMismatch,
    DnsBailiwickViolation,
    DnsFragmentedResponse,
    DetectorFault,
    PinwatchRestarted,
}

impl Rule {
    pub const ALL: [Rule; 16] = [
        Rule::DnsAnswerDiverged,
        Rule::UnexpectedDbPeer,
        Rule::DbConnectBlocked,
        Rule::PlaintextDbConnection,
        Rule::EventLoss,
        Rule::ConfigReloadFailed,
        Rule::StaleProgramsRemoved,
        Rule::DnsUnsolicitedResponse,
        Rule::DnsTxidMismatchBurst,
        Rule::DnsConflictingResponses,
        Rule::DnsUntrustedResolver,
        Rule::DnsCaseMismatch,
        Rule::DnsBailiwickViolation,
        Rule::DnsFragmentedResponse,
        Rule::DetectorFault,
        Rule::PinwatchRestarted,
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
            Rule::DnsUnsolicitedResponse => "dns-unsolicited-response",
            Rule::DnsTxidMismatchBurst => "dns-txid-mismatch-burst",
            Rule::DnsConflictingResponses => "dns-conflicting-responses",
            Rule::DnsUntrustedResolver => "dns-untrusted-resolver",
            Rule::DnsCaseMismatch => "dns-case-mismatch",
            Rule::DnsBailiwickViolation => "dns-bailiwick-violation",
            Rule::DnsFragmentedResponse => "dns-fragmented-response",
            Rule::DetectorFault => "detector-fault",
            Rule::PinwatchRestarted => "pinwatch-restarted",
        }
    }

    /// Whether the rule's alerts are about a socket, whose process they
    /// should name; those without one are counted (`alerts_without_process`).
    pub fn names_a_process(self) -> bool {
        !matches!(
            self,
            Rule::EventLoss
                | Rule::ConfigReloadFailed
                | Rule::StaleProgramsRemoved
                | Rule::PinwatchRestarted
                // A response no socket asked for, or seen at an interface.
                | Rule::DnsUnsolicitedResponse
                | Rule::DnsFragmentedResponse
        )
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
            Rule::DnsUnsolicitedResponse => "DNS response that matches no outstanding query",
            Rule::DnsTxidMismatchBurst => {
                "Burst of DNS responses with wrong transaction ids for a waiting query"
            }
            Rule::DnsConflictingResponses => "Different DNS responses for one query",
            Rule::DnsUntrustedResolver => {
                "Database hostname answered by a resolver outside the trusted set"
            }
            Rule::DnsCaseMismatch => "DNS response question differs in letter case from the query",
            Rule::DnsBailiwickViolation => {
                "DNS response for a database hostname carries records outside the queried zone"
            }
            Rule::DnsFragmentedResponse => {
                "DNS response for a database hostname arrived as IP fragments"
            }
            Rule::DetectorFault => "pinwatch could not judge an event",
            Rule::PinwatchRestarted => {
                "pinwatch came back after a gap; what happened meanwhile was judged"
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
            // Late replies after a timeout look the same: a lead, not proof.
            Rule::DnsUnsolicitedResponse => 2,
            // A spoofer racing the genuine answer: the attack itself.
            Rule::DnsTxidMismatchBurst => 3,
            // One of the two answers is forged, and the client may have
            // taken it.
            Rule::DnsConflictingResponses => 3,
            // The answer may be right, but the path is not the one vetted.
            Rule::DnsUntrustedResolver => 2,
            // A forger that guessed the id but not the 0x20 letter case.
            Rule::DnsCaseMismatch => 3,
            // Out-of-zone records are how a cache is poisoned beyond the
            // name asked for.
            Rule::DnsBailiwickViolation => 3,
            // Fragments let an off-path forger replace the tail of a genuine
            // answer without guessing the id or port (fragment poisoning).
            Rule::DnsFragmentedResponse => 3,
            // One event went unjudged; the rest are judged as before.
            Rule::DetectorFault => 2,
            // Nothing was missed unless records were lost (`event-loss`
            // says so too), but a daemon that stopped is worth a look: an
            // intruder silences agents first.
            Rule::PinwatchRestarted => 2,
        }
    }
}
