use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_current_uid_gid, bpf_ktime_get_ns,
    },
    macros::cgroup_sock_addr,
    programs::SockAddrContext,
};
use pinwatch_common::{ConnectEvent, EVENT_KIND_CONNECT, LOSS_CONNECT};

use crate::maps::{EVENTS, SUBMIT_FLAGS, WATCHED_PORTS, count_loss};

const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;
const IPPROTO_TCP: u32 = 6;
const ALLOW: i32 = 1;

#[cgroup_sock_addr(connect4)]
pub fn pw_connect4(ctx: SockAddrContext) -> i32 {
    report_connect(&ctx, AF_INET);
    ALLOW
}

#[cgroup_sock_addr(connect6)]
pub fn pw_connect6(ctx: SockAddrContext) -> i32 {
    report_connect(&ctx, AF_INET6);
    ALLOW
}

#[inline(always)]
fn report_connect(ctx: &SockAddrContext, family: u32) {
    let addr = ctx.sock_addr;
    // The hook sees the kernel's copy of the sockaddr, already moved out of
    // user memory: what we read is what the socket will connect to.
    let (protocol, user_port) = unsafe { ((*addr).protocol, (*addr).user_port) };
    if protocol != IPPROTO_TCP {
        return;
    }
    let port = u16::from_be(user_port as u16);
    if unsafe { WATCHED_PORTS.get(&port) }.is_none() {
        return;
    }
    let Some(mut entry) = EVENTS.reserve::<ConnectEvent>(0) else {
        count_loss(LOSS_CONNECT);
        return;
    };
    let event = entry.as_mut_ptr();
    let mut daddr = [0u8; 16];
    unsafe {
        if family == AF_INET {
            daddr[..4].copy_from_slice(&(*addr).user_ip4.to_ne_bytes());
        } else {
            let words = (*addr).user_ip6;
            daddr[0..4].copy_from_slice(&words[0].to_ne_bytes());
            daddr[4..8].copy_from_slice(&words[1].to_ne_bytes());
            daddr[8..12].copy_from_slice(&words[2].to_ne_bytes());
            daddr[12..16].copy_from_slice(&words[3].to_ne_bytes());
        }
        event.write(ConnectEvent {
            kind: EVENT_KIND_CONNECT,
            family,
            timestamp_ns: bpf_ktime_get_ns(),
            pid_tgid: bpf_get_current_pid_tgid(),
            uid_gid: bpf_get_current_uid_gid(),
            cgroup_id: bpf_get_current_cgroup_id(),
            daddr,
            dport: port,
            _pad: [0; 6],
            comm: bpf_get_current_comm().unwrap_or([0; 16]),
        });
    }
    entry.submit(SUBMIT_FLAGS);
}
