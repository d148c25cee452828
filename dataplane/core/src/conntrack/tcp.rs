//! TCP connection tracking: a connection's state, and whether a segment
//! belongs to it.
//!
//! The window checks follow Guido van Rooij's "Real Stateful TCP Packet
//! Filtering in IP Filter", as Linux's nf_conntrack and Open vSwitch's
//! userspace conntrack apply it. Each direction remembers the end of what it
//! sent (`end`: sequence number + length, SYN and FIN counting one), how far
//! its peer lets it send (`maxend`: the peer's highest ack plus window) and
//! its largest window (`maxwin`). A segment from `sender` to `receiver` is in
//! the window when
//!
//! 1. `seq <= sender.maxend`: nothing beyond what the receiver allowed;
//! 2. `seq + len >= sender.end - receiver.maxwin`: nothing older than a
//!    window back (retransmissions are fine);
//! 3. `ack <= receiver.end`: it acknowledges nothing not yet sent;
//! 4. `ack >= receiver.end - max(sender.maxwin, 66000)`: not a stale ack.
//!
//! A segment outside the window, or with flags no TCP sends (SYN+FIN,
//! SYN+RST, FIN without ACK, none of SYN, ACK and RST), is
//! [`Verdict::Invalid`] and changes nothing: Neutron's firewall drops
//! `ct_state=+inv`. All arithmetic is modulo 2^32.
//!
//! The state is derived from what each side has done (SYN, FIN, whether its
//! FIN was acknowledged), with the names of Linux's and OVS's TCP states.

/// TCP header flags, as on the wire (`FlowKey::tcp_flags`).
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;
}
use flags::{ACK, FIN, RST, SYN};

/// What the tracker needs of a TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    /// The window field, unscaled.
    pub window: u16,
    /// The window-scale option, on a SYN.
    pub wscale: Option<u8>,
    /// Payload bytes.
    pub len: u32,
}

impl Segment {
    fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }

    /// Sequence space the segment takes: its payload, and one each for SYN
    /// and FIN.
    fn end(&self) -> u32 {
        self.seq
            .wrapping_add(self.len)
            .wrapping_add(u32::from(self.has(SYN)))
            .wrapping_add(u32::from(self.has(FIN)))
    }

    /// Flags no TCP sends together, or a segment with none that matters.
    fn flags_invalid(&self) -> Option<&'static str> {
        let f = self.flags & (SYN | ACK | FIN | RST);
        if f & (SYN | FIN) == SYN | FIN {
            Some("SYN and FIN")
        } else if f & (SYN | RST) == SYN | RST {
            Some("SYN and RST")
        } else if f & (FIN | ACK) == FIN {
            Some("FIN without ACK")
        } else if f & (SYN | ACK | RST) == 0 {
            Some("no SYN, ACK or RST")
        } else {
            None
        }
    }
}

/// Which side of the connection a segment comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// From the side that sent the first SYN.
    Original,
    Reply,
}

impl Dir {
    fn index(self) -> usize {
        match self {
            Dir::Original => 0,
            Dir::Reply => 1,
        }
    }
}

/// A connection's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpState {
    /// The first SYN was seen.
    SynSent,
    /// The SYN was answered (SYN-ACK, or a SYN both ways).
    SynRecv,
    /// The handshake completed.
    Established,
    /// One side sent a FIN, not yet acknowledged.
    FinWait,
    /// One side's FIN was acknowledged; the other has not sent one.
    CloseWait,
    /// Both sides sent a FIN; not both are acknowledged.
    LastAck,
    /// Both FINs were acknowledged.
    TimeWait,
    /// Reset.
    Closed,
}

impl TcpState {
    /// Seconds a connection in this state lives without traffic: Open
    /// vSwitch's userspace conntrack defaults (tcp_first 30 s, tcp_opening
    /// 30 s, tcp_established 24 h, tcp_closing 15 min, tcp_fin_wait 45 s,
    /// tcp_closed 30 s).
    pub const fn default_timeout_secs(self) -> u32 {
        match self {
            TcpState::SynSent => 30,
            TcpState::SynRecv => 30,
            TcpState::Established => 24 * 3600,
            TcpState::FinWait | TcpState::CloseWait | TcpState::LastAck => 15 * 60,
            TcpState::TimeWait => 45,
            TcpState::Closed => 30,
        }
    }

