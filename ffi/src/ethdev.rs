//! Ports (`rte_ethdev`): hot-plug by devargs, configure, start, stop,
//! statistics, and per-queue handles that a single worker claims.
use crate::error::{check, DpdkError};
use crate::mbuf::MbufBatch;
use crate::mempool::Mempool;
use crate::raw;
use crate::BURST;
use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use switch_core::port::PortId;

/// Queues per port are tracked in a 64-bit claim mask.
pub use switch_core::port::MAX_QUEUES;

/// Counters of a port as its PMD keeps them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EthStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
}

/// What the port's queues need to be set up.
#[derive(Debug, Clone, Copy)]
pub struct PortSetup {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// Asked of the device when it supports setting one (NICs, TAP and
    /// af_packet interfaces); the switch enforces it on transmit anyway.
    pub mtu: u16,
    /// Checksum and TCP segmentation offloads (OVS's `userspace-tso-enable`):
    /// a guest may hand over and be handed partial checksums and TCP
    /// segments up to 64 KB; a NIC that can finish them on transmit is
    /// handed them. Off: every frame leaves finished.
    pub offloads: bool,
}

/// The transmit offloads an ethdev must have all of to be handed frames
/// with offloads left: TCP segmentation, TCP and UDP checksums, and the
/// chained mbufs a 64 KB segment comes in.
/// (`rte_ethdev.h` defines the bits with `RTE_BIT64`, which bindgen cannot
/// expand: UDP_CKSUM 2, TCP_CKSUM 3, TCP_TSO 5, MULTI_SEGS 15.)
const ETH_TX_OFFLOADS: u64 = 1 << 2 | 1 << 3 | 1 << 5 | 1 << 15;
/// IPv4 header checksums (IPV4_CKSUM, bit 1), taken with those when the
/// device has it: TSO then fills each segment's IP checksum.
const ETH_TX_IPV4_CKSUM: u64 = 1 << 1;

/// State shared by a port's owner and the queue handles workers hold. Frees
/// no DPDK resource itself, so whichever thread drops it last does no I/O;
/// it holds the pool the device fills, so that outlives every handle.
#[derive(Debug)]
pub struct PortQueues {
    /// The switch's number for the port (not DPDK's ethdev id).
    port_id: PortId,
    backend: Backend,
    rx_queues: u16,
    tx_queues: u16,
    rx_claims: AtomicU64,
    tx_claims: AtomicU64,
}

/// Where a port's packets come from and go to: chosen once per burst.
#[derive(Debug)]
pub(crate) enum Backend {
    /// An ethdev: NIC, SR-IOV VF or vdev, by DPDK port id, and the pool
    /// its rx queues take buffers from.
    Eth {
        dpdk_port: u16,
        #[allow(dead_code)] // held, not read: the device uses it
        pool: Arc<Mempool>,
        /// Configured with [`ETH_TX_OFFLOADS`].
        offloads: bool,
        /// ... and with [`ETH_TX_IPV4_CKSUM`].
        ip_checksum: bool,
    },
    /// A vhost-user device: its state and the pool guest frames are copied
    /// into; from a guest that hands offloads, the pool of large buffers
    /// (if the port has one), so a 64 KB segment takes 4 buffers, not 33.
    Vhost {
        device: Arc<crate::vhost::VhostDevice>,
        pool: Arc<Mempool>,
        tso_pool: Option<Arc<Mempool>>,
    },
    /// A packet socket with virtio-net headers (`afpacket` ports) and the
    /// pool its frames are copied into.
    Packet {
        socket: Arc<crate::packet::PacketSocket>,
        pool: Arc<Mempool>,
    },
}

impl PortQueues {
    pub(crate) fn new(port_id: PortId, backend: Backend, setup: PortSetup) -> PortQueues {
        PortQueues {
            port_id,
            backend,
            rx_queues: setup.rx_queues,
            tx_queues: setup.tx_queues,
            rx_claims: AtomicU64::new(0),
            tx_claims: AtomicU64::new(0),
        }
    }

    pub fn port_id(&self) -> PortId {
        self.port_id
    }
    pub fn rx_queues(&self) -> u16 {
        self.rx_queues
    }
    pub fn tx_queues(&self) -> u16 {
        self.tx_queues
    }

