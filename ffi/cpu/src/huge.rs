//! Big tables on huge pages. A lookup in a table of many megabytes lands on
//! a random page: with 4 KiB pages nearly every one is a TLB miss, and under
//! virtualisation a two-level page walk, which costs more than the lookup.
//! [`HugeSlice`] allocates a table of 2 MiB or more on a 2 MiB boundary and
//! asks the kernel for transparent huge pages before the first touch.

use std::alloc::{self, Layout};
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

const HUGE_PAGE: usize = 2 << 20;

/// A fixed-size slice allocated on a huge-page boundary when it spans at
/// least one huge page, backed by transparent huge pages where the kernel
/// gives them. Reads as a plain `&[T]` (a pointer and a length: no offset
/// or extra bounds check on the hot path).
pub struct HugeSlice<T> {
    ptr: NonNull<T>,
    len: usize,
    layout: Layout,
    _owns: PhantomData<T>,
}

// SAFETY: HugeSlice owns its elements as a Box<[T]> would: sending it sends
// the Ts, sharing it shares &[T] only.
unsafe impl<T: Send> Send for HugeSlice<T> {}
// SAFETY: as above; `&HugeSlice<T>` gives out `&[T]` only.
unsafe impl<T: Sync> Sync for HugeSlice<T> {}

impl<T> HugeSlice<T> {
    /// `len` elements, element `i` made by `init(i)`.
    ///
    /// Panics only where `Vec` would: a size that overflows `isize`.
    pub fn new(len: usize, mut init: impl FnMut(usize) -> T) -> HugeSlice<T> {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .expect("HugeSlice: size overflows");
        let (ptr, layout) = if bytes == 0 {
            // Nothing to allocate (no elements, or zero-sized ones).
            (NonNull::dangling(), Layout::new::<()>())
        } else {
            let align = if bytes >= HUGE_PAGE {
                HUGE_PAGE
            } else {
                std::mem::align_of::<T>()
            }
            .max(std::mem::align_of::<T>());
            let layout = Layout::from_size_align(bytes, align).expect("HugeSlice: size overflows");
            // SAFETY: `layout` has a non-zero size (checked above).
            let raw = unsafe { alloc::alloc(layout) } as *mut T;
            let Some(ptr) = NonNull::new(raw) else {
                alloc::handle_alloc_error(layout)
            };
            // SAFETY: the allocation is `bytes` long and nothing reads it
            // yet: advising it only changes how the kernel backs it.
            crate::advise_huge_pages(unsafe {
                std::slice::from_raw_parts(raw as *const std::mem::MaybeUninit<u8>, bytes)
            });
            (ptr, layout)
        };
        let raw = ptr.as_ptr();
        let mut slice = HugeSlice {
            ptr,
            len: 0,
            layout,
            _owns: PhantomData,
        };
        for i in 0..len {
            // SAFETY: `i < len`: inside the allocation, aligned for T, not
            // yet initialised. `len` grows only after the write, so a panic
            // in `init` drops exactly the elements written.
            unsafe { raw.add(i).write(init(i)) };
            slice.len = i + 1;
        }
        slice
    }
}

impl<T> Deref for HugeSlice<T> {
    type Target = [T];

    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` is aligned and holds `len` initialised elements
        // that live as long as `self` (dangling only when they take no
        // bytes, which a slice allows).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> DerefMut for HugeSlice<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference
        // to the elements for its lifetime.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for HugeSlice<T> {
    fn drop(&mut self) {
        // SAFETY: the `len` elements are initialised and dropped once here.
        unsafe {
            std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(
                self.ptr.as_ptr(),
                self.len,
            ))
        };
        if self.layout.size() != 0 {
            // SAFETY: allocated in `new` with exactly this layout.
            unsafe { alloc::dealloc(self.ptr.as_ptr() as *mut u8, self.layout) };
        }
    }
}

impl<T> std::fmt::Debug for HugeSlice<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HugeSlice")
            .field("len", &self.len)
            .field("align", &self.layout.align())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn small_and_empty_slices_keep_their_elements() {
        let s = HugeSlice::new(100, |i| i as u32 * 3);
        assert_eq!(s.len(), 100);
        assert!(s.iter().enumerate().all(|(i, &v)| v == i as u32 * 3));
        assert!(HugeSlice::new(0, |_| 0u8).is_empty());
        assert_eq!(HugeSlice::new(3, |_| ()).len(), 3);
    }

    #[test]
    fn big_slices_start_on_a_huge_page_boundary() {
        let len = 3 * HUGE_PAGE / 192;
        let s = HugeSlice::new(len, |i| [i as u64; 24]);
        assert_eq!(s.len(), len);
        assert_eq!(s.as_ptr() as usize % HUGE_PAGE, 0);
        assert_eq!(s[len - 1][0], (len - 1) as u64);
    }

    #[test]
    fn every_element_is_dropped_once_even_when_init_panics() {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        struct Counted;
        impl Drop for Counted {
            fn drop(&mut self) {
                DROPS.fetch_add(1, Ordering::Relaxed);
            }
        }
        drop(HugeSlice::new(10, |_| Counted));
        assert_eq!(DROPS.load(Ordering::Relaxed), 10);
        let r = std::panic::catch_unwind(|| {
            HugeSlice::new(10, |i| {
                assert!(i < 4, "boom");
                Counted
            })
        });
        assert!(r.is_err());
        assert_eq!(DROPS.load(Ordering::Relaxed), 14, "the four made went");
    }
}
