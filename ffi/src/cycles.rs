//! The time-stamp counter, read once per burst to account worker cycles.

/// Current TSC value.
#[inline(always)]
pub fn tsc() -> u64 {
    cpu::tsc()
}

/// TSC ticks per second as the EAL measured it (valid after EAL init).
pub fn tsc_hz() -> u64 {
    // SAFETY: plain getter of a value set at EAL init.
    unsafe { crate::raw::rte_get_tsc_hz() }
}

/// Pulls the cache line at `ptr` towards L1; never faults.
#[inline(always)]
pub fn prefetch<T>(ptr: *const T) {
    cpu::prefetch_ptr(ptr)
}
