//! OpenMetrics for `[metrics] listen`: the daemon's counters, rendered from
//! a [`Snapshot`] of [`Shared`] on every scrape (nothing is kept twice),
//! served at `/metrics` by [`serve`] beside the `/healthz` and `/readyz`
//! probes ([`health`]).
pub mod health;
mod serve;

pub use serve::{MetricsError, MetricsServer, bind, spawn};

use std::{sync::Arc, time::SystemTime};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge, info::Info},
    registry::Registry,
};

use crate::{
    event::LossOrigin,
    state::{Shared, Snapshot},
};

/// The `Content-Type` of an OpenMetrics text exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The OpenMetrics text exposition of `snapshot`, `# EOF` included.
pub fn render_snapshot(snapshot: &Snapshot) -> String {
    render(snapshot.clone())
}

/// Encodes whatever `collector` reports as OpenMetrics text.
pub(crate) fn render(collector: impl Collector) -> String {
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
        Snapshot::now(&self.0).encode(encoder)
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let c = &self.counters;
        let mut counter = |name: &str, help: &str, value: u64| {
            let metric = ConstCounter::new(value);
            metric.encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)
        };
        counter(
            "pinwatch_dns_messages",
            "DNS messages seen (queries and responses, every network namespace).",
            c.dns_messages,
        )?;
        counter(
            "pinwatch_dns_responses_checked",
            "DNS responses for a configured hostname checked against its pinned set.",
            c.dns_responses_checked,
        )?;
        counter(
            "pinwatch_connects",
            "TCP connects to a watched port seen.",
            c.connects,
        )?;
        counter(
            "pinwatch_detector_faults",
            "Events whose judging faulted: caught, skipped and raised as detector-fault; the detector went on.",
            c.detector_faults,
        )?;
        counter(
            "pinwatch_alert_lines",
            "Alert lines written to the sink, fold summaries included.",
            c.alert_lines,
        )?;
        counter(
            "pinwatch_alerts_folded",
            "Detections folded into a summary line by the dedup window instead of written on their own line.",
            c.alerts_folded,
        )?;
        counter(
            "pinwatch_alert_write_errors",
            "Alert lines the sink could not write (they went to the diagnostic log).",
            c.alert_write_errors,
        )?;
        counter(
            "pinwatch_alerts_without_process",
            "Alert lines of rules about a socket that named no process (its owner was not known).",
            c.alerts_without_process,
        )?;
        counter(
            "pinwatch_kernel_records",
            "Records read from the kernel ring buffer.",
            c.kernel_records,
        )?;
        counter(
            "pinwatch_dns_parse_errors",
            "Packets on port 53 that did not parse as DNS.",
            c.dns_parse_errors,
        )?;
        counter(
            "pinwatch_dns_reassembly_given_up",
            "DNS-over-TCP flows and fragmented DNS datagrams dropped by reassembly (memory bounds, or bytes the kernel did not copy).",
            c.reassembly_given_up,
        )?;

        let mut family = encoder.encode_descriptor(
            "pinwatch_alerts",
            "Detections by rule; every one is counted, folded or not.",
            None,
            MetricType::Counter,
        )?;
        for (rule, count) in &c.alerts {
            ConstCounter::new(*count).encode(family.encode_family(&[("rule", rule.id())])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "pinwatch_events_lost",
            "Events lost before the detector saw them, by origin: the kernel's ring buffer was full, or a record did not decode.",
            None,
            MetricType::Counter,
        )?;
        for (origin, count) in &c.lost_by_origin {
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
        let mut family = encoder.encode_descriptor(
            "pinwatch_program_interfaces",
            "Interfaces the interface hook watches (state=\"covered\") and those it should but cannot (state=\"failed\").",
            None,
            MetricType::Gauge,
        )?;
        for program in &self.programs {
            if let Some(coverage) = &program.interfaces {
                for (state, count) in [
                    ("covered", coverage.covered.len()),
                    ("failed", coverage.failed.len()),
                ] {
                    let labels = [("program", program.name), ("state", state)];
                    ConstGauge::new(i64::try_from(count).unwrap_or(i64::MAX))
                        .encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let mut family = encoder.encode_descriptor(
            "pinwatch_health_reasons",
            "Why the daemon is degraded, counted by cause: detections not in place (missing-detection, /healthz fails), kernel features pinwatch does without (kernel-limit), a recently failing alert sink (alert-sink); all 0 when healthy.",
            None,
            MetricType::Gauge,
        )?;
        let health = &self.health;
        for (cause, reasons) in [
            ("missing-detection", &health.missing),
            ("kernel-limit", &health.kernel_limits),
            ("alert-sink", &health.sink),
        ] {
            ConstGauge::new(i64::try_from(reasons.len()).unwrap_or(i64::MAX))
                .encode(family.encode_family(&[("cause", cause)])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "pinwatch_kernel_feature",
            "Whether the kernel has each feature the start-up probes look for (1) or pinwatch does without it (0); status says what replaces it.",
            None,
            MetricType::Gauge,
        )?;
        for feature in self.kernel.iter().flat_map(|k| &k.features) {
            let labels = [("feature", feature.name.as_str())];
            ConstGauge::new(i64::from(feature.available)).encode(family.encode_family(&labels)?)?;
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
