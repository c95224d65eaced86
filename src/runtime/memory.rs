//! Giving freed memory back to the system. glibc's malloc keeps what a burst freed (a batch of
//! large documents, a slow client's queue) in its arenas, so a process that once held a few
//! hundred MiB keeps that RSS for good. Measured on `serve` (debug build) with 600 logs of
//! 400 KiB and a stalled reader (`cargo test --test e2e limits::a_stalled -- --nocapture`), RSS
//! after the burst over a ~23 MiB baseline: glibc as is 341 MiB; mimalloc (defaults) 566 MiB
//! (peak 751); glibc with `M_MMAP_THRESHOLD` fixed at 128 KiB 37 MiB, but peak 544 MiB and the
//! run half again slower; glibc with `malloc_trim` once a pump goes idle 30 MiB (peak 219). So
//! the allocator stays glibc's, and the pumps call `release_free_memory` when a burst ends.

/// Returns free heap memory of every arena to the system (glibc's `malloc_trim`); elsewhere a
/// no-op.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
