//! vhost-user ports (`rte_vhost`): the switch is the backend of a VM's
//! virtio-net device, connected through a UNIX socket.
//!
//! Client mode (the default, OVS's `dpdkvhostuserclient`): QEMU owns the
//! socket and the switch connects, and reconnects whenever the VM side comes
//! back. Server mode (OVS's `dpdkvhostuser`): the switch creates the socket.
//!
//! The vhost library calls back from its own thread: `new_device` when the
//! guest driver has set the rings up, `vring_state_changed` as it enables
//! queues, `destroy_device` when the VM goes away. Workers poll the device
//! through the same [`RxQueue`](crate::ethdev::RxQueue) /
//! [`TxQueue`](crate::ethdev::TxQueue) handles as ethdev ports.
//! `destroy_device` must not return while a worker is inside a burst on the
//! device (its memory is unmapped right after): each queue handle raises a
//! flag around its burst, and `destroy_device` waits until every flag is down
//! once the device id has been withdrawn.
use crate::error::DpdkError;
use crate::ethdev::{Backend, PortQueues, PortSetup, MAX_QUEUES};
use crate::mbuf::MbufBatch;
use crate::mempool::Mempool;
use crate::raw;
use crate::BURST;
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Who owns the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VhostMode {
    /// The VM side owns it; the switch connects and reconnects.
    Client,
    /// The switch creates it and the VM connects.
    Server,
}

/// Virtio-net feature bits (virtio spec 5.1.3) the switch looks at.
mod virtio_net {
    pub const F_CSUM: u32 = 0;
    pub const F_GUEST_CSUM: u32 = 1;
    pub const F_GUEST_TSO4: u32 = 7;
    pub const F_GUEST_TSO6: u32 = 8;
    pub const F_HOST_TSO4: u32 = 11;
    pub const F_HOST_TSO6: u32 = 12;
    pub const F_HOST_ECN: u32 = 13;
    pub const F_HOST_UFO: u32 = 14;
}

/// Guest-to-switch offloads the switch never takes: UDP fragmentation
/// (it cuts TCP only) and ECN on TSO. What OVS-DPDK turns off with
/// `userspace-tso-enable`.
pub const DISABLED_FEATURES: u64 = 1 << virtio_net::F_HOST_ECN | 1 << virtio_net::F_HOST_UFO;

/// ... and without offloads (`PortSetup::offloads` off) also the checksum
/// offload and TSO, which depend on it: every frame from the guest comes
/// finished, as OVS-DPDK has it without `userspace-tso-enable`. Mergeable
/// rx buffers, multiqueue, indirect descriptors, event index and the
/// guest-side (switch-to-guest) features stay on.
pub const DISABLED_WITHOUT_OFFLOADS: u64 = DISABLED_FEATURES
    | 1 << virtio_net::F_CSUM
    | 1 << virtio_net::F_HOST_TSO4
    | 1 << virtio_net::F_HOST_TSO6;

/// What a guest must have negotiated to be handed partial checksums and
/// TCP segments of up to 64 KB over IPv4 and IPv6.
const GUEST_OFFLOADS: u64 =
    1 << virtio_net::F_GUEST_CSUM | 1 << virtio_net::F_GUEST_TSO4 | 1 << virtio_net::F_GUEST_TSO6;

/// The data room of the buffers a guest's TSO segments are copied into: a
/// 64 KB segment in 4 of them (in the default 2 KB ones it takes 33, and
/// initialising their headers cost more than the copy).
pub const TSO_DATA_ROOM: u16 = 16 * 1024 + crate::raw::RTE_PKTMBUF_HEADROOM as u16;

/// A flag on its own cache line: one per queue handle, written by one worker.
#[repr(align(64))]
#[derive(Debug, Default)]
struct BusyFlag(AtomicBool);

