//! The process heap, as the daemon's long life needs it.

/// Gives the heap pages freed so far back to the kernel. glibc keeps freed
/// heap memory for reuse: without this, a passing peak (the kernel's BTF,
/// megabytes of types parsed while loading the programs; a flood's batches)
/// stays in the daemon's resident set for its whole life. musl (the static
/// release build) has no malloc_trim: its allocator returns freed pages
/// itself.
#[cfg(target_env = "gnu")]
pub fn release_freed_memory() {
    // SAFETY: malloc_trim only returns free heap pages; it takes the
    // allocator's own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(target_env = "gnu"))]
pub fn release_freed_memory() {}
