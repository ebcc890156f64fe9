//! What the fuzz targets share: an allocator that turns a huge allocation into a crash
//! libFuzzer reports (with the input that caused it), since without a sanitizer its
//! `-malloc_limit_mb` cannot see allocations. A single allocation over
//! `MAX_ALLOCATION`, or more than `MAX_LIVE` allocated at once, aborts the process.
//! Each target names `slipway_fuzz::GUARD` so that this crate is linked in.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

/// No input of a fuzz run (at most a few hundred kilobytes) needs a block this large.
pub const MAX_ALLOCATION: usize = 64 << 20;
/// Nor this much memory at once.
pub const MAX_LIVE: usize = 512 << 20;

pub struct Guard {
    live: AtomicUsize,
}

#[global_allocator]
pub static GUARD: Guard = Guard {
    live: AtomicUsize::new(0),
};

impl Guard {
    fn check(&self, size: usize) {
        let live = self.live.fetch_add(size, Ordering::Relaxed) + size;
        if size > MAX_ALLOCATION || live > MAX_LIVE {
            // No formatting here: it could allocate, inside the allocator.
            let _ = std::io::stderr().write_all(b"==slipway-fuzz== huge allocation: the input made the code ask for more than 64 MiB at once or 512 MiB in all\n");
            std::process::abort();
        }
    }
}

// SAFETY: every call is forwarded to `System` with the same arguments; the counter
// only observes sizes.
unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.check(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.check(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.live.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.live.fetch_sub(layout.size(), Ordering::Relaxed);
        self.check(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
