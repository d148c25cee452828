//! What Open vSwitch's `ct` action tells a packet: its connection state
//! (`ct_state`), and `ct(commit)`: start tracking a connection the policy
//! allowed. Neutron's firewall is written against these: new connections go
//! through the rules and are committed if allowed; established and related
//! ones pass; invalid ones are dropped.
use super::table::{ConnCache, ConnKey, ConnState, ConnTable, CtSlot, InsertError};
use super::tcp::{Dir, Segment, TcpConn, Verdict};

/// A packet as connection tracking sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CtPacket {
    /// Its own direction's key (ICMP echo: the identifier as both ports).
    pub key: ConnKey,
    pub l4: L4,
}

/// The transport part that decides the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    Tcp(Segment),
    /// UDP, or another IP protocol tracked by addresses (and ports) alone.
    Udp,
    IcmpEchoRequest,
    IcmpEchoReply,
    /// An ICMP or ICMPv6 error; the key of the packet it quotes, as that
    /// packet was sent.
    IcmpError(ConnKey),
}

/// `ct_state` bits, as OVS names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CtState(pub u8);

impl CtState {
    pub const NEW: u8 = 0x01;
    pub const EST: u8 = 0x02;
    pub const REL: u8 = 0x04;
    pub const RPL: u8 = 0x08;
    pub const INV: u8 = 0x10;
    pub const TRK: u8 = 0x20;
    /// The bits' names in bit order, as `ct_state=+trk+new` writes them.
    pub const NAMES: [&'static str; 6] = ["new", "est", "rel", "rpl", "inv", "trk"];

    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
    const fn of(bits: u8) -> CtState {
        CtState(bits | Self::TRK)
    }
}

impl std::fmt::Display for CtState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for (i, name) in Self::NAMES.iter().enumerate() {
            if self.has(1 << i) {
                write!(f, "{}{name}", if first { "+" } else { "|+" })?;
                first = false;
            }
        }
        Ok(())
    }
}

impl ConnTable {
    /// Tracks `p` (OVS's `ct` without commit): moves its connection's state
    /// and says where the packet stands. A packet of no connection is `new`
    /// when it could open one, `invalid` otherwise (a TCP segment other
    /// than a SYN, an echo reply, an ICMP error quoting nothing tracked).
    /// A connection's packets are `new` until the other side answered, then
    /// `est`, with `rpl` on the answering side's.
    pub fn track(&self, p: &CtPacket) -> CtState {
        self.track_at(self.slot(&p.key), p)
    }

    /// [`track`](Self::track) for a packet whose key was placed (and its
    /// bucket prefetched) with the rest of its burst.
    pub fn track_at(&self, slot: CtSlot, p: &CtPacket) -> CtState {
        self.track_in(None, slot, p)
    }

    /// [`track_at`](Self::track_at) through a worker's cache of where its
    /// connections live (see [`ConnCache`]).
    pub fn track_cached(&self, cache: &mut ConnCache, slot: CtSlot, p: &CtPacket) -> CtState {
        self.track_in(Some(cache), slot, p)
    }

    fn track_in(&self, cache: Option<&mut ConnCache>, slot: CtSlot, p: &CtPacket) -> CtState {
        self.track_marked(cache, slot, p).0
    }

    /// [`track_cached`](Self::track_cached), and the connection's
    /// `ct_mark` (0 for a packet of none; for an ICMP error, its
    /// connection's).
    pub fn track_marked(
        &self,
        cache: Option<&mut ConnCache>,
        slot: CtSlot,
        p: &CtPacket,
    ) -> (CtState, u32) {
        if let L4::IcmpError(quoted) = p.l4 {
            return self.related(&quoted);
        }
        let now = self.now();
        let seen = self.find_cached(cache, slot, &p.key, |dir, c| {
            c.last_seen = now;
            (advance(dir, c, p), c.mark)
        });
        seen.unwrap_or_else(|| (untracked_state(p), 0))
    }

    /// [`peek`](Self::peek), and the connection's `ct_mark`.
    pub fn peek_marked(&self, p: &CtPacket) -> (CtState, u32) {
        if let L4::IcmpError(quoted) = p.l4 {
            return self.related(&quoted);
        }
        self.find(&p.key, |dir, c| (advance(dir, &mut c.clone(), p), c.mark))
            .unwrap_or_else(|| (untracked_state(p), 0))
    }

