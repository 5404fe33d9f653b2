//! Where the time goes where a goal is missed, from the profiles taken when
//! these figures were first written; kept beside the figures so a missed
//! goal is never left unexplained. Re-profile after changing the pipeline.

/// B2, B4 and B7 share one cause: the userspace cost per DNS message.
pub const USERSPACE: &str = r#"
#### Where the time goes in userspace (B2, B4, B7)

Profiled 2026-11-27 with `perf record -e cpu-clock -g target/release/pinwatch
replay CAPTURE -c CONFIG` on a capture like B7's (this VM has no hardware
counters; timer sampling, so shares are approximate). The same decode and
detector run in the daemon, so this is also the daemon's per-event cost. By
self time: hickory-proto's message parse (`Message::read`, `Name::read`,
`Label::from_raw_bytes`, `read_records`: ~20%); turning names and addresses
into strings (`Label::fmt`, `escape_non_ascii`, `String::write_char`,
`Ipv4Addr`/`SocketAddrV4` `Display`, `Name::to_ascii`: ~20%, from the
detector keying its tables — query matching in `detector/matching`,
`RecentAnswers::remember` — by formatted strings); copying (`memmove`, ~10%:
whole packets and records copied between stages); `malloc`/`free` (~10%).
The criterion table above says the same per message: the pipeline costs
4–9× hickory's parse alone, so detect, not decode, is most of it.

What would meet the goals, in order of expected gain: key the detector's
tables by the wire-form name (lower-cased bytes) and by `SocketAddr` values
instead of formatted strings; skip `Detector::observe` work for names no
database watches and no outstanding query needs (one hash lookup on the
question name); parse only header and question with hickory for such
messages; pass records by reference from the ring buffer to the detector
instead of copying them. In the daemon the decode and the detector run on
two threads of a 2-core machine, so at 200,000 events/s they compete with
the traffic itself (B2: dnsperf and dnsmasq), which is why the DNS
throughput tax and the loss in B2 follow from the same per-event cost.
"#;
