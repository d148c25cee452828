use std::ffi::CStr;

/// A DPDK call that failed, with the call's name and DPDK's own reason.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{call} failed: {reason} (errno {errno})")]
pub struct DpdkError {
    pub call: &'static str,
    pub errno: i32,
    pub reason: String,
}

extern "C" {
    fn fsw_rte_errno() -> i32;
}

impl DpdkError {
    /// From a negative-errno return value (the ethdev convention).
    pub fn from_ret(call: &'static str, ret: i32) -> Self {
        Self::new(call, ret.abs())
    }

    /// From the calling thread's `rte_errno` (the EAL/mempool convention).
    pub fn from_rte_errno(call: &'static str) -> Self {
        // SAFETY: reads a thread-local integer; no preconditions.
        let errno = unsafe { fsw_rte_errno() };
        Self::new(call, errno)
    }

    pub fn new(call: &'static str, errno: i32) -> Self {
        // SAFETY: rte_strerror returns a pointer to a static or thread-local
        // NUL-terminated string for any errno value.
        let reason = unsafe { CStr::from_ptr(crate::raw::rte_strerror(errno)) }
            .to_string_lossy()
            .into_owned();
        DpdkError {
            call,
            errno,
            reason,
        }
    }
}

pub(crate) fn check(call: &'static str, ret: i32) -> Result<i32, DpdkError> {
    if ret < 0 {
        Err(DpdkError::from_ret(call, ret))
    } else {
        Ok(ret)
    }
}
