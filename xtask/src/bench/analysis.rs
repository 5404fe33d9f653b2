//! Where the time goes where a goal is missed, from the profiles taken when
//! these figures were first written; kept beside the figures so a missed
//! goal is never left unexplained. Re-profile after changing the pipeline.

/// B2, B4 and B7 share one cause: the userspace cost per DNS message.
pub const USERSPACE: &str = r#"
#### Where the time goes in userspace (B2, B4, B7)

Profiled 2026-12-02 with `perf record -F 999 -g -p PID` on the daemon during
dnsperf at saturation through dnsmasq (B2's load, 1,000 unwatched names;
timer sampling, so shares are approximate), after responses leaving a local
server were read to their header only. By self time: `memmove` ~11%
(records out of the ring buffer into owned packets, events moved between
stages), SipHash ~10% (the matching table, the stub-path index and the
recent-answer table are keyed by addresses and names that remote senders
choose, so they keep a keyed hash against collision floods), the stub path
~10% (`StubPaths::delivered` and `sent`: dnsmasq answers from this host, so
every delivered response is a possible relay), `malloc` and `free` ~9%,
hickory-proto's parse of the question and records ~6%, etherparse's IP/UDP
slicing ~2%, the detector's name checks ~3% (`plain_hostname`,
`cname_chain`), scheduling and wakeups ~6%.

Done in this round: responses leaving a local server are copied by the
kernel to the end of their DNS header and read to it (before: copied whole
and parsed whole, records included, though only their id and addresses were
used); queries are read to their questions (the detector never looks at a
query's records); the stub path is looked up only for a response that raises
an alert; a one-record answer's fingerprint (kept for
`dns-conflicting-responses`) is written without a vector per record; DNS
packet records are decoded from the ring buffer's memory in place instead of
being copied into an owned packet first.

Done since (2026-12-02, second round): a response leaving a local server
reaches the daemon as a 56-byte sent record (addresses, ports, id, time) that
goes straight to the stub path, with nothing to parse. Three runs of this
part on the same machine that day kept zero loss up to 500,000, 250,000 and
300,000 events/s: the machine (a VM on a shared host) moves the limit by
that much from run to run, so compare figures of one run only.

Profile of the criterion *pipeline* for the A case (`perf record -g` on the
bench binary, `--profile-time 5`), by self time: name handling ~30%
(`plain_hostname` ~11%, hickory's `LabelIter` ~8%, `same_name` ~5%, the
escaping text form ~6%), `memmove` ~9%, `malloc` and `free` ~11%, SipHash
~4%. The question's name is turned into hostname text and looked up in the
watched set once per rule that asks (the matching rules, the answer check,
the injected-record check, the fragment check), five to six times a message.

What is left to try, in order of expected gain: the kernel-side match of the
common delivered answer (see B1), which is what the ≤ 500 ns per event and
≥ 0.97 goals need; the watched-name lookup made once per message and handed
to every rule; hand the detector messages borrowed from the ring instead of
owned events moved between threads. On this 2-core machine the daemon competes with the traffic itself
(B2: dnsperf and dnsmasq take both cores at saturation), which is why the DNS
throughput tax follows from the same per-event cost.
"#;

/// B3: why the connect tax is missed, and what is left.
pub const CONNECT: &str = r#"
#### Where the time goes on a connect (B3)

A connect() + close() on loopback takes about 26–45 µs on the machines this
ran on and moves by ±1.5–5 µs from run to run, so the timed difference is an
upper bound at best. The floor column (only the trivial packet programs
attached) says how far: on 2026-12-02 it came out 1.4–1.7 µs *faster* than
no program at all, in two runs, so this timing cannot resolve the 1 µs goal.
The programs' own costs (the table above, with the statistics' clock reads
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