/// What the vhost callbacks and the workers share about one socket.
#[derive(Debug)]
pub struct VhostDevice {
    path: CString,
    /// The vhost library's device id while a guest is attached, else -1.
    vid: AtomicI32,
    /// Virtqueues the guest has enabled (bit = virtqueue index).
    enabled: AtomicU64,
    /// Queue pairs the guest set up.
    pairs: AtomicU16,
    /// The port passes offloads (`PortSetup::offloads`).
    offloads: bool,
    /// Features the attached guest negotiated (0 while none is).
    features: AtomicU64,
    /// Raised by a worker around each burst: rx queue q at q, tx queue q at
    /// MAX_QUEUES + q.
    busy: Box<[BusyFlag]>,
    connects: AtomicU64,
    disconnects: AtomicU64,
}

impl VhostDevice {
    fn new(path: CString, offloads: bool) -> VhostDevice {
        VhostDevice {
            path,
            vid: AtomicI32::new(-1),
            enabled: AtomicU64::new(0),
            pairs: AtomicU16::new(0),
            offloads,
            features: AtomicU64::new(0),
            busy: (0..2 * MAX_QUEUES as usize)
                .map(|_| BusyFlag::default())
                .collect(),
            connects: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
        }
    }

    /// Raises the handle's flag and returns the device id, or `None` (flag
    /// down) when no guest is attached.
    #[inline(always)]
    fn enter(&self, slot: usize) -> Option<c_int> {
        // Cheap exit while no VM is there, without touching the flag.
        if self.vid.load(Ordering::Relaxed) < 0 {
            return None;
        }
        let flag = &self.busy[slot].0;
        // SeqCst store then SeqCst load, against destroy_device's SeqCst
        // store of -1 then SeqCst loads of the flags: one of the two sees
        // the other.
        flag.store(true, Ordering::SeqCst);
        let vid = self.vid.load(Ordering::SeqCst);
        if vid < 0 {
            flag.store(false, Ordering::Release);
            return None;
        }
        Some(vid)
    }

    #[inline(always)]
    fn leave(&self, slot: usize) {
        self.busy[slot].0.store(false, Ordering::Release);
    }

    /// Copies up to the free tail of `batch` from the guest's transmit ring of
    /// queue pair `q` into mbufs of `pool`; returns how many.
    #[inline]
    pub(crate) fn dequeue(&self, q: u16, pool: &Mempool, batch: &mut MbufBatch) -> usize {
        let slot = q as usize;
        let Some(vid) = self.enter(slot) else {
            return 0;
        };
        let len = batch.len();
        // SAFETY: `vid` stays valid until `leave` (destroy_device waits for
        // the flag); this handle is the only claim on rx queue q; slots
        // len..BURST are empty and the library writes at most BURST - len
        // owned mbufs there. Virtqueue 2q+1 is the guest's transmit ring.
        let n = unsafe {
            raw::rte_vhost_dequeue_burst(
                vid,
                2 * q + 1,
                pool.as_ptr(),
                batch.raw_slots().add(len),
                (BURST - len) as u16,
            )
        } as usize;
        self.leave(slot);
        n
    }

    /// Copies the batch into the guest's receive ring (queue pair `q`, or the
    /// one it maps to when the guest set up fewer) and frees every mbuf.
    /// Returns (sent, dropped).
    #[inline]
    pub(crate) fn enqueue(&self, q: u16, batch: &mut MbufBatch) -> (usize, usize) {
        let slot = MAX_QUEUES as usize + q as usize;
        let len = batch.len();
        let Some(vid) = self.enter(slot) else {
            batch.clear();
            return (0, len);
        };
        let pairs = self.pairs.load(Ordering::Relaxed).max(1);
        let vq = 2 * (q % pairs);
        // SAFETY: as in dequeue; slots 0..len are owned, compact mbufs (the
        // caller compacted them). The library copies the frames and leaves
        // the mbufs to us. Several workers may share one virtqueue here:
        // the library serialises them with the queue's access lock.
        let sent = unsafe { raw::rte_vhost_enqueue_burst(vid, vq, batch.raw_slots(), len as u16) }
            as usize;
        self.leave(slot);
        batch.clear();
        (sent, len - sent)
    }

