fn main() {
    let bytes = pinwatch::kernel::EBPF_OBJECT;
    println!("{}", bytes.len());
    let mut ebpf = aya::Ebpf::load(bytes).unwrap();
    for (name, p) in ebpf.programs_mut() { println!("{name}"); let _ = p; }
    use aya::programs::{CgroupSkb, CgroupSockAddr};
    for n in ["pw_dns_egress","pw_dns_ingress","pw_base_egress","pw_base_ingress"] {
        let p: &mut CgroupSkb = ebpf.program_mut(n).unwrap().try_into().unwrap();
        p.load().unwrap_or_else(|e| panic!("{n}: {e:?}"));
    }
    for n in ["pw_connect4","pw_connect6"] {
        let p: &mut CgroupSockAddr = ebpf.program_mut(n).unwrap().try_into().unwrap();
        p.load().unwrap_or_else(|e| panic!("{n}: {e:?}"));
    }
    println!("loaded");
}
