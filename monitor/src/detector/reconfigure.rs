//! Reloads as the detector sees them: a new pin index in place of the old,
//! and `config-reload-failed` when the daemon refused one.
use super::{Detector, PinIndex};
use crate::{
    alert::{Alert, Rule},
    config::Config,
    event::ReloadFailure,
};

impl Detector {
    /// Swaps in the pinned sets of `config`. Counters and the recent
    /// answers (which name an address resolved to) carry over: they are
    /// facts about traffic, not about the configuration. Last answers of
    /// hostnames no longer configured are dropped, since status reports
    /// them per configured database.
    pub fn reconfigure(&mut self, config: &Config) {
        let pins = PinIndex::new(&config.databases);
        self.last_answers
            .retain(|hostname, _| pins.database_for_name(hostname).is_some());
        self.pins = pins;
        self.matching.reconfigure(config);
    }

    pub(super) fn reload_failed(&self, failure: &ReloadFailure) -> Vec<Alert> {
        let message = format!(
            "Reloading the configuration from {} was refused: {}; the previous configuration (sha256 {}) stays in force — fix the file and reload again",
            failure.file.display(),
            failure.reason,
            failure.hash_in_force,
        );
        vec![Alert::new(
            failure.timestamp,
            Rule::ConfigReloadFailed,
            message,
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        event::{Direction, Event},
        fixtures::{a_response, at, dns_event},
    };

    fn config(orders_pinned: &str, billing: bool) -> Config {
        let mut text = format!(
            "[[database]]\nname = \"orders\"\nhostnames = [\"db.lab.test\"]\npinned = [\"{orders_pinned}\"]\n"
        );
        if billing {
            text.push_str(
                "[[database]]\nname = \"billing\"\nhostnames = [\"billing.lab.test\"]\npinned = [\"192.0.2.20\"]\n",
            );
        }
        crate::fixtures::config(&text)
    }

    fn answer(question: &str, ip: &str, secs: u64) -> Event {
        Event::Dns(dns_event(
            a_response(question, 7, &[ip], 300),
            Direction::Ingress,
            "198.51.100.53:53",
            "198.51.100.10:40000",
            at(secs),
        ))
    }

    fn rules(alerts: &[Alert]) -> Vec<Rule> {
        alerts.iter().map(|a| a.rule).collect()
    }

    #[test]
    fn a_wider_pinned_set_silences_the_same_answer_and_keeps_state() {
        let mut detector = Detector::new(&config("192.0.2.0/24", true));
        let forged = answer("db.lab.test", "203.0.113.66", 0);
        assert_eq!(rules(&detector.observe(&forged)), [Rule::DnsAnswerDiverged]);
        detector.observe(&answer("billing.lab.test", "192.0.2.20", 1));

        detector.reconfigure(&config("203.0.113.0/24", false));

        assert!(detector.observe(&forged).is_empty());
        let counters = detector.counters();
        assert_eq!(counters.dns_messages, 3);
        assert_eq!(counters.alerts.get(&Rule::DnsAnswerDiverged), Some(&1));
        assert!(detector.last_answer("db.lab.test").is_some());
        // billing is gone from the configuration, and from last answers.
        assert!(detector.last_answer("billing.lab.test").is_none());
        // The address→name memory survives for unexpected-db-peer.
        assert_eq!(
            detector
                .recent
                .name_for("203.0.113.66".parse().unwrap(), at(10))
                .as_deref(),
            Some("db.lab.test")
        );
    }

    #[test]
    fn a_refused_reload_raises_config_reload_failed_naming_file_and_reason() {
        let mut detector = Detector::new(&config("192.0.2.0/24", false));
        let alerts = detector.observe(&Event::ReloadFailed(ReloadFailure {
            timestamp: std::time::UNIX_EPOCH,
            file: "/etc/pinwatch/pinwatch.toml".into(),
            reason: "database[0].pinned[0]: \"10.0.0.300\" is neither an IP address nor a CIDR"
                .into(),
            hash_in_force: "ab12".into(),
        }));
        assert_eq!(rules(&alerts), [Rule::ConfigReloadFailed]);
        let message = &alerts[0].message;
        for part in ["/etc/pinwatch/pinwatch.toml", "10.0.0.300", "sha256 ab12"] {
            assert!(message.contains(part), "{message}");
        }
        assert_eq!(
            detector.counters().alerts.get(&Rule::ConfigReloadFailed),
            Some(&1)
        );
    }
}