    /// Claims rx queue `q` for the calling worker; `None` if out of range or
    /// already claimed. DPDK queues are single-threaded: the claim is what
    /// makes `rx_burst` safe to expose.
    pub fn claim_rx(self: &Arc<Self>, q: u16) -> Option<RxQueue> {
        (q < self.rx_queues && claim(&self.rx_claims, q)).then(|| RxQueue {
            port: Arc::clone(self),
            queue: q,
        })
    }

    /// Claims tx queue `q`; as [`PortQueues::claim_rx`].
    pub fn claim_tx(self: &Arc<Self>, q: u16) -> Option<TxQueue> {
        (q < self.tx_queues && claim(&self.tx_claims, q)).then(|| TxQueue {
            port: Arc::clone(self),
            queue: q,
        })
    }

    /// Frames from the device may have offloads left to finish: a packet
    /// socket's (the virtio-net header says so) and a guest's that
    /// negotiated checksum offload. Read once per burst.
    #[inline(always)]
    pub fn hands_offloads(&self) -> bool {
        match &self.backend {
            Backend::Packet { .. } => true,
            Backend::Vhost { device, .. } => device.hands_offloads(),
            Backend::Eth { .. } => false,
        }
    }

    /// The device takes frames with offloads left and finishes them (or has
    /// them finished): a packet socket, a guest that negotiated checksum
    /// and TSO offloads on its receive side, a NIC configured with
    /// [`ETH_TX_OFFLOADS`]. Any other is sent frames the switch finished.
    #[inline(always)]
    pub fn takes_offloads(&self) -> bool {
        match &self.backend {
            Backend::Packet { .. } => true,
            Backend::Vhost { device, .. } => device.takes_offloads(),
            Backend::Eth { offloads, .. } => *offloads,
        }
    }

    /// `Err` (EBUSY, as `call` would fail) while a worker still holds one
    /// of the port's queues: what every port's `close` checks first.
    pub(crate) fn check_unclaimed(&self, call: &'static str) -> Result<(), DpdkError> {
        if self.claims_outstanding() == 0 {
            return Ok(());
        }
        Err(DpdkError {
            call,
            errno: libc::EBUSY,
            reason: "a worker still polls one of the port's queues".into(),
        })
    }

    /// Queue handles still held by workers.
    pub fn claims_outstanding(&self) -> u32 {
        self.rx_claims.load(Ordering::Acquire).count_ones()
            + self.tx_claims.load(Ordering::Acquire).count_ones()
    }
}

fn claim(mask: &AtomicU64, q: u16) -> bool {
    let bit = 1u64 << q;
    mask.fetch_or(bit, Ordering::AcqRel) & bit == 0
}

/// The receive side of one queue, owned by one worker.
#[derive(Debug)]
pub struct RxQueue {
    port: Arc<PortQueues>,
    queue: u16,
}

impl RxQueue {
    pub fn port_id(&self) -> PortId {
        self.port.port_id
    }
    pub fn queue(&self) -> u16 {
        self.queue
    }
    pub fn port_queues(&self) -> &Arc<PortQueues> {
        &self.port
    }

    /// One `rte_eth_rx_burst` (or vhost dequeue) into the free tail of
    /// `batch`; returns how many arrived.
    #[inline(always)]
    pub fn rx_burst(&mut self, batch: &mut MbufBatch) -> usize {
        let len = batch.len();
        let room = BURST - len;
        if room == 0 {
            return 0;
        }
        let n = match &self.port.backend {
            // SAFETY: this handle is the only claim on (port, queue), the port
            // is started and stays so until every claim is released; slots
            // len..BURST are empty and DPDK writes at most `room` owned mbuf
            // pointers there.
            Backend::Eth { dpdk_port, .. } => usize::from(unsafe {
                raw::rte_eth_rx_burst(
                    *dpdk_port,
                    self.queue,
                    batch.raw_slots().add(len),
                    room as u16,
                )
            }),
            Backend::Vhost {
                device,
                pool,
                tso_pool,
            } => {
                let pool = match tso_pool {
                    Some(large) if device.hands_offloads() => large,
                    _ => pool,
                };
                device.dequeue(self.queue, pool, batch)
            }
            Backend::Packet { socket, pool } => socket.receive(pool, batch),
        };
        batch.set_len(len + n);
        n
    }
}

