//! pinwatch's kernel side: DNS packet capture on the cgroup v2 root
//! (cgroup_skb ingress/egress) and TCP connects to watched ports
//! (cgroup/connect4, cgroup/connect6). The DNS programs allow every packet;
//! the connect hooks refuse connects to enforced ports whose address is not
//! pinned (`mode = "block"`), and allow everything else.
#![no_std]
#![no_main]
// Inline assembly states length bounds the way older verifiers track them
// (see `dns::verifier_len`).
#![feature(asm_experimental_arch)]

mod clock;
mod connect;
mod db;
mod dns;
mod dns_owner;
mod maps;
mod sockaddr;
mod tc;

/// Reference program for the in-kernel cost benchmark: it does nothing, so
/// its run time is the fixed cost of running any cgroup_skb program.
#[aya_ebpf::macros::cgroup_skb]
pub fn pw_base_egress(_ctx: aya_ebpf::programs::SkBuffContext) -> i32 {
    1
}

#[aya_ebpf::macros::cgroup_skb]
pub fn pw_base_ingress(_ctx: aya_ebpf::programs::SkBuffContext) -> i32 {
    1
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// The kernel reads the license from this section to allow GPL-only helpers.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
