//! The Environment Abstraction Layer: initialised once per process.
use crate::error::DpdkError;
use crate::raw;
use std::ffi::CString;
use std::os::raw::c_char;
use std::sync::atomic::{AtomicBool, Ordering};

static INITIALISED: AtomicBool = AtomicBool::new(false);

/// Proof that the EAL is up; `rte_eal_cleanup` runs when it is dropped.
/// Shared as `Arc<Eal>`: whatever needs the EAL (pools, registered threads)
/// holds a clone, so cleanup runs after the last of them is gone.
pub struct Eal {
    /// `/var/run/dpdk/<file-prefix>`: removed on drop when DPDK left it empty.
    runtime_dir: Option<std::path::PathBuf>,
}

impl Eal {
    /// `rte_eal_init` with `args` (without the program name). DPDK allows one
    /// initialisation per process: a second call returns an error.
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal, DpdkError> {
        if INITIALISED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError {
                call: "rte_eal_init",
                errno: libc::EALREADY,
                reason: "the EAL is already initialised in this process".into(),
            });
        }
        let mut owned: Vec<CString> = vec![CString::new("ferroswitch").unwrap()];
        for a in args {
            owned.push(CString::new(a.as_ref()).map_err(|_| DpdkError {
                call: "rte_eal_init",
                errno: libc::EINVAL,
                reason: format!("EAL argument {:?} contains a NUL byte", a.as_ref()),
            })?);
        }
        // rte_eal_init may permute argv; keep the strings alive for the
        // process lifetime since DPDK may keep pointers into them.
        let owned: &'static [CString] = Box::leak(owned.into_boxed_slice());
        let mut argv: Vec<*mut c_char> = owned.iter().map(|c| c.as_ptr() as *mut c_char).collect();
        let argv: &'static mut [*mut c_char] = Box::leak(argv.split_off(0).into_boxed_slice());
        // SAFETY: argv holds argc valid NUL-terminated strings that live forever.
        let ret = unsafe { raw::rte_eal_init(argv.len() as i32, argv.as_mut_ptr()) };
        if ret < 0 {
            INITIALISED.store(false, Ordering::SeqCst);
            return Err(DpdkError::from_rte_errno("rte_eal_init"));
        }
        // SAFETY: after a successful init DPDK returns a pointer to its own
        // NUL-terminated runtime directory string (or null).
        let runtime_dir = unsafe {
            let p = raw::rte_eal_get_runtime_dir();
            (!p.is_null()).then(|| {
                std::path::PathBuf::from(std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
            })
        };
        Ok(Eal { runtime_dir })
    }

    /// The calling thread's lcore id, or `None` for an unregistered thread.
    pub fn lcore_id() -> Option<u32> {
        // SAFETY: reads a thread-local.
        let id = unsafe { raw::rte_lcore_id() };
        (id != u32::MAX).then_some(id)
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: every DPDK object that needs the EAL holds an Arc to it
        // (pools, and through them ports and queues; registered threads), so
        // this runs after the last of them; cleanup runs once.
        unsafe { raw::rte_eal_cleanup() };
        // DPDK leaves the directory behind, holding only its telemetry
        // socket (unlinked at exit, after this). Remove both, but only when
        // nothing else is there (a secondary process's files stay).
        if let Some(d) = &self.runtime_dir {
            let entries: Vec<_> = std::fs::read_dir(d)
                .map(|r| r.flatten().collect())
                .unwrap_or_default();
            if entries.iter().all(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("dpdk_telemetry")
            }) {
                entries
                    .iter()
                    .for_each(|e| drop(std::fs::remove_file(e.path())));
                let _ = std::fs::remove_dir(d);
            }
        }
    }
}

/// A non-EAL thread registered with the EAL, so it gets an lcore id and with
/// it per-lcore mempool caches. Unregisters on drop; not Send (per-thread).
/// Holds the EAL, which must outlive the registration.
pub struct RegisteredThread {
    lcore: u32,
    _eal: std::sync::Arc<Eal>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl RegisteredThread {
    pub fn register(eal: &std::sync::Arc<Eal>) -> Result<RegisteredThread, DpdkError> {
        // SAFETY: registers the calling thread; the EAL is initialised (we hold &Eal).
        let ret = unsafe { raw::rte_thread_register() };
        if ret < 0 {
            return Err(DpdkError::from_rte_errno("rte_thread_register"));
        }
        Ok(RegisteredThread {
            lcore: Eal::lcore_id().unwrap_or(u32::MAX),
            _eal: std::sync::Arc::clone(eal),
            _not_send: std::marker::PhantomData,
        })
    }

    pub fn lcore(&self) -> u32 {
        self.lcore
    }
}

impl Drop for RegisteredThread {
    fn drop(&mut self) {
        // SAFETY: the calling thread registered itself in `register`.
        unsafe { raw::rte_thread_unregister() };
    }
}