impl Drop for RxQueue {
    fn drop(&mut self) {
        self.port
            .rx_claims
            .fetch_and(!(1u64 << self.queue), Ordering::AcqRel);
    }
}

/// The transmit side of one queue, owned by one worker.
#[derive(Debug)]
pub struct TxQueue {
    port: Arc<PortQueues>,
    queue: u16,
}

impl TxQueue {
    pub fn port_id(&self) -> PortId {
        self.port.port_id
    }
    pub fn port_queues(&self) -> &Arc<PortQueues> {
        &self.port
    }

    /// Sends the whole batch with one `rte_eth_tx_burst`; whatever the PMD
    /// did not take is freed in bulk. Returns (sent, dropped); the batch is
    /// empty afterwards.
    /// The batch must be compact (only pushed to, or [`MbufBatch::compact`]ed).
    #[inline(always)]
    pub fn tx_burst(&mut self, batch: &mut MbufBatch) -> (usize, usize) {
        let len = batch.len();
        if len == 0 {
            return (0, 0);
        }
        if !batch.is_compact() {
            batch.compact();
        }
        let len = batch.len();
        match &self.port.backend {
            Backend::Eth { dpdk_port, .. } => {
                // SAFETY: exclusive claim on (port, queue) as for rx; slots
                // 0..len are owned mbufs (compact). DPDK takes ownership of
                // the first `sent`.
                let sent = unsafe {
                    raw::rte_eth_tx_burst(*dpdk_port, self.queue, batch.raw_slots(), len as u16)
                } as usize;
                let dropped = batch.consumed_front(sent);
                (sent, dropped)
            }
            Backend::Vhost { device, .. } => device.enqueue(self.queue, batch),
            Backend::Packet { socket, .. } => socket.send(batch),
        }
    }

    /// One `rte_eth_tx_burst` of an ethdev port that keeps what the device
    /// did not take at the front of `batch` (for a traffic source that
    /// sends it again, rather than rebuilding it); returns how many went.
    /// Ports of other kinds send as [`tx_burst`](Self::tx_burst).
    pub fn tx_burst_keep(&mut self, batch: &mut MbufBatch) -> usize {
        if !batch.is_compact() {
            batch.compact();
        }
        let len = batch.len();
        match &self.port.backend {
            Backend::Eth { dpdk_port, .. } => {
                // SAFETY: as in tx_burst; DPDK owns the first `sent` after.
                let sent = usize::from(unsafe {
                    raw::rte_eth_tx_burst(*dpdk_port, self.queue, batch.raw_slots(), len as u16)
                });
                batch.keep_after(sent);
                sent
            }
            _ => self.tx_burst(batch).0,
        }
    }

    /// See [`PortQueues::takes_offloads`].
    #[inline(always)]
    pub fn takes_offloads(&self) -> bool {
        self.port.takes_offloads()
    }

    /// Readies the frames of `batch` that have offloads left for a device
    /// that [takes them](Self::takes_offloads): a guest's or a NIC's reads
    /// them from mbuf fields ([`Mbuf::prepare_tx_offload`]), and a NIC has
    /// its driver's `rte_eth_tx_prepare` fix up the headers it needs (the
    /// pseudo-header sum without the length, for TSO); a frame the driver
    /// refuses is dropped (counted by the caller as the batch shrinks). A
    /// packet socket writes its own header from the frame.
    ///
    /// [`Mbuf::prepare_tx_offload`]: crate::mbuf::Mbuf::prepare_tx_offload
    #[inline]
    pub fn prepare_offloads(&mut self, batch: &mut MbufBatch) {
        let (nic, ip_checksum) = match &self.port.backend {
            Backend::Packet { .. } => return,
            Backend::Vhost { .. } => (None, false),
            Backend::Eth {
                dpdk_port,
                ip_checksum,
                ..
            } => (Some(*dpdk_port), *ip_checksum),
        };
        if !batch.is_compact() {
            batch.compact();
        }
        for i in 0..batch.len() {
            if let Some(m) = batch.get_mut(i) {
                m.prepare_tx_offload(ip_checksum);
            }
        }
        if let Some(dpdk_port) = nic {
            let len = batch.len();
            // SAFETY: exclusive claim on (port, queue) as for tx_burst;
            // slots 0..len are owned mbufs (compact); the driver only
            // rewrites headers of the frames it returns as prepared.
            let ok = usize::from(unsafe {
                raw::rte_eth_tx_prepare(dpdk_port, self.queue, batch.raw_slots(), len as u16)
            });
            while batch.len() > ok {
                drop(batch.pop());
            }
        }
    }
}

