//! Pools of packet buffers.
use crate::error::DpdkError;
use crate::raw;
use std::ffi::CString;
use std::ptr::NonNull;

/// A packet-buffer pool (`rte_pktmbuf_pool_create`). Thread-safe in DPDK;
/// freed on drop, which must happen after every mbuf from it was freed.
pub struct Mempool {
    ptr: NonNull<raw::rte_mempool>,
}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mempool").field("ptr", &self.ptr).finish()
    }
}

// SAFETY: DPDK mempools are multi-producer/multi-consumer safe; the pointer
// stays valid until Drop.
unsafe impl Send for Mempool {}
// SAFETY: as above: all operations on a shared mempool are thread-safe.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// `n` buffers of `data_room` bytes (plus headroom) with a per-lcore cache of `cache`.
    pub fn new_pktmbuf(
        name: &str,
        n: u32,
        cache: u32,
        data_room: u16,
        socket: i32,
    ) -> Result<Mempool, DpdkError> {
        let cname = CString::new(name)
            .map_err(|_| DpdkError::new("rte_pktmbuf_pool_create", libc::EINVAL))?;
        // SAFETY: the name is a valid C string; DPDK copies it.
        let ptr =
            unsafe { raw::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket) };
        NonNull::new(ptr)
            .map(|ptr| Mempool { ptr })
            .ok_or_else(|| DpdkError::from_rte_errno("rte_pktmbuf_pool_create"))
    }

    pub fn as_ptr(&self) -> *mut raw::rte_mempool {
        self.ptr.as_ptr()
    }

    /// Buffers currently free in the pool (excluding per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is valid while self lives.
        unsafe { raw::rte_mempool_avail_count(self.ptr.as_ptr()) }
    }

    /// Allocates `n` (at most [`crate::BURST`]) buffers in one call into `out`.
    pub fn alloc_bulk(&self, out: &mut crate::mbuf::MbufBatch, n: usize) -> bool {
        out.alloc_bulk_from(self, n)
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: owners drop pools last, after ports are closed and mbufs freed.
        unsafe { raw::rte_mempool_free(self.ptr.as_ptr()) };
    }
}