    /// Sets the bits of `mask` in the `ct_mark` of `key`'s connection to
    /// `value`'s; false if it is not tracked.
    pub fn set_mark(&self, key: &ConnKey, value: u32, mask: u32) -> bool {
        self.find(key, |_, c| c.mark = (c.mark & !mask) | (value & mask))
            .is_some()
    }

    /// The state `p` would get, without changing anything (for `trace`):
    /// its connection's state is moved on a copy.
    pub fn peek(&self, p: &CtPacket) -> CtState {
        self.peek_marked(p).0
    }

    /// An ICMP error quoting `quoted`: related to its connection, if any,
    /// and that connection's mark.
    fn related(&self, quoted: &ConnKey) -> (CtState, u32) {
        match self.find(quoted, |d, c| (d, c.mark)) {
            Some((Dir::Original, mark)) => (CtState::of(CtState::REL | CtState::RPL), mark),
            Some((Dir::Reply, mark)) => (CtState::of(CtState::REL), mark),
            None => (CtState::of(CtState::INV), 0),
        }
    }

    /// OVS's `ct(commit)` for a `new` packet the policy allowed: starts
    /// tracking its connection (nothing to do if another worker did first).
    pub fn commit(&self, p: &CtPacket) -> Result<(), InsertError> {
        self.commit_at(self.slot(&p.key), p)
    }

    /// [`commit`](Self::commit) for a packet whose key was placed already.
    pub fn commit_at(&self, slot: CtSlot, p: &CtPacket) -> Result<(), InsertError> {
        let state = match p.l4 {
            L4::Tcp(seg) => ConnState::Tcp(TcpConn::new(&seg).map_err(|_| InsertError::NotNew)?),
            L4::Udp => ConnState::Udp { replied: false },
            L4::IcmpEchoRequest => ConnState::Icmp { replied: false },
            // Nothing opens a connection with these: tracked or invalid.
            L4::IcmpEchoReply | L4::IcmpError(_) => return Err(InsertError::NotNew),
        };
        match self.insert_at(slot, p.key, state) {
            Err(InsertError::Exists) => Ok(()),
            r => r,
        }
    }
}

/// Moves connection `c` on with its packet `p`, seen in direction `dir`;
/// the packet's state.
fn advance(dir: Dir, c: &mut super::table::Conn, p: &CtPacket) -> CtState {
    let verdict = match (&mut c.state, p.l4) {
        (ConnState::Tcp(t), L4::Tcp(seg)) => t.update(dir, &seg),
        (ConnState::Udp { replied }, L4::Udp) => {
            *replied |= dir == Dir::Reply;
            Verdict::Valid
        }
        (ConnState::Icmp { .. }, L4::IcmpEchoRequest) if dir == Dir::Original => Verdict::Valid,
        (ConnState::Icmp { replied }, L4::IcmpEchoReply) if dir == Dir::Reply => {
            *replied = true;
            Verdict::Valid
        }
        _ => Verdict::Invalid("not this connection's kind of packet"),
    };
    match verdict {
        Verdict::Invalid(_) => CtState::of(CtState::INV),
        Verdict::Reopened => CtState::of(CtState::NEW),
        Verdict::Valid if dir == Dir::Reply => CtState::of(CtState::EST | CtState::RPL),
        Verdict::Valid if c.state.is_established() => CtState::of(CtState::EST),
        Verdict::Valid => CtState::of(CtState::NEW),
    }
}