    /// Replies are expected and let through (`ct_state=+est`).
    pub const fn is_established(self) -> bool {
        !matches!(self, TcpState::SynSent | TcpState::Closed)
    }
}

/// What the tracker made of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Part of the connection; the state may have moved.
    Valid,
    /// A new SYN from the original side on a closed or finished connection:
    /// the connection starts over (decide it again as new).
    Reopened,
    /// Not part of the connection (`ct_state=+inv`); nothing changed.
    Invalid(&'static str),
}

/// One direction's view of the sequence space.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Peer {
    end: u32,
    maxend: u32,
    /// 0 until this side sent something.
    maxwin: u32,
    scale: u8,
    /// This side's SYN carried a window-scale option.
    scale_offered: bool,
    syn: bool,
    /// End of this side's SYN, and whether the other side acknowledged it.
    syn_end: u32,
    syn_acked: bool,
    /// End of this side's FIN, once sent.
    fin_end: Option<u32>,
    fin_acked: bool,
}

/// Acks may lag this far behind (66000: a 64 KiB window and then some), or
/// the sender's largest window if that is larger.
const MIN_ACK_WINDOW: u32 = 66_000;

/// `a <= b` in sequence space.
fn before_eq(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) >= 0
}

/// `a > b` in sequence space.
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// A tracked TCP connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpConn {
    peers: [Peer; 2],
    reset: bool,
}

