//! pinwatch's kernel side: DNS packet capture on the cgroup v2 root
//! (cgroup_skb ingress/egress) and TCP connects to watched ports
//! (cgroup/connect4, cgroup/connect6). The DNS programs allow every packet;
//! the connect hooks refuse connects to enforced ports whose address is not
//! pinned (`mode = "block"`), and allow everything else.
//!
//! Built for `bpfel-unknown-none` only (aya-build, and the eBPF lint in
//! `cargo xtask test`); on the host the crate is an empty binary, so that
//! `cargo clippy --workspace` and `cargo check --workspace` work without the
//! eBPF toolchain.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// Inline assembly states length bounds the way older verifiers track them
// (see `dns::verifier_len`).
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

#[cfg(target_arch = "bpf")]
mod programs;

#[cfg(not(target_arch = "bpf"))]
fn main() {}
