//! `afpacket` ports: a Linux packet socket on a kernel interface (the host
//! end of a namespace's veth, a NIC the kernel owns), with the virtio-net
//! header in front of every frame (`PACKET_VNET_HDR`), as OVS's
//! userspace-TSO netdev-linux ports have it. DPDK's `net_af_packet` has no
//! such header: the kernel's checksum and segmentation offloads (a veth's
//! defaults) reached the switch as frames with pseudo-header checksums and
//! as 64 KB TCP segments cut at the ring's 2 KB frames, and TCP through it
//! failed. Here the header says what is left to do; the frame keeps it as
//! its [`Offload`], and an output that cannot take it finishes it.
//!
//! Receive: a `TPACKET_V2` ring mapped once (no system call per burst);
//! frames are copied into the pool's mbufs (chained for a large segment).
//! Send: one `sendmmsg` per burst, each frame behind its own header.
use crate::error::DpdkError;
use crate::ethdev::{Backend, PortQueues, PortSetup};
use crate::mbuf::{Mbuf, MbufBatch};
use crate::mempool::Mempool;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use switch_core::frame::BURST;
use switch_core::offload::VnetHdr;
use switch_core::port::PortId;

// linux/if_packet.h
const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_VERSION: libc::c_int = 10;
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_MR_PROMISC: libc::c_int = 1;
const TPACKET_V2: libc::c_int = 1;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const PACKET_OUTGOING: u8 = 4;

/// `struct tpacket2_hdr`.
#[repr(C)]
struct Tpacket2Hdr {
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_sec: u32,
    tp_nsec: u32,
    tp_vlan_tci: u16,
    tp_vlan_tpid: u16,
    tp_padding: [u8; 4],
}

/// `struct tpacket_req`.
#[repr(C)]
struct TpacketReq {
    tp_block_size: u32,
    tp_block_nr: u32,
    tp_frame_size: u32,
    tp_frame_nr: u32,
}

/// `struct packet_mreq`.
#[repr(C)]
struct PacketMreq {
    mr_ifindex: libc::c_int,
    mr_type: libc::c_ushort,
    mr_alen: libc::c_ushort,
    mr_address: [u8; 8],
}

/// One ring frame holds the largest segment the kernel hands a packet
/// socket (64 KB of GSO payload plus headers) behind its own header.
const FRAME_SIZE: usize = 69_632; // 17 pages
const FRAMES: usize = 64;
/// Where the `sockaddr_ll` sits in a ring frame (after the aligned header).
const SLL_OFFSET: usize = (std::mem::size_of::<Tpacket2Hdr>() + 15) & !15;
/// Scatter-gather entries per sent frame: the header and up to this many
/// segments (a 64 KB frame in 2 KB mbufs has 33).
const MAX_IOV: usize = 48;

/// An open packet socket and its receive ring.
pub struct PacketSocket {
    fd: OwnedFd,
    ring: *mut u8,
    ifindex: libc::c_int,
    iface: String,
    /// Next ring frame to read (only the one rx claim reads it).
    next: AtomicUsize,
    /// Frames the kernel cut (longer than a ring frame) or that could not
    /// be copied (no mbuf): dropped.
    pub rx_dropped: AtomicU64,
    /// Frames the kernel did not take.
    pub tx_errors: AtomicU64,
    /// Frames whose header could not be read.
    pub rx_errors: AtomicU32,
}

// SAFETY: the ring is process memory shared with the kernel only; the one
// rx claim reads it (`next`), the kernel writes frames it owns by status.
unsafe impl Send for PacketSocket {}
// SAFETY: as above; every other field is atomic or immutable.
unsafe impl Sync for PacketSocket {}

impl std::fmt::Debug for PacketSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketSocket")
            .field("iface", &self.iface)
            .field("fd", &self.fd.as_raw_fd())
            .finish()
    }
}

fn os_err(call: &'static str, what: &str) -> DpdkError {
    let e = std::io::Error::last_os_error();
    DpdkError {
        call,
        errno: e.raw_os_error().unwrap_or(libc::EIO),
        reason: format!("{what}: {e}"),
    }
}