impl TcpConn {
    /// The connection `seg` opens, or why it cannot: only a SYN (without
    /// ACK) starts one. Neutron's firewall lets a reply through only on an
    /// established connection, so a connection is never picked up midway.
    pub fn new(seg: &Segment) -> Result<TcpConn, &'static str> {
        if let Some(why) = seg.flags_invalid() {
            return Err(why);
        }
        if seg.flags & (SYN | ACK | RST) != SYN {
            return Err("a connection starts with a SYN");
        }
        let mut c = TcpConn {
            peers: [Peer::default(); 2],
            reset: false,
        };
        c.init_syn(Dir::Original, seg);
        Ok(c)
    }

    pub fn state(&self) -> TcpState {
        let [o, r] = &self.peers;
        if self.reset {
            return TcpState::Closed;
        }
        if !r.syn {
            return TcpState::SynSent;
        }
        match (o.fin_end.is_some(), r.fin_end.is_some()) {
            // The original side's ACK of the SYN-ACK completes it.
            (false, false) if r.syn_acked => TcpState::Established,
            (false, false) => TcpState::SynRecv,
            (true, true) if o.fin_acked && r.fin_acked => TcpState::TimeWait,
            (true, true) => TcpState::LastAck,
            _ if o.fin_acked || r.fin_acked => TcpState::CloseWait,
            _ => TcpState::FinWait,
        }
    }

    fn init_syn(&mut self, dir: Dir, seg: &Segment) {
        let p = &mut self.peers[dir.index()];
        p.end = seg.end();
        p.maxend = seg.end();
        p.maxwin = u32::from(seg.window).max(1);
        p.syn = true;
        p.syn_end = seg.end();
        p.syn_acked = false;
        p.scale_offered = seg.wscale.is_some();
        p.scale = seg.wscale.unwrap_or(0).min(14);
        p.fin_end = None;
        p.fin_acked = false;
    }

    /// Tracks `seg`, sent by `dir`.
    pub fn update(&mut self, dir: Dir, seg: &Segment) -> Verdict {
        if let Some(why) = seg.flags_invalid() {
            return Verdict::Invalid(why);
        }
        let state = self.state();
        // A new SYN from the original side once the old connection is over.
        if dir == Dir::Original
            && seg.flags & (SYN | ACK | RST) == SYN
            && matches!(state, TcpState::TimeWait | TcpState::Closed)
        {
            *self = match TcpConn::new(seg) {
                Ok(c) => c,
                Err(why) => return Verdict::Invalid(why),
            };
            return Verdict::Reopened;
        }
        if state == TcpState::Closed {
            return Verdict::Invalid("connection reset");
        }
        let (s, r) = (dir.index(), 1 - dir.index());
        if seg.has(SYN) {
            match (dir, state) {
                // Retransmitted SYN: same sequence number.
                (Dir::Original, TcpState::SynSent | TcpState::SynRecv) => {
                    return if seg.seq.wrapping_add(1) == self.peers[s].end && !seg.has(ACK) {
                        Verdict::Valid
                    } else {
                        Verdict::Invalid("SYN does not match the connection")
                    };
                }
                // The answer to the SYN (or a retransmission of it).
                (Dir::Reply, TcpState::SynSent | TcpState::SynRecv) => {
                    if seg.has(ACK) && seg.ack != self.peers[r].end {
                        return Verdict::Invalid("SYN-ACK does not acknowledge the SYN");
                    }
                    if self.peers[s].syn && seg.end() != self.peers[s].end {
                        return Verdict::Invalid("SYN-ACK does not match the first one");
                    }
                    self.init_syn(dir, seg);
                    // RFC 7323: window scaling only if both sides offered it.
                    if !(self.peers[0].scale_offered && self.peers[1].scale_offered) {
                        self.peers[0].scale = 0;
                        self.peers[1].scale = 0;
                    }
                    if seg.has(ACK) {
                        self.ack_from(dir, seg.ack, u32::from(seg.window));
                    }
                    return Verdict::Valid;
                }
                // A SYN-ACK again once established: its ACK was lost; the
                // same SYN-ACK passes and changes nothing.
                (Dir::Reply, _)
                    if seg.has(ACK)
                        && seg.end() == self.peers[s].syn_end
                        && seg.ack == self.peers[r].syn_end =>
                {
                    return Verdict::Valid;
                }
                _ => return Verdict::Invalid("SYN on an open connection"),
            }
        }
        if !self.peers[s].syn {
            return Verdict::Invalid("nothing before the SYN-ACK");
        }
        let end = seg.end();
        let ack = if seg.has(ACK) {
            seg.ack
        } else {
            self.peers[r].end
        };
        let win = u32::from(seg.window) << self.peers[s].scale;
        let (snd, rcv) = (self.peers[s], self.peers[r]);
        let max_ack_window = snd.maxwin.max(MIN_ACK_WINDOW);
        if !before_eq(seg.seq, snd.maxend) {
            return Verdict::Invalid("beyond the receiver's window");
        }
        if !before_eq(snd.end.wrapping_sub(rcv.maxwin), end) {
            return Verdict::Invalid("older than a window");
        }
        if !before_eq(ack, rcv.end) {
            return Verdict::Invalid("acknowledges data not yet sent");
        }
        if !before_eq(rcv.end.wrapping_sub(max_ack_window), ack) {
            return Verdict::Invalid("stale acknowledgement");
        }
        if seg.has(RST) {
            self.reset = true;
            return Verdict::Valid;
        }
        // In the window: the sender moves on, its ack moves the receiver's
        // limit.
        let p = &mut self.peers[s];
        p.maxwin = p.maxwin.max(win);
        if after(end, p.end) {
            p.end = end;
        }
        if seg.has(FIN) && p.fin_end.is_none() {
            p.fin_end = Some(end);
        }
        if seg.has(ACK) {
            self.ack_from(dir, ack, win);
        }
        Verdict::Valid
    }

    /// `dir` acknowledged up to `ack` with window `win`: the other side may
    /// send up to `ack + win`; its SYN and FIN count as acknowledged once
    /// `ack` covers them.
    fn ack_from(&mut self, dir: Dir, ack: u32, win: u32) {
        let o = 1 - dir.index();
        let other = &mut self.peers[o];
        let limit = ack.wrapping_add(win.max(1));
        if after(limit, other.maxend) {
            other.maxend = limit;
        }
        if other.syn && before_eq(other.syn_end, ack) {
            other.syn_acked = true;
        }
        if let Some(fin_end) = other.fin_end {
            if before_eq(fin_end, ack) {
                other.fin_acked = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use Dir::{Original, Reply};
    use TcpState::*;

    fn seg(flags: u8, seq: u32, ack: u32, len: u32) -> Segment {
        Segment {
            flags,
            seq,
            ack,
            window: 65535,
            wscale: None,
            len,
        }
    }

    /// Handshake, data both ways, close from the client, and a new SYN.
    #[test]
    fn a_whole_connection() {
        let (c, s) = (u32::MAX - 50, 5000u32); // the client's numbers wrap
        let mut t = TcpConn::new(&seg(SYN, c, 0, 0)).unwrap();
        assert_eq!(t.state(), SynSent);
        assert_eq!(
            t.update(Original, &seg(SYN, c, 0, 0)),
            Verdict::Valid,
            "retransmitted SYN"
        );
        assert_eq!(
            t.update(Reply, &seg(SYN | ACK, s, c.wrapping_add(1), 0)),
            Verdict::Valid
        );
        assert_eq!(t.state(), SynRecv);
        let c1 = c.wrapping_add(1);
        assert_eq!(t.update(Original, &seg(ACK, c1, s + 1, 0)), Verdict::Valid);
        assert_eq!(t.state(), Established);
        assert_eq!(
            t.update(Original, &seg(ACK, c1, s + 1, 100)),
            Verdict::Valid
        );
        let c2 = c1.wrapping_add(100);
        assert_eq!(t.update(Reply, &seg(ACK, s + 1, c2, 50)), Verdict::Valid);
        assert_eq!(
            t.update(Original, &seg(ACK, c1, s + 1, 100)),
            Verdict::Valid,
            "retransmission"
        );
        assert_eq!(
            t.update(Original, &seg(FIN | ACK, c2, s + 51, 0)),
            Verdict::Valid
        );
        assert_eq!(t.state(), FinWait);
        assert_eq!(
            t.update(Reply, &seg(ACK, s + 51, c2.wrapping_add(1), 0)),
            Verdict::Valid
        );
        assert_eq!(t.state(), CloseWait);
        assert_eq!(
            t.update(Reply, &seg(FIN | ACK, s + 51, c2.wrapping_add(1), 0)),
            Verdict::Valid
        );
        assert_eq!(t.state(), LastAck);
        assert_eq!(
            t.update(Original, &seg(ACK, c2.wrapping_add(1), s + 52, 0)),
            Verdict::Valid
        );
        assert_eq!(t.state(), TimeWait);
        assert_eq!(t.update(Original, &seg(SYN, 77, 0, 0)), Verdict::Reopened);
        assert_eq!(t.state(), SynSent);
    }

    fn established() -> TcpConn {
        let mut t = TcpConn::new(&seg(SYN, 100, 0, 0)).unwrap();
        t.update(Reply, &seg(SYN | ACK, 900, 101, 0));
        t.update(Original, &seg(ACK, 101, 901, 0));
        assert_eq!(t.state(), Established);
        t
    }

    #[test]
    fn out_of_window_and_impossible_segments_change_nothing() {
        let t0 = established();
        for (dir, s, why) in [
            (
                Original,
                seg(ACK, 101 + 70_000, 901, 10),
                "beyond the receiver's window",
            ),
            (
                Original,
                seg(ACK, 101u32.wrapping_sub(200_000), 901, 10),
                "older than a window",
            ),
            (
                Original,
                seg(ACK, 101, 5000, 0),
                "acknowledges data not yet sent",
            ),
            (
                Reply,
                seg(ACK, 901, 101u32.wrapping_sub(100_000), 0),
                "stale acknowledgement",
            ),
            (Original, seg(SYN | FIN, 101, 0, 0), "SYN and FIN"),
            (Original, seg(SYN | RST, 101, 0, 0), "SYN and RST"),
            (Reply, seg(FIN, 901, 0, 0), "FIN without ACK"),
            (Reply, seg(0, 901, 0, 0), "no SYN, ACK or RST"),
            (Original, seg(SYN, 101, 0, 0), "SYN on an open connection"),
        ] {
            let mut t = t0.clone();
            assert_eq!(t.update(dir, &s), Verdict::Invalid(why), "{s:?}");
            assert_eq!(t, t0, "{why}: nothing changed");
        }
    }

    #[test]
    fn the_handshake_is_checked() {
        let mut t = TcpConn::new(&seg(SYN, 100, 0, 0)).unwrap();
        let t0 = t.clone();
        assert!(matches!(
            t.update(Reply, &seg(SYN | ACK, 900, 555, 0)),
            Verdict::Invalid(_)
        ));
        assert!(matches!(
            t.update(Reply, &seg(ACK, 900, 101, 10)),
            Verdict::Invalid(_)
        ));
        assert!(matches!(
            t.update(Original, &seg(ACK, 101, 901, 0)),
            Verdict::Invalid(_)
        ));
        assert_eq!(t, t0);
        for bad in [
            seg(SYN | ACK, 1, 1, 0),
            seg(ACK, 1, 1, 0),
            seg(RST, 1, 0, 0),
            seg(SYN | FIN, 1, 0, 0),
        ] {
            assert!(TcpConn::new(&bad).is_err(), "{bad:?} opens nothing");
        }
    }

    #[test]
    fn a_reset_in_the_window_closes_and_one_outside_does_not() {
        let mut t = established();
        assert!(matches!(
            t.update(Reply, &seg(RST, 901 + 1_000_000, 0, 0)),
            Verdict::Invalid(_)
        ));
        assert_eq!(t.state(), Established);
        assert_eq!(t.update(Reply, &seg(RST, 901, 0, 0)), Verdict::Valid);
        assert_eq!(t.state(), Closed);
        assert_eq!(
            t.update(Original, &seg(ACK, 101, 901, 5)),
            Verdict::Invalid("connection reset")
        );
        assert_eq!(t.update(Original, &seg(SYN, 4242, 0, 0)), Verdict::Reopened);
    }

    #[test]
    fn window_scaling_needs_both_sides() {
        let mut syn = seg(SYN, 100, 0, 0);
        syn.wscale = Some(7);
        let mut t = TcpConn::new(&syn).unwrap();
        let mut syn_ack = seg(SYN | ACK, 900, 101, 0);
        syn_ack.wscale = Some(7);
        t.update(Reply, &syn_ack);
        let mut ack = seg(ACK, 101, 901, 0);
        ack.window = 1000; // 128,000 bytes scaled
        assert_eq!(t.update(Original, &ack), Verdict::Valid);
        // The reply side may now send 100,000 bytes ahead.
        assert_eq!(
            t.update(Reply, &seg(ACK, 901 + 100_000, 101, 10)),
            Verdict::Valid
        );
        // Without the option on the SYN-ACK, windows are not scaled.
        let mut t = TcpConn::new(&syn).unwrap();
        t.update(Reply, &seg(SYN | ACK, 900, 101, 0));
        t.update(Original, &ack);
        assert!(matches!(
            t.update(Reply, &seg(ACK, 901 + 100_000, 101, 10)),
            Verdict::Invalid(_)
        ));
    }

    /// One TCP endpoint of the reference model: it sends in order within
    /// the window its peer advertised and acknowledges all it received.
    #[derive(Debug, Clone, Copy)]
    struct End {
        nxt: u32,
        una: u32,
        rcv_nxt: u32,
        win: u16,
    }

    #[derive(Debug, Clone)]
    enum Step {
        /// (side, payload as a share of what the window allows, 0-255).
        Data(bool, u8),
        /// The last segment of a side again.
        Retransmit(bool),
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        proptest::collection::vec(
            prop_oneof![
                4 => (any::<bool>(), any::<u8>()).prop_map(|(s, n)| Step::Data(s, n)),
                1 => any::<bool>().prop_map(Step::Retransmit),
            ],
            0..40,
        )
    }

    proptest! {
        /// Everything two well-behaved endpoints send is valid and moves the
        /// state as TCP's does, whatever the initial sequence numbers (wrap
        /// included), windows, payloads, retransmissions and who closes
        /// first; and any of their segments moved out of the window by more
        /// than a window is invalid and changes nothing.
        #[test]
        fn well_behaved_endpoints_are_tracked_and_forgeries_refused(
            isn in any::<(u32, u32)>(),
            wins in (1000u16.., 1000u16..),
            steps in steps(),
            client_closes_first in any::<bool>(),
            shift in 200_000u32..(u32::MAX / 2),
        ) {
            let mut e = [
                End { nxt: isn.0, una: isn.0, rcv_nxt: 0, win: wins.0 },
                End { nxt: isn.1, una: isn.1, rcv_nxt: 0, win: wins.1 },
            ];
            let dir = |i: usize| if i == 0 { Original } else { Reply };
            let mut last: [Option<Segment>; 2] = [None, None];
            // Sends from side i, checks it is valid, and a forged copy is not.
            let send = |t: &mut TcpConn, e: &mut [End; 2], i: usize, flags: u8, len: u32, last: &mut [Option<Segment>; 2]| -> Result<(), TestCaseError> {
                let s = Segment {
                    flags,
                    seq: e[i].nxt,
                    ack: if flags & ACK != 0 { e[i].rcv_nxt } else { 0 },
                    window: e[i].win,
                    wscale: None,
                    len,
                };
                let before = t.clone();
                // (A SYN-ACK's sequence number is the reply side's to choose.)
                if flags & SYN == 0 {
                    let mut forged = s;
                    forged.seq = s.seq.wrapping_add(shift);
                    prop_assert!(matches!(t.update(dir(i), &forged), Verdict::Invalid(_)), "{forged:?} accepted");
                    prop_assert_eq!(&*t, &before);
                }
                prop_assert_eq!(t.update(dir(i), &s), Verdict::Valid, "{:?} from {:?} in {:?}", s, dir(i), before.state());
                e[i].nxt = s.end();
                let j = 1 - i;
                e[j].rcv_nxt = s.end();
                if flags & ACK != 0 {
                    e[j].una = s.ack;
                }
                last[i] = Some(s);
                Ok(())
            };
            // Handshake.
            let syn = Segment { flags: SYN, seq: e[0].nxt, ack: 0, window: e[0].win, wscale: None, len: 0 };
            let mut t = TcpConn::new(&syn).unwrap();
            e[0].nxt = syn.end();
            e[1].rcv_nxt = syn.end();
            send(&mut t, &mut e, 1, SYN | ACK, 0, &mut last)?;
            prop_assert_eq!(t.state(), SynRecv);
            send(&mut t, &mut e, 0, ACK, 0, &mut last)?;
            prop_assert_eq!(t.state(), Established);
            for step in steps {
                match step {
                    Step::Data(side, share) => {
                        let i = usize::from(side);
                        let j = 1 - i;
                        let in_flight = e[i].nxt.wrapping_sub(e[i].una);
                        let room = u32::from(e[j].win).saturating_sub(in_flight).min(1460);
                        send(&mut t, &mut e, i, ACK, room * u32::from(share) / 255, &mut last)?;
                    }
                    Step::Retransmit(side) => {
                        let i = usize::from(side);
                        if let Some(s) = last[i] {
                            prop_assert_eq!(t.update(dir(i), &s), Verdict::Valid, "retransmitted {:?}", s);
                        }
                    }
                }
                prop_assert_eq!(t.state(), Established);
            }
            let (a, b) = if client_closes_first { (0, 1) } else { (1, 0) };
            send(&mut t, &mut e, a, FIN | ACK, 0, &mut last)?;
            prop_assert_eq!(t.state(), FinWait);
            send(&mut t, &mut e, b, ACK, 0, &mut last)?;
            prop_assert_eq!(t.state(), CloseWait);
            send(&mut t, &mut e, b, FIN | ACK, 0, &mut last)?;
            prop_assert_eq!(t.state(), LastAck);
            send(&mut t, &mut e, a, ACK, 0, &mut last)?;
            prop_assert_eq!(t.state(), TimeWait);
        }
    }
}