    /// The guest may hand over partial checksums and TSO segments (it
    /// negotiated checksum offload, which the port offers only with
    /// offloads on).
    #[inline(always)]
    pub fn hands_offloads(&self) -> bool {
        self.offloads && self.features.load(Ordering::Relaxed) & 1 << virtio_net::F_CSUM != 0
    }

    /// The guest takes partial checksums and TSO segments (it negotiated
    /// them on its receive side, and the port passes offloads).
    #[inline(always)]
    pub fn takes_offloads(&self) -> bool {
        self.offloads && self.features.load(Ordering::Relaxed) & GUEST_OFFLOADS == GUEST_OFFLOADS
    }

    /// A guest is attached and has enabled at least one of its transmit and
    /// one of its receive rings: the port is ACTIVE.
    pub fn is_ready(&self) -> bool {
        let e = self.enabled.load(Ordering::Acquire);
        self.vid.load(Ordering::Acquire) >= 0
            && e & 0x5555_5555_5555_5555 != 0
            && e & 0xaaaa_aaaa_aaaa_aaaa != 0
    }

    pub fn status(&self) -> VhostStatus {
        let e = self.enabled.load(Ordering::Acquire);
        VhostStatus {
            attached: self.vid.load(Ordering::Acquire) >= 0,
            ready: self.is_ready(),
            queue_pairs: self.pairs.load(Ordering::Acquire),
            enabled_queues: e.count_ones(),
            connects: self.connects.load(Ordering::Relaxed),
            disconnects: self.disconnects.load(Ordering::Relaxed),
        }
    }
}

/// A vhost-user port's state as the control plane shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VhostStatus {
    /// A guest is attached (`new_device` ran, `destroy_device` did not yet).
    pub attached: bool,
    /// Attached and queues enabled.
    pub ready: bool,
    pub queue_pairs: u16,
    pub enabled_queues: u32,
    /// Guests attached and detached since the port was opened.
    pub connects: u64,
    pub disconnects: u64,
}

/// Devices by socket path, for the callbacks (which only get a device id).
static DEVICES: Mutex<Vec<Arc<VhostDevice>>> = Mutex::new(Vec::new());

fn devices() -> std::sync::MutexGuard<'static, Vec<Arc<VhostDevice>>> {
    DEVICES.lock().unwrap_or_else(|e| e.into_inner())
}

fn device_of(vid: c_int) -> Option<Arc<VhostDevice>> {
    let mut buf = [0 as c_char; 4096];
    // SAFETY: vid comes from the library; the buffer is writable for its length.
    if unsafe { raw::rte_vhost_get_ifname(vid, buf.as_mut_ptr(), buf.len()) } != 0 {
        return None;
    }
    // SAFETY: the library wrote a NUL-terminated path into buf.
    let path = unsafe { CStr::from_ptr(buf.as_ptr()) };
    devices()
        .iter()
        .find(|d| d.path.as_c_str() == path)
        .cloned()
}

unsafe extern "C" fn on_new_device(vid: c_int) -> c_int {
    let Some(dev) = device_of(vid) else {
        return -1;
    };
    // SAFETY: vid is the device the library is creating.
    let vrings = unsafe { raw::rte_vhost_get_vring_num(vid) };
    for vq in 0..vrings {
        // Poll mode: the guest need not kick us.
        // SAFETY: as above, vq in range.
        unsafe { raw::rte_vhost_enable_guest_notification(vid, vq, 0) };
    }
    dev.pairs
        .store((vrings / 2).min(MAX_QUEUES), Ordering::Release);
    let mut features = 0u64;
    // SAFETY: as above; `features` is a valid out-pointer.
    if unsafe { raw::rte_vhost_get_negotiated_features(vid, &mut features) } != 0 {
        features = 0;
    }
    dev.features.store(features, Ordering::Release);
    dev.connects.fetch_add(1, Ordering::Relaxed);
    dev.vid.store(vid, Ordering::SeqCst);
    0
}

