//! The few bpf(2) commands aya 0.14 does not expose: querying what is
//! attached to a cgroup, reading a link's target, and detaching by id.
//! Offsets are those of `union bpf_attr` and the info structs in
//! include/uapi/linux/bpf.h, stable kernel ABI.
use std::{
    io,
    os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
};

const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;
const BPF_LINK_GET_NEXT_ID: libc::c_long = 31;
const BPF_LINK_DETACH: libc::c_long = 34;

pub const BPF_CGROUP_INET_INGRESS: u32 = 0;
pub const BPF_CGROUP_INET_EGRESS: u32 = 1;
pub const BPF_CGROUP_INET4_CONNECT: u32 = 10;
pub const BPF_CGROUP_INET6_CONNECT: u32 = 11;
pub const BPF_CGROUP_UDP4_SENDMSG: u32 = 14;
pub const BPF_CGROUP_UDP6_SENDMSG: u32 = 15;
const BPF_LINK_TYPE_CGROUP: u32 = 3;

/// `union bpf_attr`, zeroed beyond the fields a command uses (the kernel
/// refuses non-zero bytes it does not know).
#[repr(C, align(8))]
struct Attr([u8; 160]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 160])
    }
    fn put_u32(&mut self, offset: usize, value: u32) -> &mut Attr {
        self.0[offset..offset + 4].copy_from_slice(&value.to_ne_bytes());
        self
    }
    fn put_u64(&mut self, offset: usize, value: u64) -> &mut Attr {
        self.0[offset..offset + 8].copy_from_slice(&value.to_ne_bytes());
        self
    }
    fn u32_at(&self, offset: usize) -> u32 {
        u32::from_ne_bytes(self.0[offset..offset + 4].try_into().unwrap_or_default())
    }
}

fn sys_bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: attr is a valid, writable buffer of the size passed; every
    // pointer stored in it refers to a buffer the caller keeps alive.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr(),
            std::mem::size_of::<Attr>(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn fd_from(ret: libc::c_long) -> OwnedFd {
    // SAFETY: the command returned a new descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(ret as i32) }
}

/// Ids of the programs attached directly to `cgroup` for `attach_type`
/// (links and BPF_PROG_ATTACH alike; not those inherited from ancestors).
pub fn query_cgroup(cgroup: BorrowedFd<'_>, attach_type: u32) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    loop {
        let mut attr = Attr::new();
        attr.put_u32(0, cgroup.as_raw_fd() as u32)
            .put_u32(4, attach_type)
            .put_u64(16, ids.as_mut_ptr() as u64)
            .put_u32(24, ids.len() as u32);
        match sys_bpf(BPF_PROG_QUERY, &mut attr) {
            Ok(_) => {
                ids.truncate(attr.u32_at(24) as usize);
                return Ok(ids);
            }
            // More attached than room: prog_cnt says how many.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                ids = vec![0; attr.u32_at(24) as usize + 16];
            }
            Err(e) => return Err(e),
        }
    }
}

pub fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    sys_bpf(BPF_PROG_GET_FD_BY_ID, Attr::new().put_u32(0, id)).map(fd_from)
}

pub fn link_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    sys_bpf(BPF_LINK_GET_FD_BY_ID, Attr::new().put_u32(0, id)).map(fd_from)
}

fn info_by_fd(fd: BorrowedFd<'_>, info: &mut [u8]) -> io::Result<()> {
    let mut attr = Attr::new();
    attr.put_u32(0, fd.as_raw_fd() as u32)
        .put_u32(4, info.len() as u32)
        .put_u64(8, info.as_mut_ptr() as u64);
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).map(drop)
}

/// The program's name (`bpf_prog_info.name`, at most 15 bytes).
pub fn prog_name(fd: BorrowedFd<'_>) -> io::Result<String> {
    let mut info = [0u8; 256];
    info_by_fd(fd, &mut info)?;
    let name = &info[64..80];
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Ok(String::from_utf8_lossy(&name[..end]).into_owned())
}

/// A cgroup link: which program it runs, on which cgroup and hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupLink {
    pub id: u32,
    pub prog_id: u32,
    pub cgroup_id: u64,
    pub attach_type: u32,
}

/// Every cgroup link in the kernel. Links that go away while listing are
/// skipped.
pub fn cgroup_links() -> io::Result<Vec<CgroupLink>> {
    let mut links = Vec::new();
    let mut id = 0;
    loop {
        let mut attr = Attr::new();
        attr.put_u32(0, id);
        match sys_bpf(BPF_LINK_GET_NEXT_ID, &mut attr) {
            Ok(_) => id = attr.u32_at(4),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(links),
            Err(e) => return Err(e),
        }
        let fd = match link_fd_by_id(id) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        let mut info = [0u8; 64];
        info_by_fd(fd.as_fd(), &mut info)?;
        let word = |offset: usize| {
            u32::from_ne_bytes(info[offset..offset + 4].try_into().unwrap_or_default())
        };
        if word(0) == BPF_LINK_TYPE_CGROUP {
            links.push(CgroupLink {
                id,
                prog_id: word(8),
                cgroup_id: u64::from_ne_bytes(info[16..24].try_into().unwrap_or_default()),
                attach_type: word(24),
            });
        }
    }
}

