// The programs live in the `pinwatch` binary target (src/main.rs), which
// aya-build compiles for the BPF target. This empty library lets the
// userspace crate name pinwatch-ebpf as a build-dependency, so cargo rebuilds
// the object when its sources change.
#![no_std]