impl Drop for TxQueue {
    fn drop(&mut self) {
        self.port
            .tx_claims
            .fetch_and(!(1u64 << self.queue), Ordering::AcqRel);
    }
}

/// A probed, configured and started port. Owned by the control thread;
/// stopping, closing and detaching happen in [`EthPort::close`] once no
/// worker holds a queue.
pub struct EthPort {
    queues: Arc<PortQueues>,
    dpdk_port: u16,
    name: String,
    devargs: String,
    device: *mut raw::rte_device,
    closed: bool,
}

// SAFETY: the raw device pointer is only used by the owning (control) thread
// in `close`; DPDK's ethdev control calls are safe from any one thread.
unsafe impl Send for EthPort {}

impl EthPort {
    /// Hot-plugs the device named by `devargs` (PCI address such as
    /// `0000:3b:00.1` for a NIC or SR-IOV VF, or a vdev string such as
    /// `net_pcap0,rx_pcap=a.pcap`), then configures and starts it.
    /// `number` is the switch's port number, which workers and snapshots use.
    pub fn open(
        number: PortId,
        devargs: &str,
        setup: PortSetup,
        pool: &Arc<Mempool>,
    ) -> Result<EthPort, DpdkError> {
        let c = CString::new(devargs).map_err(|_| DpdkError::new("rte_dev_probe", libc::EINVAL))?;
        // SAFETY: valid C string; DPDK copies what it keeps.
        let ret = unsafe { raw::rte_dev_probe(c.as_ptr()) };
        if ret < 0 && ret != -libc::EEXIST {
            let mut e = DpdkError::from_ret("rte_dev_probe", ret);
            e.reason = probe_failure(devargs, &e.reason);
            return Err(e);
        }
        let port_id = find_port(devargs).ok_or_else(|| DpdkError {
            call: "rte_eth_dev_get_port_by_name",
            errno: libc::ENODEV,
            reason: format!("no ethdev appeared for devargs {devargs:?}"),
        })?;
        match configure_and_start(port_id, setup, pool) {
            Ok((device, offloads)) => Ok(EthPort {
                queues: Arc::new(PortQueues::new(
                    number,
                    Backend::Eth {
                        dpdk_port: port_id,
                        pool: Arc::clone(pool),
                        offloads: offloads != 0,
                        ip_checksum: offloads & ETH_TX_IPV4_CKSUM != 0,
                    },
                    setup,
                )),
                dpdk_port: port_id,
                name: port_name(port_id),
                devargs: devargs.to_owned(),
                device,
                closed: false,
            }),
            Err(e) => {
                detach(port_id, std::ptr::null_mut());
                Err(e)
            }
        }
    }

    /// The switch's port number.
    pub fn port_id(&self) -> PortId {
        self.queues.port_id
    }

    /// DPDK's ethdev id of the port.
    pub fn dpdk_port(&self) -> u16 {
        self.dpdk_port
    }

    /// DPDK's name of the device (e.g. `net_pcap0`, `0000:3b:00.1`).
    pub fn dpdk_name(&self) -> &str {
        &self.name
    }

    pub fn devargs(&self) -> &str {
        &self.devargs
    }

    /// The handle workers claim queues from.
    pub fn queues(&self) -> &Arc<PortQueues> {
        &self.queues
    }

