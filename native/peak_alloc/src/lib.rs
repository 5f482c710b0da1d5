//! A global allocator that wraps the system's and counts, per thread, the
//! bytes a closure has live at its peak: the property tests use it to
//! check that a parser allocates no more than its stated bound on any
//! input. Never in a shipped binary: only test targets declare it
//! (`#[global_allocator] static A: PeakAlloc = PeakAlloc;`).
//!
//! Per thread, because the test harness runs tests on several threads at
//! once: a process-wide count would include the neighbours' allocations.
//! Only allocations made while [`measure`] runs on this thread count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

pub struct PeakAlloc;

thread_local! {
    // `const` and `Copy` contents: no lazy initialisation and no destructor
    // to register, so the allocator can touch them without allocating.
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn count(delta: i64) {
    // `try_with`: a thread being torn down has no TLS left; its frees are
    // never measured anyway.
    let _ = MEASURING.try_with(|m| {
        if m.get() {
            let live = LIVE.get() + delta;
            LIVE.set(live);
            PEAK.set(PEAK.get().max(live));
        }
    });
}

fn size(layout: Layout) -> i64 {
    i64::try_from(layout.size()).unwrap_or(i64::MAX)
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the bookkeeping around it only touches
// const-initialised thread-locals and never allocates.
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(size(layout));
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(size(layout));
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-size(layout));
        // SAFETY: `ptr` came from `System` with this `layout` (we forward all).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as the worst moment of a moving realloc: old and new
        // blocks both live, then the old one freed.
        count(i64::try_from(new_size).unwrap_or(i64::MAX));
        count(-size(layout));
        // SAFETY: as for `dealloc`, and `new_size` is the caller's to vouch for.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Stops counting when dropped, also when the measured closure panics
/// (a failing property), so later allocations on the thread are not counted.
struct Measuring;

impl Drop for Measuring {
    fn drop(&mut self) {
        MEASURING.set(false);
    }
}

/// Runs `f` and returns its result with the most bytes it had allocated
/// and not yet freed at any moment (its result's own allocations count).
/// Bytes freed that were allocated before `f` started lower the count
/// below zero, so the peak is never overstated by them, only possibly
/// understated by as much; the parsers measured here free nothing of
/// their caller's. Panics if `PeakAlloc` is not the global allocator,
/// so that a bound can never pass by counting nothing.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LIVE.set(0);
    PEAK.set(0);
    let guard = Measuring;
    MEASURING.set(true);
    drop(std::hint::black_box(Box::new(0u64)));
    assert!(
        PEAK.get() >= 8,
        "muontrap_peak_alloc::PeakAlloc is not the #[global_allocator] of this test binary"
    );
    LIVE.set(0);
    PEAK.set(0);
    let r = f();
    drop(guard);
    (r, usize::try_from(PEAK.get()).unwrap_or(0))
}
