//! OpenMetrics for `[metrics] listen`: the daemon's counters, rendered from
//! [`Shared`] on every scrape (nothing is kept twice), served at `/metrics`
//! by [`serve`] beside the `/healthz` and `/readyz` probes ([`health`]).
pub mod health;
mod serve;

pub use serve::{MetricsError, MetricsServer, bind, spawn};

use std::{
    sync::{Arc, atomic::Ordering},
    time::SystemTime,
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge, info::Info},
    registry::Registry,
};

use crate::{alert::Rule, daemon::Shared, event::LossOrigin, kernel::ProgramStatus};

/// The `Content-Type` of an OpenMetrics text exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One reading of every counter, taken under the detector lock once.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub version: String,
    pub started_at: SystemTime,
    pub dns_messages: u64,
    pub dns_responses_checked: u64,
    pub connects: u64,
    /// Detections by rule, before folding; every rule, zeros included.
    pub alerts: Vec<(Rule, u64)>,
    pub alert_lines: u64,
    pub alerts_folded: u64,
    pub alert_write_errors: u64,
    /// Every origin, zeros included.
    pub events_lost: Vec<(LossOrigin, u64)>,
    pub kernel_records: u64,
    pub dns_parse_errors: u64,
    /// DNS-over-TCP flows and fragmented datagrams reassembly gave up on
    /// (memory bounds, bytes the kernel did not copy).
    pub reassembly_given_up: u64,
    pub programs: Vec<ProgramStatus>,
}

impl Snapshot {
    pub fn of(shared: &Shared) -> Snapshot {
        let counters = shared.detector().counters().clone();
        let source = &shared.source;
        let stream = &shared.alert_stream;
        let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
        Snapshot {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: shared.started_at,
            dns_messages: counters.dns_messages,
            dns_responses_checked: counters.dns_responses_checked,
            connects: counters.connects,
            alerts: Rule::ALL
                .iter()
                .map(|rule| (*rule, counters.alerts.get(rule).copied().unwrap_or(0)))
                .collect(),
            alert_lines: load(&stream.lines),
            alerts_folded: load(&stream.folded),
            alert_write_errors: load(&stream.write_errors),
            events_lost: vec![
                (LossOrigin::KernelDnsPacket, load(&source.lost_dns_packets)),
                (LossOrigin::KernelConnect, load(&source.lost_connects)),
                (LossOrigin::KernelDbSegment, load(&source.lost_db_segments)),
                (LossOrigin::KernelDnsOwner, load(&source.lost_dns_owners)),
                (LossOrigin::Undecodable, load(&source.undecodable)),
            ],
            kernel_records: load(&source.records),
            dns_parse_errors: load(&source.dns_parse_errors),
            reassembly_given_up: load(&source.reassembly_flows_evicted)
                + load(&source.reassembly_fragments_evicted),
            programs: shared.programs(),
        }
    }

    /// The OpenMetrics text exposition, `# EOF` included.
    pub fn render(&self) -> String {
        render(self.clone())
    }
}

/// Encodes whatever `collector` reports as OpenMetrics text.
fn render(collector: impl Collector) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector));
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

/// Reads [`Shared`] on each scrape.
#[derive(Clone)]
pub struct SharedCollector(pub Arc<Shared>);

impl std::fmt::Debug for SharedCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedCollector")
    }
}

impl Collector for SharedCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        Snapshot::of(&self.0).encode(encoder)
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut counter = |name: &str, help: &str, value: u64| {
            let metric = ConstCounter::new(value);
            metric.encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)
        };
        counter(
            "pinwatch_dns_messages",
            "DNS messages seen (queries and responses, every network namespace).",
            self.dns_messages,
        )?;
        counter(
            "pinwatch_dns_responses_checked",
            "DNS responses for a configured hostname checked against its pinned set.",
            self.dns_responses_checked,
        )?;
        counter(
            "pinwatch_connects",
            "TCP connects to a watched port seen.",
            self.connects,
        )?;
        counter(
            "pinwatch_alert_lines",
            "Alert lines written to the sink, fold summaries included.",
            self.alert_lines,
        )?;
        counter(
            "pinwatch_alerts_folded",
            "Detections folded into a summary line by the dedup window instead of written on their own line.",
            self.alerts_folded,
        )?;
        counter(
            "pinwatch_alert_write_errors",
            "Alert lines the sink could not write (they went to the diagnostic log).",
            self.alert_write_errors,
        )?;
        counter(
            "pinwatch_kernel_records",
            "Records read from the kernel ring buffer.",
            self.kernel_records,
        )?;
        counter(
            "pinwatch_dns_parse_errors",
            "Packets on port 53 that did not parse as DNS.",
            self.dns_parse_errors,
        )?;
        counter(
            "pinwatch_dns_reassembly_given_up",
            "DNS-over-TCP flows and fragmented DNS datagrams dropped by reassembly (memory bounds, or bytes the kernel did not copy).",
            self.reassembly_given_up,
        )?;

        let mut family = encoder.encode_descriptor(
            "pinwatch_alerts",
            "Detections by rule; every one is counted, folded or not.",
            None,
            MetricType::Counter,
        )?;
        for (rule, count) in &self.alerts {
            ConstCounter::new(*count).encode(family.encode_family(&[("rule", rule.id())])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "pinwatch_events_lost",
            "Events lost before the detector saw them, by origin: the kernel's ring buffer was full, or a record did not decode.",
            None,
            MetricType::Counter,
        )?;
        for (origin, count) in &self.events_lost {
            let origin = origin_name(*origin);
            ConstCounter::new(*count).encode(family.encode_family(&[("origin", origin)])?)?;
        }

        let attached = self.programs.iter().filter(|p| p.attached).count();
        ConstGauge::new(i64::try_from(attached).unwrap_or(i64::MAX)).encode(
            encoder.encode_descriptor(
                "pinwatch_programs_attached",
                "eBPF programs attached.",
                None,
                MetricType::Gauge,
            )?,
        )?;
        let mut family = encoder.encode_descriptor(
            "pinwatch_program_attached",
            "Whether each eBPF program is attached (1) or not (0).",
            None,
            MetricType::Gauge,
        )?;
        for program in &self.programs {
            let labels = [("program", program.name), ("kind", program.kind)];
            ConstGauge::new(i64::from(program.attached)).encode(family.encode_family(&labels)?)?;
        }
        let started = self
            .started_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        ConstGauge::new(started.as_secs_f64()).encode(encoder.encode_descriptor(
            "pinwatch_start_time_seconds",
            "When the daemon started, in seconds since the Unix epoch.",
            None,
            MetricType::Gauge,
        )?)?;
        let info = Info::new([("version", self.version.as_str())]);
        info.encode(encoder.encode_descriptor(
            "pinwatch_build",
            "The running pinwatch version.",
            None,
            MetricType::Info,
        )?)
    }
}

fn origin_name(origin: LossOrigin) -> &'static str {
    match origin {
        LossOrigin::KernelDnsPacket => "kernel-dns-packet",
        LossOrigin::KernelConnect => "kernel-connect",
        LossOrigin::KernelDbSegment => "kernel-db-segment",
        LossOrigin::KernelDnsOwner => "kernel-dns-owner",
        LossOrigin::Undecodable => "undecodable",
    }
}

#[cfg(test)]
mod tests;