    pub fn stats(&self) -> Result<EthStats, DpdkError> {
        let mut s = raw::rte_eth_stats::default();
        // SAFETY: valid port id; `s` is a valid out-pointer.
        check("rte_eth_stats_get", unsafe {
            raw::rte_eth_stats_get(self.dpdk_port, &mut s)
        })?;
        Ok(EthStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Link up?
    pub fn link_up(&self) -> bool {
        let mut l = raw::rte_eth_link::default();
        // SAFETY: valid port id; `l` is a valid out-pointer.
        let ret = unsafe { raw::rte_eth_link_get_nowait(self.dpdk_port, &mut l) };
        ret == 0 && l.link_status() as u32 == raw::RTE_ETH_LINK_UP
    }

    pub fn mac_addr(&self) -> [u8; 6] {
        let mut a = raw::rte_ether_addr::default();
        // SAFETY: valid port id; `a` is a valid out-pointer.
        unsafe { raw::rte_eth_macaddr_get(self.dpdk_port, &mut a) };
        a.addr_bytes
    }

    /// Stops, closes and detaches the device. Fails (and keeps the port)
    /// while a worker still holds one of its queues.
    pub fn close(mut self) -> Result<(), (EthPort, DpdkError)> {
        if let Err(e) = self.queues.check_unclaimed("rte_eth_dev_close") {
            return Err((self, e));
        }
        self.closed = true;
        detach(self.dpdk_port, self.device);
        Ok(())
    }
}

impl Drop for EthPort {
    fn drop(&mut self) {
        if !self.closed && self.queues.claims_outstanding() == 0 {
            self.closed = true;
            detach(self.dpdk_port, self.device);
        }
        // With queues still claimed the device is left running: closing it
        // under a polling worker would be unsound. The daemon never does that.
    }
}

/// What a failed probe means: DPDK's own errno (EFAULT, "Bad address",
/// for a vdev no driver takes) says nothing about the devargs.
fn probe_failure(devargs: &str, reason: &str) -> String {
    let name = devargs.split(',').next().unwrap_or(devargs).trim();
    let pci = name.contains(':') && name.contains('.');
    if pci {
        format!(
            "no DPDK driver took PCI device {name} ({reason}): is it bound to vfio-pci \
             (dpdk-devbind.py), or to a bifurcated driver such as mlx5?"
        )
    } else {
        format!(
            "no DPDK driver took {name:?} with these arguments ({reason}): a virtual \
             device's name starts with its driver's (net_ring0, net_pcap0, net_null0, \
             net_tap0, net_af_packet0, virtio_user0) and takes only that driver's arguments"
        )
    }
}

fn find_port(devargs: &str) -> Option<u16> {
    let name = devargs.split(',').next().unwrap_or(devargs).trim();
    let c = CString::new(name).ok()?;
    let mut id = 0u16;
    // SAFETY: valid C string and out-pointer.
    if unsafe { raw::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) } == 0 {
        return Some(id);
    }
    // Fall back to DPDK's devargs iterator (e.g. `class=eth,mac=...` syntax).
    let full = CString::new(devargs).ok()?;
    let mut iter = raw::rte_dev_iterator::default();
    // SAFETY: iterator initialised from a valid C string, cleaned up below.
    unsafe {
        if raw::rte_eth_iterator_init(&mut iter, full.as_ptr()) != 0 {
            return None;
        }
        let p = raw::rte_eth_iterator_next(&mut iter);
        raw::rte_eth_iterator_cleanup(&mut iter);
        (p < raw::RTE_MAX_ETHPORTS as u16).then_some(p)
    }
}

fn port_name(port_id: u16) -> String {
    let mut buf = [0 as std::os::raw::c_char; 64];
    // SAFETY: buffer of RTE_ETH_NAME_MAX_LEN (64) bytes.
    let ret = unsafe { raw::rte_eth_dev_get_name_by_port(port_id, buf.as_mut_ptr()) };
    if ret != 0 {
        return format!("port{port_id}");
    }
    // SAFETY: DPDK wrote a NUL-terminated string into buf.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// Drivers that claim [`ETH_TX_OFFLOADS`] but do not keep the promise:
/// DPDK 22.11's `net_tap` (internal ports) cuts TSO segments the kernel
/// drops (TCP from a namespace to the host stalled at 39 KB in 2 s), so
/// the switch finishes frames for it.
fn driver_cuts_badly(info: &raw::rte_eth_dev_info) -> bool {
    if info.driver_name.is_null() {
        return false;
    }
    // SAFETY: a non-null driver name from dev_info is a NUL-terminated
    // string of the driver, which outlives the port.
    let name = unsafe { CStr::from_ptr(info.driver_name) };
    name.to_bytes() == b"net_tap"
}

/// Configures and starts the port; its device, and the transmit offloads
/// it was configured with: [`ETH_TX_OFFLOADS`] (asked for and all
/// supported) and [`ETH_TX_IPV4_CKSUM`] if supported too, or none.
fn configure_and_start(
    port_id: u16,
    setup: PortSetup,
    pool: &Mempool,
) -> Result<(*mut raw::rte_device, u64), DpdkError> {
    let mut info = raw::rte_eth_dev_info::default();
    // SAFETY: valid port id; `info` is a valid out-pointer.
    check("rte_eth_dev_info_get", unsafe {
        raw::rte_eth_dev_info_get(port_id, &mut info)
    })?;
    if setup.rx_queues == 0
        || setup.rx_queues > info.max_rx_queues.min(MAX_QUEUES)
        || setup.tx_queues == 0
        || setup.tx_queues > info.max_tx_queues.min(MAX_QUEUES)
    {
        return Err(DpdkError {
            call: "rte_eth_dev_configure",
            errno: libc::EINVAL,
            reason: format!(
                "port supports at most {} rx and {} tx queues, asked for {} and {}",
                info.max_rx_queues, info.max_tx_queues, setup.rx_queues, setup.tx_queues
            ),
        });
    }
    let mut conf = raw::rte_eth_conf::default();
    let offloads = if setup.offloads
        && info.tx_offload_capa & ETH_TX_OFFLOADS == ETH_TX_OFFLOADS
        && !driver_cuts_badly(&info)
    {
        ETH_TX_OFFLOADS | info.tx_offload_capa & ETH_TX_IPV4_CKSUM
    } else {
        0
    };
    conf.txmode.offloads = offloads;
    // SAFETY: valid port id and configuration struct (defaults, and tx
    // offloads the device reported).
    check("rte_eth_dev_configure", unsafe {
        raw::rte_eth_dev_configure(port_id, setup.rx_queues, setup.tx_queues, &conf)
    })?;
    // SAFETY: valid, configured port.
    let rc = unsafe { raw::rte_eth_dev_set_mtu(port_id, setup.mtu) };
    if rc < 0 && rc != -libc::ENOTSUP {
        return Err(DpdkError::from_ret("rte_eth_dev_set_mtu", rc));
    }
    // SAFETY: valid port id.
    let socket = unsafe { raw::rte_eth_dev_socket_id(port_id) }.max(0) as u32;
    for q in 0..setup.rx_queues {
        // SAFETY: configured port, queue in range; the pool outlives the
        // device (its PortQueues, held by the EthPort and every queue
        // handle, holds an Arc to it).
        check("rte_eth_rx_queue_setup", unsafe {
            raw::rte_eth_rx_queue_setup(
                port_id,
                q,
                setup.rx_desc,
                socket,
                std::ptr::null(),
                pool.as_ptr(),
            )
        })?;
    }
    for q in 0..setup.tx_queues {
        // SAFETY: configured port, queue in range, default tx config.
        check("rte_eth_tx_queue_setup", unsafe {
            raw::rte_eth_tx_queue_setup(port_id, q, setup.tx_desc, socket, std::ptr::null())
        })?;
    }
    // SAFETY: valid, configured port.
    check("rte_eth_dev_start", unsafe {
        raw::rte_eth_dev_start(port_id)
    })?;
    // A switch port sees every frame; PMDs without the notion refuse harmlessly.
    // SAFETY: valid, started port.
    unsafe { raw::rte_eth_promiscuous_enable(port_id) };
    Ok((info.device, offloads))
}

fn detach(port_id: u16, device: *mut raw::rte_device) {
    // SAFETY: no worker holds a queue (checked by callers); stop and close
    // tolerate a port that was never started; the device pointer came from
    // dev_info of this port and is used once.
    unsafe {
        raw::rte_eth_dev_stop(port_id);
        let device = if device.is_null() {
            let mut info = raw::rte_eth_dev_info::default();
            raw::rte_eth_dev_info_get(port_id, &mut info);
            info.device
        } else {
            device
        };
        raw::rte_eth_dev_close(port_id);
        if !device.is_null() {
            raw::rte_dev_remove(device);
        }
    }
}
