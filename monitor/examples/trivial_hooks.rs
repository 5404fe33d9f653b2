//! Holds the trivial cgroup_skb programs (`return 1`) on the egress and
//! ingress hooks of the cgroup v2 root until standard input closes. Run by
//! `cargo xtask bench` (root) as the floor of B2 and B3: what any design
//! that sees the host's packets on these hooks costs before it does
//! anything.
use std::{fs::File, io::Read};

use anyhow::Context;
use aya::{
    Ebpf,
    programs::{CgroupAttachMode, CgroupSkb, CgroupSkbAttachType},
};
use pinwatch::kernel::{EBPF_OBJECT, find_cgroup2_root};

fn main() -> anyhow::Result<()> {
    let root = find_cgroup2_root()?;
    let cgroup = File::open(&root).with_context(|| format!("open {}", root.display()))?;
    let mut object = Ebpf::load(EBPF_OBJECT)?;
    for (name, attach_type) in [
        ("pw_base_egress", CgroupSkbAttachType::Egress),
        ("pw_base_ingress", CgroupSkbAttachType::Ingress),
    ] {
        let program: &mut CgroupSkb = object.program_mut(name).context(name)?.try_into()?;
        program.load().with_context(|| format!("load {name}"))?;
        program
            .attach(&cgroup, attach_type, CgroupAttachMode::Single)
            .with_context(|| format!("attach {name} to {}", root.display()))?;
    }
    println!("attached");
    // The links detach when `object` drops: on EOF, or when the bench
    // kills this process (the kernel drops them with its descriptors).
    let mut sink = Vec::new();
    std::io::stdin().read_to_end(&mut sink)?;
    Ok(())
}