fn setopt<T>(fd: &OwnedFd, opt: libc::c_int, v: &T, what: &str) -> Result<(), DpdkError> {
    // SAFETY: `v` points to a live T of the size given.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            opt,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(os_err("setsockopt", what));
    }
    Ok(())
}

impl PacketSocket {
    /// Opens a packet socket on `iface` with virtio-net headers, maps its
    /// receive ring, binds it and puts the interface in promiscuous mode
    /// (for as long as the socket lives).
    pub fn open(iface: &str) -> Result<PacketSocket, DpdkError> {
        let name =
            CString::new(iface).map_err(|_| DpdkError::new("if_nametoindex", libc::EINVAL))?;
        // SAFETY: valid C string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as libc::c_int;
        if ifindex == 0 {
            return Err(os_err("if_nametoindex", &format!("interface {iface:?}")));
        }
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket call.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        if raw < 0 {
            return Err(os_err("socket", "AF_PACKET (needs CAP_NET_RAW)"));
        }
        // SAFETY: `raw` is a fresh descriptor this value now owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        setopt(&fd, PACKET_VNET_HDR, &1i32, "PACKET_VNET_HDR")?;
        setopt(&fd, PACKET_VERSION, &TPACKET_V2, "PACKET_VERSION")?;
        let req = TpacketReq {
            tp_block_size: FRAME_SIZE as u32,
            tp_block_nr: FRAMES as u32,
            tp_frame_size: FRAME_SIZE as u32,
            tp_frame_nr: FRAMES as u32,
        };
        setopt(&fd, PACKET_RX_RING, &req, "PACKET_RX_RING")?;
        // SAFETY: maps the ring the kernel just allocated for this socket.
        let ring = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                FRAME_SIZE * FRAMES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ring == libc::MAP_FAILED {
            return Err(os_err("mmap", "packet ring"));
        }
        let sock = PacketSocket {
            fd,
            ring: ring.cast(),
            ifindex,
            iface: iface.to_owned(),
            next: AtomicUsize::new(0),
            rx_dropped: AtomicU64::new(0),
            tx_errors: AtomicU64::new(0),
            rx_errors: AtomicU32::new(0),
        };
        // SAFETY: an all-zero sockaddr_ll is valid; the fields are set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex;
        // SAFETY: `sll` is a valid sockaddr_ll of the size given.
        let r = unsafe {
            libc::bind(
                sock.fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(os_err("bind", &format!("packet socket on {iface}")));
        }
        let mreq = PacketMreq {
            mr_ifindex: ifindex,
            mr_type: PACKET_MR_PROMISC as u16,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        setopt(&sock.fd, PACKET_ADD_MEMBERSHIP, &mreq, "PACKET_MR_PROMISC")?;
        Ok(sock)
    }

    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The status word of ring frame `i`, shared with the kernel.
    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: frame i < FRAMES lies in the mapping, 4-aligned (frames
        // are page multiples); the word is only accessed atomically here
        // and by the kernel.
        unsafe { &*(self.ring.add(i * FRAME_SIZE) as *const AtomicU32) }
    }

    /// Copies the frames the kernel has filled, up to the free tail of
    /// `batch`, into mbufs of `pool`, each with the offload its header
    /// asks for; returns how many. No system call.
    pub(crate) fn receive(&self, pool: &Mempool, batch: &mut MbufBatch) -> usize {
        let mut got = 0;
        let mut i = self.next.load(Ordering::Relaxed);
        while !batch.is_full() {
            if self.status(i).load(Ordering::Acquire) & TP_STATUS_USER == 0 {
                break;
            }
            // SAFETY: the frame is the user's until its status goes back
            // to TP_STATUS_KERNEL below; it lies in the mapping.
            let frame =
                unsafe { std::slice::from_raw_parts(self.ring.add(i * FRAME_SIZE), FRAME_SIZE) };
            if let Some(m) = self.copy_out(frame, pool) {
                if batch.push(m).is_ok() {
                    got += 1;
                }
            }
            self.status(i).store(TP_STATUS_KERNEL, Ordering::Release);
            i = (i + 1) % FRAMES;
        }
        self.next.store(i, Ordering::Relaxed);
        got
    }

    /// One ring frame as an mbuf (chained when longer than one), or `None`
    /// (counted) when cut, unreadable, sent by this host, or out of mbufs.
    fn copy_out(&self, frame: &[u8], pool: &Mempool) -> Option<Mbuf> {
        let u32_at = |o: usize| u32::from_ne_bytes(frame[o..o + 4].try_into().unwrap_or([0; 4]));
        let u16_at = |o: usize| u16::from_ne_bytes(frame[o..o + 2].try_into().unwrap_or([0; 2]));
        let status = u32_at(0);
        let (len, snaplen, mac) = (
            u32_at(4) as usize,
            u32_at(8) as usize,
            usize::from(u16_at(12)),
        );
        // sockaddr_ll.sll_pkttype: what this host sent is not received.
        if frame.get(SLL_OFFSET + 10) == Some(&PACKET_OUTGOING) {
            return None;
        }
        let (Some(data), Some(hdr)) = (
            frame.get(mac..mac + snaplen),
            mac.checked_sub(VnetHdr::LEN)
                .and_then(|h| VnetHdr::parse(&frame[h..mac])),
        ) else {
            self.rx_errors.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        if snaplen < len {
            self.rx_dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let Some(mut m) = Mbuf::alloc(pool) else {
            self.rx_dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let room = m.room().max(1);
        let mut chunks = data.chunks(room);
        if !m.copy_from(chunks.next().unwrap_or_default()) {
            self.rx_dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        for c in chunks {
            let ok = Mbuf::alloc(pool).is_some_and(|mut s| s.copy_from(c) && m.append_segment(s));
            if !ok {
                self.rx_dropped.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        }
        if status & TP_STATUS_VLAN_VALID != 0 {
            m.set_rx_vlan(u16_at(24));
        }
        m.set_offload(hdr.offload());
        Some(m)
    }

    /// Sends the batch with one `sendmmsg`, each frame behind the header
    /// its offload asks for, and frees every mbuf; returns (sent, dropped).
    pub(crate) fn send(&self, batch: &mut MbufBatch) -> (usize, usize) {
        let n = batch.len().min(BURST);
        let mut hdrs = [[0u8; VnetHdr::LEN]; BURST];
        let mut iovs = [[libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX_IOV]; BURST];
        // SAFETY: an all-zero mmsghdr is valid (no name, no control).
        let mut msgs: [libc::mmsghdr; BURST] = unsafe { std::mem::zeroed() };
        let mut count = 0;
        let mut dropped = 0;
        for i in 0..n {
            let Some(m) = batch.get(i) else { continue };
            let h = VnetHdr::for_frame(m.data(), m.offload());
            h.write(&mut hdrs[count]);
            let iov = &mut iovs[count];
            iov[0] = libc::iovec {
                iov_base: hdrs[count].as_mut_ptr().cast(),
                iov_len: VnetHdr::LEN,
            };
            let mut k = 1;
            let mut fits = true;
            for seg in m.segments() {
                if k == MAX_IOV {
                    fits = false;
                    break;
                }
                iov[k] = libc::iovec {
                    iov_base: seg.as_ptr() as *mut libc::c_void,
                    iov_len: seg.len(),
                };
                k += 1;
            }
            if !fits {
                dropped += 1;
                continue;
            }
            msgs[count].msg_hdr.msg_iov = iov.as_mut_ptr();
            msgs[count].msg_hdr.msg_iovlen = k;
            count += 1;
        }
        let sent = if count == 0 {
            0
        } else {
            // SAFETY: msgs[..count] point to iovecs over the headers above
            // and to segments of mbufs the batch still owns; the kernel
            // copies them before returning.
            let r = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    count as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            r.max(0) as usize
        };
        batch.clear();
        let lost = n - sent;
        if lost > 0 {
            self.tx_errors
                .fetch_add((lost - dropped) as u64, Ordering::Relaxed);
        }
        (sent, lost)
    }

    /// The interface is up and running (`IFF_RUNNING`).
    pub fn link_up(&self) -> bool {
        self.ifreq(libc::SIOCGIFFLAGS).is_some_and(|r| {
            // SAFETY: SIOCGIFFLAGS filled the flags member.
            let flags = unsafe { r.ifr_ifru.ifru_flags };
            flags as libc::c_int & libc::IFF_RUNNING != 0
        })
    }

    /// The interface's MAC address.
    pub fn mac_addr(&self) -> Option<[u8; 6]> {
        let r = self.ifreq(libc::SIOCGIFHWADDR)?;
        // SAFETY: SIOCGIFHWADDR filled the hwaddr member.
        let a = unsafe { r.ifr_ifru.ifru_hwaddr };
        Some(std::array::from_fn(|i| a.sa_data[i] as u8))
    }

    /// Sets the interface's MTU (as DPDK's af_packet PMD did for
    /// `mtu_request`), when it differs.
    pub fn set_mtu(&self, mtu: u16) -> Result<(), DpdkError> {
        // SAFETY: SIOCGIFMTU fills the mtu member.
        let now = self
            .ifreq(libc::SIOCGIFMTU)
            .map(|r| unsafe { r.ifr_ifru.ifru_mtu });
        if now == Some(libc::c_int::from(mtu)) {
            return Ok(());
        }
        let mut r = self.named_ifreq();
        r.ifr_ifru.ifru_mtu = libc::c_int::from(mtu);
        // SAFETY: a valid ifreq naming the interface, with the new MTU.
        if unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::SIOCSIFMTU, &mut r) } < 0 {
            return Err(os_err(
                "ioctl",
                &format!("SIOCSIFMTU {mtu} on {}", self.iface),
            ));
        }
        Ok(())
    }

    fn named_ifreq(&self) -> libc::ifreq {
        // SAFETY: an all-zero ifreq is valid; the name is set below.
        let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in r
            .ifr_name
            .iter_mut()
            .zip(self.iface.bytes().take(libc::IFNAMSIZ - 1))
        {
            *d = s as libc::c_char;
        }
        r
    }

    fn ifreq(&self, request: libc::c_ulong) -> Option<libc::ifreq> {
        // SAFETY: an all-zero ifreq is valid; the name is set below.
        let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in r
            .ifr_name
            .iter_mut()
            .zip(self.iface.bytes().take(libc::IFNAMSIZ - 1))
        {
            *d = s as libc::c_char;
        }
        // SAFETY: a valid ifreq for a read-only interface query.
        (unsafe { libc::ioctl(self.fd.as_raw_fd(), request, &mut r) } >= 0).then_some(r)
    }

    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }
}

impl Drop for PacketSocket {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`, unmapped once; no reader is
        // left (the port is closed only once every queue claim is gone).
        unsafe { libc::munmap(self.ring.cast(), FRAME_SIZE * FRAMES) };
    }
}

/// An `afpacket` port: its socket and the queue handles workers claim. One
/// receive queue (one ring, one reader); any number of transmit queues, all
/// sending on the one socket (the kernel serialises them).
pub struct PacketPort {
    queues: Arc<PortQueues>,
    socket: Arc<PacketSocket>,
}

impl PacketPort {
    /// Opens switch port `number` on kernel interface `iface`.
    pub fn open(
        number: PortId,
        iface: &str,
        setup: PortSetup,
        pool: &Arc<Mempool>,
    ) -> Result<PacketPort, DpdkError> {
        let socket = Arc::new(PacketSocket::open(iface)?);
        socket.set_mtu(setup.mtu)?;
        let setup = PortSetup {
            rx_queues: 1,
            ..setup
        };
        Ok(PacketPort {
            queues: Arc::new(PortQueues::new(
                number,
                Backend::Packet {
                    socket: Arc::clone(&socket),
                    pool: Arc::clone(pool),
                },
                setup,
            )),
            socket,
        })
    }

    pub fn port_id(&self) -> PortId {
        self.queues.port_id()
    }

    pub fn queues(&self) -> &Arc<PortQueues> {
        &self.queues
    }

    pub fn socket(&self) -> &PacketSocket {
        &self.socket
    }

    /// Closes the socket. Fails (and keeps the port) while a worker still
    /// holds one of its queues.
    pub fn close(self) -> Result<(), (PacketPort, DpdkError)> {
        match self.queues.check_unclaimed("close") {
            Ok(()) => Ok(()),
            Err(e) => Err((self, e)),
        }
    }
}
