//! Two CPU instructions the fast path uses and Rust only offers as `unsafe`
//! intrinsics, behind safe functions: a cache-line prefetch (a hint that
//! never faults, whatever the address) and a read of the time-stamp counter.
//! On other architectures both are harmless stand-ins, so the crates above
//! build and test anywhere.

pub mod huge;
pub use huge::HugeSlice;

/// Asks the CPU to bring the cache line holding `value` towards L1, without
/// waiting for it. Never faults and never changes what a program computes.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    prefetch_ptr(value as *const T);
}

/// [`prefetch`] by address: the address need not be valid (a prefetch of an
/// unmapped address is dropped by the CPU, not reported).
#[inline(always)]
pub fn prefetch_ptr<T>(ptr: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint: it reads nothing into the program's
    // state and cannot fault, whatever `ptr` is; SSE is part of x86_64.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(ptr.cast())
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

/// The time-stamp counter (cycles at the TSC's constant rate); on other
/// architectures, nanoseconds of a monotonic clock.
#[inline(always)]
pub fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: RDTSC only reads a counter; every x86_64 CPU has it.
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        use std::sync::OnceLock;
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_nanos() as u64
    }
}

/// Asks the kernel to back the 2 MiB-aligned part of `region` with huge
/// pages when it is first touched (transparent huge pages in `madvise`
/// mode). Only a hint: it changes no content and fails quietly. Call it on
/// a fresh allocation before writing to it: a big table spread over 4 KiB
/// pages costs a TLB miss, and under virtualisation a two-level page walk,
/// on most random accesses.
pub fn advise_huge_pages<T>(region: &[T]) {
    const HUGE: usize = 2 << 20;
    let start = region.as_ptr() as usize;
    let end = start + std::mem::size_of_val(region);
    let (lo, hi) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
    if hi > lo {
        #[cfg(target_os = "linux")]
        // SAFETY: MADV_HUGEPAGE only changes how the kernel backs the
        // pages of [lo, hi), which lies inside `region`: no content, no
        // mapping and no permission changes; an error is harmless.
        unsafe {
            libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_any_address_and_tsc_moves() {
        let v = [7u8; 256];
        prefetch(&v);
        prefetch_ptr(std::ptr::null::<u8>());
        prefetch_ptr(usize::MAX as *const u64);
        let a = tsc();
        let mut x = 0u64;
        for i in 0..10_000u64 {
            x = x.wrapping_add(std::hint::black_box(i));
        }
        std::hint::black_box(x);
        assert!(tsc() > a);
    }
}
