//! Where the time goes where a goal is missed, from the profiles taken when
//! these figures were first written; kept beside the figures so a missed
//! goal is never left unexplained. Re-profile after changing the pipeline.

/// B2, B4 and B7 share one cause: the userspace cost per DNS message.
pub const USERSPACE: &str = r#"
#### Where the time goes in userspace (B2, B4, B7)

Profiled 2026-11-27 with `perf record -F 1999 --call-graph dwarf -p PID`
on the daemon during the 200,000 events/s step of the exchange flood above
(this VM has no hardware counters; timer sampling, so shares are
approximate). By self time, no single place dominates any more: copying
(`memmove` ~10%: records out of the ring buffer, events moved between
stages), SipHash (~9%: the matching table and the stub-path index are keyed
by socket addresses that remote senders choose, so they keep a keyed hash
against collision floods), hickory-proto's message parse (~15%), `malloc` and
`free` (~12%), etherparse's IP/UDP slicing (~4%), the detector's own name
checks (~8%: `plain_hostname`, `hash_name`, `same_name`).

What changed since the first profile (then 11 µs per event, 297,000 events/s
at most): the detector compares and looks up DNS names without making strings
(`detector/names.rs`), holds question names in a compact form, clones the
process only onto alerts, and finds the stub path by hash lookups; before, the
stub-path correlation walked its 1,024 most recent answers for every response
a local server sent, which was three quarters of the daemon's time under this
flood.

What is left to try, in order of expected gain: parse only the header and
question of responses leaving a local server (the detector uses only their id
and addresses); pass records by reference from the ring buffer to the
detector instead of copying them into owned packets and events; a cheaper
keyed hash (foldhash) for the tables. On this 2-core machine the daemon
competes with the traffic itself (B2: dnsperf and dnsmasq take both cores at
saturation), which is why the DNS throughput tax follows from the same
per-event cost.
"#;

/// B3: why the connect tax is missed, and what is left.
pub const CONNECT: &str = r#"
#### Where the time goes on a connect (B3)

A connect() + close() on loopback takes about 26–29 µs here and moves by
±1.5 µs from run to run, so the timed difference is an upper bound at best;
the programs' own costs (the table above, with the statistics' clock reads
included) say more. An unwatched connect passes `pw_connect4` (a port lookup,
then out) and `pw_dns_connect4` (a protocol and port check), and its four
packets (SYN, SYN-ACK, ACK, RST), each seen at egress and at ingress, pass
`pw_dns_egress` and `pw_dns_ingress`: eight packet-program runs. B1 puts the
kernel's fixed cost of running any cgroup_skb program at about 55–60 ns with
the statistics on, so the packet hooks alone cost several hundred nanoseconds
per connect whatever the programs do: the ≤ 100 ns goal for an unwatched
port cannot be met while DNS is captured by cgroup_skb programs on the cgroup
root, which see every packet of the host. A watched connect adds the record:
`pw_connect4` averages about 500 ns over the watched and unwatched connects
of the run, so about 0.9 µs on a watched one — the ring buffer reservation,
the process helpers, and waking the reader, which is idle between connects
(switching the record to no wake-up, as an experiment, took about 140 ns off
the average; it was not kept, because an alert must not wait for the next
busy moment). The connect and owner records take the coarse clock, as DNS
packets do.
"#;