unsafe extern "C" fn on_destroy_device(vid: c_int) {
    let Some(dev) = device_of(vid) else {
        return;
    };
    if dev.vid.load(Ordering::SeqCst) != vid {
        return;
    }
    dev.vid.store(-1, Ordering::SeqCst);
    // Wait out every burst that started before the store (bounded: a burst
    // is at most 32 copies).
    for flag in dev.busy.iter() {
        while flag.0.load(Ordering::SeqCst) {
            std::hint::spin_loop();
        }
    }
    dev.pairs.store(0, Ordering::Release);
    dev.features.store(0, Ordering::Release);
    dev.disconnects.fetch_add(1, Ordering::Relaxed);
}

unsafe extern "C" fn on_vring_state_changed(vid: c_int, queue_id: u16, enable: c_int) -> c_int {
    let Some(dev) = device_of(vid) else {
        return 0;
    };
    if queue_id < 64 {
        let bit = 1u64 << queue_id;
        if enable != 0 {
            dev.enabled.fetch_or(bit, Ordering::AcqRel);
        } else {
            dev.enabled.fetch_and(!bit, Ordering::AcqRel);
        }
    }
    0
}

unsafe extern "C" fn on_destroy_connection(vid: c_int) {
    // The socket is gone: no ring is enabled any more.
    if let Some(dev) = device_of(vid) {
        dev.enabled.store(0, Ordering::Release);
    }
}

/// The callback table: read-only, and its one pointer field is null.
struct DeviceOps(raw::rte_vhost_device_ops);

// SAFETY: never written after initialisation; `reserved` is a null pointer.
unsafe impl Sync for DeviceOps {}

static OPS: DeviceOps = DeviceOps(raw::rte_vhost_device_ops {
    new_device: Some(on_new_device),
    destroy_device: Some(on_destroy_device),
    vring_state_changed: Some(on_vring_state_changed),
    features_changed: None,
    new_connection: None,
    destroy_connection: Some(on_destroy_connection),
    guest_notified: None,
    reserved: [std::ptr::null_mut(); 1],
});

/// A registered vhost-user socket. Owned by the control thread; unregistered
/// in [`VhostPort::close`] once no worker holds a queue.
pub struct VhostPort {
    device: Arc<VhostDevice>,
    queues: Arc<PortQueues>,
    mode: VhostMode,
    path: String,
    closed: bool,
}

impl std::fmt::Debug for VhostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VhostPort")
            .field("path", &self.path)
            .field("mode", &self.mode)
            .finish()
    }
}

