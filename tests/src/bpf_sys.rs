//! bpf(2) for what aya does not offer a test: querying a cgroup's
//! programs with the test's own view, and attaching a program found by id
//! the way an older pinwatch or a person with bpftool would.
use std::{
    ffi::CString,
    os::{
        fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::Path,
};

const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_LINK_CREATE: libc::c_long = 28;
pub const INET_INGRESS: u32 = 0;
pub const INET4_CONNECT: u32 = 10;
const BPF_F_ALLOW_MULTI: u32 = 2;

#[repr(C, align(8))]
struct Attr([u8; 160]);

fn call(cmd: libc::c_long, fields: &[(usize, u64, usize)]) -> std::io::Result<i64> {
    call_with(cmd, fields, &mut Attr([0; 160]))
}

/// As [`call`], leaving what the kernel wrote back in `attr`.
fn call_with(
    cmd: libc::c_long,
    fields: &[(usize, u64, usize)],
    attr: &mut Attr,
) -> std::io::Result<i64> {
    for &(offset, value, size) in fields {
        attr.0[offset..offset + size].copy_from_slice(&value.to_ne_bytes()[..size]);
    }
    // SAFETY: attr is a valid buffer of the size passed; pointers in it
    // refer to buffers the caller keeps alive across the call.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.0.as_mut_ptr(), 160usize) };
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn owned(ret: i64) -> OwnedFd {
    // SAFETY: the command returned a new descriptor nothing else owns.
    unsafe { OwnedFd::from_raw_fd(ret as i32) }
}

pub fn prog_fd(id: u32) -> std::io::Result<OwnedFd> {
    call(BPF_PROG_GET_FD_BY_ID, &[(0, u64::from(id), 4)]).map(owned)
}

/// A cgroup link, as pinwatch makes them.
pub fn link_create(prog: BorrowedFd, cgroup: BorrowedFd, attach_type: u32) -> OwnedFd {
    let fields = [
        (0, prog.as_raw_fd() as u64, 4),
        (4, cgroup.as_raw_fd() as u64, 4),
        (8, u64::from(attach_type), 4),
    ];
    owned(call(BPF_LINK_CREATE, &fields).expect("bpf_link_create"))
}

pub fn pin(fd: BorrowedFd, path: &Path) {
    let path = CString::new(path.as_os_str().as_bytes()).unwrap();
    let fields = [(0, path.as_ptr() as u64, 8), (8, fd.as_raw_fd() as u64, 4)];
    call(BPF_OBJ_PIN, &fields).expect("bpf_obj_pin");
}

/// BPF_PROG_ATTACH: the cgroup itself holds the program from now on.
pub fn prog_attach(prog: BorrowedFd, cgroup: BorrowedFd, attach_type: u32) {
    let fields = [
        (0, cgroup.as_raw_fd() as u64, 4),
        (4, prog.as_raw_fd() as u64, 4),
        (8, u64::from(attach_type), 4),
        (12, u64::from(BPF_F_ALLOW_MULTI), 4),
    ];
    call(BPF_PROG_ATTACH, &fields).expect("bpf_prog_attach");
}

pub fn prog_detach(prog: BorrowedFd, cgroup: BorrowedFd, attach_type: u32) -> std::io::Result<()> {
    let fields = [
        (0, cgroup.as_raw_fd() as u64, 4),
        (4, prog.as_raw_fd() as u64, 4),
        (8, u64::from(attach_type), 4),
    ];
    call(BPF_PROG_DETACH, &fields).map(drop)
}

/// BPF_PROG_QUERY: the ids of the programs attached to `cgroup` itself
/// (not inherited) at `attach_type`.
pub fn prog_query(cgroup: BorrowedFd, attach_type: u32) -> Vec<u32> {
    let mut ids = [0u32; 64];
    let mut attr = Attr([0; 160]);
    let fields = [
        (0, cgroup.as_raw_fd() as u64, 4),
        (4, u64::from(attach_type), 4),
        (16, ids.as_mut_ptr() as u64, 8),
        (24, ids.len() as u64, 4),
    ];
    call_with(BPF_PROG_QUERY, &fields, &mut attr)
        .unwrap_or_else(|e| panic!("BPF_PROG_QUERY of attach type {attach_type}: {e}"));
    let mut count = [0u8; 4];
    count.copy_from_slice(&attr.0[24..28]);
    let count = (u32::from_ne_bytes(count) as usize).min(ids.len());
    ids[..count].to_vec()
}
