//! Big tables on huge pages. A lookup in a table of many megabytes lands on
//! a random page: with 4 KiB pages nearly every one is a TLB miss, and under
//! virtualisation a two-level page walk, which costs more than the lookup.
//! [`HugeSlice`] starts the table on a 2 MiB boundary and asks the kernel
//! for transparent huge pages before the first touch.

use std::ops::Deref;

const HUGE_PAGE: usize = 2 << 20;

/// A fixed-size slice whose elements start on a huge-page boundary when it
/// spans at least one huge page (a few unused elements in front pay for
/// the alignment), backed by transparent huge pages where the kernel gives
/// them. Derefs to the slice proper.
pub struct HugeSlice<T> {
    /// `base` unused elements, then the slice proper. A `Vec`, not a boxed
    /// slice: boxing would shrink the allocation to its length, and a
    /// reallocation may move it off the boundary.
    all: Vec<T>,
    base: usize,
}

impl<T> HugeSlice<T> {
    /// `len` elements, element `i` made by `init(i)` (the unused ones in
    /// front by `init(0)`).
    pub fn new(len: usize, mut init: impl FnMut(usize) -> T) -> HugeSlice<T> {
        let size = std::mem::size_of::<T>().max(1);
        let spans_huge_page = len.saturating_mul(size) >= HUGE_PAGE;
        let slack = if spans_huge_page {
            HUGE_PAGE.div_ceil(size)
        } else {
            0
        };
        let mut all: Vec<T> = Vec::with_capacity(len + slack);
        let misalign = all.as_ptr() as usize % HUGE_PAGE;
        let base = if slack == 0 || misalign == 0 {
            0
        } else {
            (HUGE_PAGE - misalign).div_ceil(size)
        };
        if let Some(table) = all.spare_capacity_mut().get(base..base + len) {
            cpu::advise_huge_pages(table);
        }
        all.extend((0..base).map(|_| init(0)));
        all.extend((0..len).map(init));
        HugeSlice { all, base }
    }

    /// The unused elements in front of the slice proper.
    pub fn base(&self) -> usize {
        self.base
    }

    /// Every element, the unused ones in front included: index `base() + i`
    /// is element `i` (for tables that keep indexes with the base added).
    pub fn with_base(&self) -> &[T] {
        &self.all
    }
}

impl<T> Deref for HugeSlice<T> {
    type Target = [T];

    #[inline(always)]
    fn deref(&self) -> &[T] {
        // `base <= all.len()` always: the slice never panics.
        self.all.get(self.base..).unwrap_or(&[])
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for HugeSlice<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HugeSlice")
            .field("len", &self.len())
            .field("base", &self.base)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_slices_have_no_base_and_keep_their_elements() {
        let s = HugeSlice::new(100, |i| i as u32 * 3);
        assert_eq!(s.base(), 0);
        assert_eq!(s.len(), 100);
        assert!(s.iter().enumerate().all(|(i, &v)| v == i as u32 * 3));
        assert!(HugeSlice::new(0, |_| 0u8).is_empty());
    }

    #[test]
    fn big_slices_start_on_a_huge_page_boundary() {
        // 192 bytes, 8-aligned (a connection slot): the allocation may sit
        // between two multiples of it, so the start lands within one
        // element of the boundary.
        let len = 3 * HUGE_PAGE / 192;
        let s = HugeSlice::new(len, |i| [i as u64; 24]);
        assert_eq!(s.len(), len);
        assert!(s.as_ptr() as usize % HUGE_PAGE < 192);
        assert_eq!(s[len - 1][0], (len - 1) as u64);
        assert_eq!(s.with_base()[s.base() + 5][0], 5);
        // A cache line (an index bucket): exactly on the boundary.
        #[repr(align(64))]
        struct Line([u8; 64]);
        let s = HugeSlice::new(2 * HUGE_PAGE / 64, |i| Line([i as u8; 64]));
        assert_eq!(s.as_ptr() as usize % HUGE_PAGE, 0);
        assert_eq!(s[3].0[0], 3);
    }
}
