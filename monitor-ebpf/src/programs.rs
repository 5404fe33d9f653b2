//! The programs, their maps and helpers, and what the kernel needs of the
//! object besides them (panic handler, licence).
mod capture;
mod clock;
mod connect;
mod db;
mod dns;
mod dns_owner;
mod maps;
mod packet;
mod sent;
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

/// Reference program for B1: records every packet as a DNS packet record
/// (reservation, copy, the helpers every record carries, submit) and judges
/// nothing. Its run time is the floor of any design that hands a packet's
/// bytes to userspace.
#[aya_ebpf::macros::cgroup_skb]
pub fn pw_rec_egress(ctx: aya_ebpf::programs::SkBuffContext) -> i32 {
    capture::capture(ctx.skb.skb, pinwatch_common::DNS_FLAG_EGRESS);
    1
}

#[aya_ebpf::macros::cgroup_skb]
pub fn pw_rec_ingress(ctx: aya_ebpf::programs::SkBuffContext) -> i32 {
    capture::capture(ctx.skb.skb, 0);
    1
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// The kernel reads the license from this section to allow GPL-only helpers.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