/// Detaches a link from its hook; the link object lives on (defunct) while
/// a pin or descriptor holds it.
pub fn link_detach(link: BorrowedFd<'_>) -> io::Result<()> {
    sys_bpf(
        BPF_LINK_DETACH,
        Attr::new().put_u32(0, link.as_raw_fd() as u32),
    )
    .map(drop)
}

/// Detaches a program attached with BPF_PROG_ATTACH (no link).
pub fn prog_detach(
    cgroup: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
) -> io::Result<()> {
    let mut attr = Attr::new();
    attr.put_u32(0, cgroup.as_raw_fd() as u32)
        .put_u32(4, prog.as_raw_fd() as u32)
        .put_u32(8, attach_type);
    sys_bpf(BPF_PROG_DETACH, &mut attr).map(drop)
}

const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_TCX_INGRESS: u32 = 46;

/// Attaches a tc program to an interface's tcx ingress hook (kernel ≥ 6.6)
/// as a bpf_link, appended after the programs already there. The link lives
/// as long as the returned descriptor (or the interface).
pub fn tcx_ingress_link(program: BorrowedFd<'_>, ifindex: u32) -> io::Result<OwnedFd> {
    let mut attr = Attr::new();
    // link_create: prog_fd, target_ifindex, attach_type, flags; relative_fd
    // and expected_revision stay 0 (no ordering constraint).
    attr.put_u32(0, program.as_raw_fd() as u32)
        .put_u32(4, ifindex)
        .put_u32(8, BPF_TCX_INGRESS);
    sys_bpf(BPF_LINK_CREATE, &mut attr).map(fd_from)
}

const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_LINK_UPDATE: libc::c_long = 29;

/// Attaches a program to a cgroup hook as a bpf_link (kernel ≥ 5.7; the
/// kernel attaches cgroup links in multi mode, beside other programs).
pub fn cgroup_link(
    program: BorrowedFd<'_>,
    cgroup: BorrowedFd<'_>,
    attach_type: u32,
) -> io::Result<OwnedFd> {
    let mut attr = Attr::new();
    attr.put_u32(0, program.as_raw_fd() as u32)
        .put_u32(4, cgroup.as_raw_fd() as u32)
        .put_u32(8, attach_type);
    sys_bpf(BPF_LINK_CREATE, &mut attr).map(fd_from)
}

/// Replaces the program a link runs, in one step: the hook never runs
/// neither program.
pub fn link_update(link: BorrowedFd<'_>, program: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = Attr::new();
    attr.put_u32(0, link.as_raw_fd() as u32)
        .put_u32(4, program.as_raw_fd() as u32);
    sys_bpf(BPF_LINK_UPDATE, &mut attr).map(drop)
}

fn path_bytes(path: &std::path::Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt as _;
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Pins a bpf object (a link, here) at `path` in a bpffs.
pub fn obj_pin(fd: BorrowedFd<'_>, path: &std::path::Path) -> io::Result<()> {
    let path = path_bytes(path)?;
    let mut attr = Attr::new();
    attr.put_u64(0, path.as_ptr() as u64)
        .put_u32(8, fd.as_raw_fd() as u32);
    sys_bpf(BPF_OBJ_PIN, &mut attr).map(drop)
}

/// Opens the bpf object pinned at `path`.
pub fn obj_get(path: &std::path::Path) -> io::Result<OwnedFd> {
    let path = path_bytes(path)?;
    let mut attr = Attr::new();
    attr.put_u64(0, path.as_ptr() as u64);
    sys_bpf(BPF_OBJ_GET, &mut attr).map(fd_from)
}

/// The id of the program a link runs (`bpf_link_info.prog_id`).
pub fn link_prog_id(link: BorrowedFd<'_>) -> io::Result<u32> {
    let mut info = [0u8; 64];
    info_by_fd(link, &mut info)?;
    Ok(u32::from_ne_bytes(
        info[8..12].try_into().unwrap_or_default(),
    ))
}

/// The link's own id (`bpf_link_info.id`).
pub fn link_id(link: BorrowedFd<'_>) -> io::Result<u32> {
    let mut info = [0u8; 64];
    info_by_fd(link, &mut info)?;
    Ok(u32::from_ne_bytes(
        info[4..8].try_into().unwrap_or_default(),
    ))
}
