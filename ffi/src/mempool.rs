//! Pools of packet buffers.
use crate::eal::Eal;
use crate::error::DpdkError;
use crate::raw;
use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

/// A packet-buffer pool (`rte_pktmbuf_pool_create`). Thread-safe in DPDK.
/// Holds the EAL, so the EAL outlives it. Freed on drop only when every
/// buffer is back; with buffers still out it is leaked instead, so an mbuf
/// can never point into freed memory, whatever order safe code drops in.
pub struct Mempool {
    ptr: NonNull<raw::rte_mempool>,
    _eal: Arc<Eal>,
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
        eal: &Arc<Eal>,
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
            .map(|ptr| Mempool {
                ptr,
                _eal: Arc::clone(eal),
            })
            .ok_or_else(|| DpdkError::from_rte_errno("rte_pktmbuf_pool_create"))
    }

    pub fn as_ptr(&self) -> *mut raw::rte_mempool {
        self.ptr.as_ptr()
    }

    /// Buffers currently free in the pool (per-lcore caches included).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is valid while self lives.
        unsafe { raw::rte_mempool_avail_count(self.ptr.as_ptr()) }
    }

    /// Buffers currently out of the pool (held by ports' rings, bursts,
    /// anyone).
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool is valid while self lives.
        unsafe { raw::rte_mempool_in_use_count(self.ptr.as_ptr()) }
    }

    /// Allocates `n` (at most [`crate::BURST`]) buffers in one call into `out`.
    pub fn alloc_bulk(&self, out: &mut crate::mbuf::MbufBatch, n: usize) -> bool {
        out.alloc_bulk_from(self, n)
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        let out = self.in_use();
        if out != 0 {
            // Freeing now would leave those buffers pointing into freed
            // memory: keep the pool (and through it the EAL) for good.
            eprintln!("dpdk: mempool dropped with {out} buffers still in use: leaked");
            std::mem::forget(Arc::clone(&self._eal));
            return;
        }
        // SAFETY: no buffer of the pool is out any more (every port that
        // filled rings from it holds an Arc to it, so none is open), and
        // the EAL is alive (we hold it).
        unsafe { raw::rte_mempool_free(self.ptr.as_ptr()) };
    }
}
