//! cgroup/connect4 and cgroup/connect6: report TCP connects to watched ports
//! and, on enforced ports, refuse those whose address is pinned by none of
//! the port's databases.
use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_current_uid_gid, generated::bpf_get_socket_cookie,
    },
    macros::cgroup_sock_addr,
    maps::lpm_trie::Key,
    programs::SockAddrContext,
};
use pinwatch_common::{
    CONNECT_ACTION_ALLOWED, CONNECT_ACTION_BLOCKED, ConnectEvent, DAEMON_FLAG_KEEP_ENFORCING,
    DAEMON_FLAGS, DAEMON_HEARTBEAT_GRACE_NS, DAEMON_HEARTBEAT_NS, EVENT_KIND_CONNECT, LOSS_CONNECT,
    PIN_KEY_PORT_BITS, PORT_FLAG_ENFORCE, PinKeyV4, PinKeyV6,
};

use super::{
    clock,
    maps::{DAEMON, EVENTS, PINNED_V4, PINNED_V6, SUBMIT_FLAGS, WATCHED_PORTS, count_loss},
    sockaddr::{self, AF_INET, AF_INET6},
};

const IPPROTO_TCP: u32 = 6;
/// sock_addr programs answer 1 to let the call proceed, 0 to make it fail
/// with EPERM.
const ALLOW: i32 = 1;
const REFUSE: i32 = 0;

#[cgroup_sock_addr(connect4)]
pub fn pw_connect4(ctx: SockAddrContext) -> i32 {
    judge_connect(&ctx, AF_INET)
}

#[cgroup_sock_addr(connect6)]
pub fn pw_connect6(ctx: SockAddrContext) -> i32 {
    judge_connect(&ctx, AF_INET6)
}

#[inline(always)]
fn judge_connect(ctx: &SockAddrContext, family: u32) -> i32 {
    let addr = ctx.sock_addr;
    // The hook sees the kernel's copy of the sockaddr, already moved out of
    // user memory: what we read is what the socket will connect to.
    // SAFETY: the context pointer is valid for the program's run, and these
    // are fields the verifier lets sock_addr programs read.
    let (protocol, user_port) = unsafe { ((*addr).protocol, (*addr).user_port) };
    if protocol != IPPROTO_TCP {
        return ALLOW;
    }
    let port = u16::from_be(user_port as u16);
    // SAFETY: the value is copied out at once; the daemon only replaces
    // whole entries, so a concurrent update yields the old or new flags.
    let Some(policy) = (unsafe { WATCHED_PORTS.get(port) }) else {
        return ALLOW;
    };
    let enforce = policy.flags & PORT_FLAG_ENFORCE != 0;
    let daddr = sockaddr::destination(ctx, family);
    // Decided before reporting: a full ring buffer loses the record, never
    // the verdict.
    let action = if enforce && !pinned(family, port, &daddr) && daemon_enforces() {
        CONNECT_ACTION_BLOCKED
    } else {
        CONNECT_ACTION_ALLOWED
    };
    // SAFETY: the helper reads the socket behind the context.
    let socket_cookie = unsafe { bpf_get_socket_cookie(ctx.sock_addr.cast()) };
    report(family, port, daddr, action, socket_cookie);
    if action == CONNECT_ACTION_BLOCKED {
        REFUSE
    } else {
        ALLOW
    }
}

/// Whether refusing is in force: the programs outlive the daemon (pinned
/// in bpffs), and unless the operator chose to keep enforcing, they fail
/// open once its heartbeat is older than the grace period.
#[inline(always)]
fn daemon_enforces() -> bool {
    let flags = DAEMON.get(DAEMON_FLAGS).copied().unwrap_or(0);
    if flags & DAEMON_FLAG_KEEP_ENFORCING != 0 {
        return true;
    }
    let beat = DAEMON.get(DAEMON_HEARTBEAT_NS).copied().unwrap_or(0);
    clock::now_ns().saturating_sub(beat) <= DAEMON_HEARTBEAT_GRACE_NS
}

/// Whether some database on `port` pins `daddr`. An IPv4-mapped IPv6
/// destination (`::ffff:a.b.c.d`, a dual-stack socket reaching an IPv4
/// host) is looked up as the IPv4 address it stands for, as the detector
/// and the pinned sets treat it.
#[inline(always)]
fn pinned(family: u32, port: u16, daddr: &[u8; 16]) -> bool {
    let port = port.to_be_bytes();
    let mapped = family == AF_INET6
        && daddr[..10].iter().all(|&b| b == 0)
        && daddr[10] == 0xff
        && daddr[11] == 0xff;
    if family == AF_INET || mapped {
        let at = if mapped { 12 } else { 0 };
        let key = Key::new(
            PIN_KEY_PORT_BITS + 32,
            PinKeyV4 {
                port,
                addr: [daddr[at], daddr[at + 1], daddr[at + 2], daddr[at + 3]],
            },
        );
        PINNED_V4.get(&key).is_some()
    } else {
        let key = Key::new(PIN_KEY_PORT_BITS + 128, PinKeyV6 { port, addr: *daddr });
        PINNED_V6.get(&key).is_some()
    }
}

#[inline(always)]
fn report(family: u32, port: u16, daddr: [u8; 16], action: u32, socket_cookie: u64) {
    let Some(mut entry) = EVENTS.reserve::<ConnectEvent>(0) else {
        count_loss(LOSS_CONNECT);
        return;
    };
    let event = entry.as_mut_ptr();
    // SAFETY: `event` points at the reserved record, sized for a
    // ConnectEvent; the helpers read only the current task.
    unsafe {
        event.write(ConnectEvent {
            kind: EVENT_KIND_CONNECT,
            family,
            timestamp_ns: clock::now_ns(),
            pid_tgid: bpf_get_current_pid_tgid(),
            uid_gid: bpf_get_current_uid_gid(),
            cgroup_id: bpf_get_current_cgroup_id(),
            daddr,
            dport: port,
            _pad: [0; 2],
            action,
            comm: bpf_get_current_comm().unwrap_or([0; 16]),
            socket_cookie,
        });
    }
    entry.submit(SUBMIT_FLAGS);
}