impl VhostPort {
    /// Registers `path` with the vhost library and starts connecting
    /// (client) or listening (server). Returns at once: the port is DOWN
    /// until a guest attaches. Guest frames are copied into `pool`, or,
    /// from a guest that hands offloads (`setup.offloads`), into
    /// `tso_pool` when there is one ([`TSO_DATA_ROOM`] buffers).
    pub fn open(
        number: switch_core::port::PortId,
        path: &str,
        mode: VhostMode,
        setup: PortSetup,
        pool: &Arc<Mempool>,
        tso_pool: Option<&Arc<Mempool>>,
    ) -> Result<VhostPort, DpdkError> {
        let cpath = CString::new(path)
            .map_err(|_| DpdkError::new("rte_vhost_driver_register", libc::EINVAL))?;
        if setup.rx_queues == 0
            || setup.rx_queues > MAX_QUEUES
            || setup.tx_queues == 0
            || setup.tx_queues > MAX_QUEUES
        {
            return Err(DpdkError {
                call: "rte_vhost_driver_register",
                errno: libc::EINVAL,
                reason: format!("1 to {MAX_QUEUES} queues per direction"),
            });
        }
        if devices().iter().any(|d| d.path == cpath) {
            return Err(DpdkError {
                call: "rte_vhost_driver_register",
                errno: libc::EEXIST,
                reason: format!("{path} is already a port of this switch"),
            });
        }
        let device = Arc::new(VhostDevice::new(cpath.clone(), setup.offloads));
        devices().push(Arc::clone(&device));
        let flags = match mode {
            VhostMode::Client => raw::RTE_VHOST_USER_CLIENT,
            VhostMode::Server => 0,
        } as u64;
        let fail = |call: &'static str, ret: c_int, registered: bool| {
            if registered {
                // SAFETY: registered above with this path.
                unsafe { raw::rte_vhost_driver_unregister(cpath.as_ptr()) };
            }
            devices().retain(|d| !Arc::ptr_eq(d, &device));
            DpdkError::from_ret(call, ret.min(-1))
        };
        // SAFETY: valid C string; the library copies the path.
        let ret = unsafe { raw::rte_vhost_driver_register(cpath.as_ptr(), flags) };
        if ret != 0 {
            return Err(fail("rte_vhost_driver_register", ret, false));
        }
        let disabled = if setup.offloads {
            DISABLED_FEATURES
        } else {
            DISABLED_WITHOUT_OFFLOADS
        };
        // SAFETY: registered path; the feature mask is plain data.
        let ret = unsafe { raw::rte_vhost_driver_disable_features(cpath.as_ptr(), disabled) };
        if ret != 0 {
            return Err(fail("rte_vhost_driver_disable_features", ret, true));
        }
        // SAFETY: registered path; OPS is 'static and its callbacks are
        // plain functions that tolerate unknown device ids.
        let ret = unsafe { raw::rte_vhost_driver_callback_register(cpath.as_ptr(), &OPS.0) };
        if ret != 0 {
            return Err(fail("rte_vhost_driver_callback_register", ret, true));
        }
        // SAFETY: registered path with callbacks set.
        let ret = unsafe { raw::rte_vhost_driver_start(cpath.as_ptr()) };
        if ret != 0 {
            return Err(fail("rte_vhost_driver_start", ret, true));
        }
        let queues = Arc::new(PortQueues::new(
            number,
            Backend::Vhost {
                device: Arc::clone(&device),
                pool: Arc::clone(pool),
                tso_pool: tso_pool.filter(|_| setup.offloads).cloned(),
            },
            setup,
        ));
        Ok(VhostPort {
            device,
            queues,
            mode,
            path: path.to_owned(),
            closed: false,
        })
    }

    /// The switch's port number.
    pub fn port_id(&self) -> switch_core::port::PortId {
        self.queues.port_id()
    }

    pub fn queues(&self) -> &Arc<PortQueues> {
        &self.queues
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn mode(&self) -> VhostMode {
        self.mode
    }

    pub fn status(&self) -> VhostStatus {
        self.device.status()
    }

    pub fn is_ready(&self) -> bool {
        self.device.is_ready()
    }

    /// Unregisters the socket (detaching a guest still attached). Fails (and
    /// keeps the port) while a worker still holds one of its queues.
    pub fn close(mut self) -> Result<(), (VhostPort, DpdkError)> {
        if let Err(e) = self.queues.check_unclaimed("rte_vhost_driver_unregister") {
            return Err((self, e));
        }
        self.unregister();
        Ok(())
    }

    fn unregister(&mut self) {
        self.closed = true;
        // SAFETY: registered in open; the library tears down a live
        // connection through destroy_device before returning.
        unsafe { raw::rte_vhost_driver_unregister(self.device.path.as_ptr()) };
        devices().retain(|d| !Arc::ptr_eq(d, &self.device));
    }
}

impl Drop for VhostPort {
    fn drop(&mut self) {
        if !self.closed && self.queues.claims_outstanding() == 0 {
            self.unregister();
        }
    }
}
