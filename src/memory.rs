//! Handing freed memory back to the system after a burst of writes. glibc's
//! allocator keeps freed small blocks in its per-thread arenas, so a burst of
//! large batches would leave the process at its peak size; `malloc_trim`
//! returns whole free pages. Elsewhere (musl, macOS) this does nothing.

use std::time::Duration;

/// Every `every`, when `burst_ended` says a burst of writes (or of
/// unauthenticated webhook bodies) came since the last look and none is held
/// now, returns freed memory to the system. Runs until the runtime stops. The
/// caller says what a burst is, so this module needs nothing of the HTTP edge.
pub async fn trim_after_bursts(mut burst_ended: impl FnMut() -> bool, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        if burst_ended() {
            let _ = tokio::task::spawn_blocking(release_freed).await;
        }
    }
}

/// Fixes glibc's allocator settings before any thread starts: blocks of 128 KiB
/// and more are always mapped on their own and unmapped when freed (glibc
/// otherwise raises that threshold after the first free, so a scrape's
/// short-lived vector over every product stays in the heap for good), and at
/// most two arenas per core (worker threads each got their own, each keeping
/// its own free memory).
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets the allocator's parameters; called once from
    // `main` before other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2 * num_cores());
    }
}

/// Cores available to this process (1 when unknown).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn num_cores() -> i32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as i32)
}

/// Returns free pages of the allocator's arenas to the system.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes
    // the arena locks itself and may be called from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}