/// The state of a packet of no tracked connection: `new` if it could open
/// one, `invalid` otherwise.
fn untracked_state(p: &CtPacket) -> CtState {
    match p.l4 {
        L4::Tcp(seg) if TcpConn::new(&seg).is_ok() => CtState::of(CtState::NEW),
        L4::Udp | L4::IcmpEchoRequest => CtState::of(CtState::NEW),
        _ => CtState::of(CtState::INV),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::table::Timeouts;
    use crate::conntrack::tcp::flags::{ACK, SYN};

    const NEW: u8 = CtState::NEW;
    const EST: u8 = CtState::EST;
    const REL: u8 = CtState::REL;
    const RPL: u8 = CtState::RPL;
    const INV: u8 = CtState::INV;

    fn key(proto: u8, sport: u16, dport: u16) -> ConnKey {
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src[..4].copy_from_slice(&[10, 0, 0, 1]);
        dst[..4].copy_from_slice(&[10, 0, 0, 2]);
        ConnKey {
            zone: 2,
            v6: false,
            proto,
            src,
            dst,
            sport,
            dport,
        }
    }

    fn st(t: &ConnTable, key: ConnKey, l4: L4) -> u8 {
        let s = t.track(&CtPacket { key, l4 });
        assert!(s.has(CtState::TRK));
        s.0 & !CtState::TRK
    }

    #[test]
    fn udp_is_new_until_answered_then_established() {
        let t = ConnTable::new(16, Timeouts::default());
        let k = key(17, 5000, 53);
        assert_eq!(st(&t, k, L4::Udp), NEW);
        assert_eq!(
            st(&t, k.reverse(), L4::Udp),
            NEW,
            "not committed: the answer is new too"
        );
        t.commit(&CtPacket {
            key: k,
            l4: L4::Udp,
        })
        .unwrap();
        assert_eq!(st(&t, k, L4::Udp), NEW, "committed, no answer yet");
        assert_eq!(st(&t, k.reverse(), L4::Udp), EST | RPL);
        assert_eq!(st(&t, k, L4::Udp), EST);
        // An ICMP error quoting the flow is related, in either direction.
        assert_eq!(st(&t, key(1, 0, 0).reverse(), L4::IcmpError(k)), REL | RPL);
        assert_eq!(st(&t, key(1, 0, 0), L4::IcmpError(k.reverse())), REL);
        assert_eq!(st(&t, key(1, 0, 0), L4::IcmpError(key(17, 1, 1))), INV);
    }

    #[test]
    fn icmp_echo() {
        let t = ConnTable::new(16, Timeouts::default());
        let k = key(1, 77, 77);
        assert_eq!(
            st(&t, k.reverse(), L4::IcmpEchoReply),
            INV,
            "a reply to nothing"
        );
        assert_eq!(st(&t, k, L4::IcmpEchoRequest), NEW);
        t.commit(&CtPacket {
            key: k,
            l4: L4::IcmpEchoRequest,
        })
        .unwrap();
        assert_eq!(st(&t, k.reverse(), L4::IcmpEchoReply), EST | RPL);
        assert_eq!(st(&t, k, L4::IcmpEchoRequest), EST);
        assert_eq!(
            st(&t, k, L4::IcmpEchoReply),
            INV,
            "a reply from the asking side"
        );
        assert_eq!(
            t.commit(&CtPacket {
                key: key(1, 5, 5),
                l4: L4::IcmpEchoReply
            }),
            Err(InsertError::NotNew)
        );
    }

    fn tcp(flags: u8, seq: u32, ack: u32) -> L4 {
        L4::Tcp(Segment {
            flags,
            seq,
            ack,
            window: 65535,
            wscale: None,
            len: 0,
        })
    }

    #[test]
    fn tcp_handshake_and_invalid_segments() {
        let t = ConnTable::new(16, Timeouts::default());
        let k = key(6, 40000, 22);
        assert_eq!(
            st(&t, k.reverse(), tcp(SYN | ACK, 9, 101)),
            INV,
            "no SYN seen"
        );
        assert_eq!(
            st(&t, k, tcp(ACK, 101, 10)),
            INV,
            "no connection to pick up"
        );
        assert_eq!(st(&t, k, tcp(SYN, 100, 0)), NEW);
        t.commit(&CtPacket {
            key: k,
            l4: tcp(SYN, 100, 0),
        })
        .unwrap();
        assert_eq!(st(&t, k.reverse(), tcp(SYN | ACK, 900, 101)), EST | RPL);
        assert_eq!(st(&t, k, tcp(ACK, 101, 901)), EST);
        assert_eq!(st(&t, k, tcp(ACK, 101 + 1_000_000, 901)), INV);
        assert_eq!(
            st(&t, k, tcp(ACK, 101, 901)),
            EST,
            "the invalid segment changed nothing"
        );
        assert_eq!(CtState::of(EST | RPL).to_string(), "+est|+rpl|+trk");
    }
}
