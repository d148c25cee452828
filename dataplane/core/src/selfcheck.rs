//! Invariant checks over arbitrary bytes, shared by the property tests and
//! the cargo-fuzz target (`dataplane/core/fuzz`): every parser of the fast path
//! must accept or refuse any input without panicking, and the two flow-key
//! depths must agree on what they both extract.
use crate::flow_key::{FlowKey, ParseDepth, ParseError};
use crate::wire::{
    checksum, vxlan, ArpPacket, EthernetFrame, Icmpv4Packet, Icmpv6Packet, Ipv4Packet, Ipv6Packet,
    Tci, TcpPacket, UdpPacket, VlanStack, VlanTag,
};

/// `FlowKey::extract` at both depths (and `extract_l2`) on `data`.
pub fn check_flow_key(data: &[u8], rx_vlan_tci: Option<u16>) {
    let shallow = FlowKey::extract(data, rx_vlan_tci, ParseDepth::L2);
    let deep = FlowKey::extract(data, rx_vlan_tci, ParseDepth::L4);
    assert_eq!(FlowKey::extract_l2(data, rx_vlan_tci), shallow);
    // The switching header reads a subset of what the flow key does: where
    // the key parses, the header does and agrees; a header error is a key
    // error too.
    let header = crate::wire::ethernet::SwitchingHeader::parse(data, rx_vlan_tci);
    match (&header, &shallow) {
        (Ok(h), Ok(k)) => {
            assert_eq!((h.dst, h.src), (k.dl_dst, k.dl_src));
            assert_eq!(h.outer_tci, k.has_vlan.then_some(k.vlan_tci));
            let _ = (h.dst.is_reserved(), h.src.is_reserved());
        }
        (Err(_), k) => assert!(k.is_err(), "{k:?}"),
        (Ok(_), Err(_)) => {}
    }
    match (shallow, deep) {
        (Ok(s), Ok(d)) => {
            assert_eq!(
                (s.dl_dst, s.dl_src, s.vlan_tci, s.has_vlan),
                (d.dl_dst, d.dl_src, d.vlan_tci, d.has_vlan)
            );
            assert_eq!(
                (s.inner_vlan_tci, s.has_inner_vlan, s.dl_type, s.l3_offset),
                (d.inner_vlan_tci, d.has_inner_vlan, d.dl_type, d.l3_offset)
            );
            assert!(usize::from(d.l3_offset) <= data.len());
            assert!(matches!(d.ip_version, 0 | 4 | 6));
            let _ = (d.vid(), d.inner_vid(), d.nw_src_v4(), d.nw_dst_v4());
            // Connection tracking reads the same addresses, protocol and
            // ports as the flow key.
            let l3 = data.get(usize::from(d.l3_offset)..).unwrap_or_default();
            let ethertype = crate::wire::EtherType(d.dl_type);
            if let Ok(p) = crate::conntrack::CtPacket::parse(7, ethertype, l3) {
                assert!(d.ip_version != 0 && !d.is_fragment, "{d:?}");
                assert_eq!(
                    (p.key.proto, p.key.src, p.key.dst),
                    (d.nw_proto, d.nw_src, d.nw_dst)
                );
                if matches!(d.nw_proto, 6 | 17) {
                    assert_eq!((p.key.sport, p.key.dport), (d.tp_src, d.tp_dst));
                }
            }
        }
        (Ok(_), Err(e)) => assert!(matches!(e, ParseError::BadL3 | ParseError::BadL4)),
        (Err(e), deep) => assert_eq!(deep, Err(e)),
    }
}

/// Every `wire` view's `new_checked` and all its accessors on `data`.
pub fn check_views(data: &[u8]) {
    for ethertype in [crate::wire::EtherType::IPV4, crate::wire::EtherType::IPV6] {
        let _ = crate::conntrack::CtPacket::parse(0, ethertype, data);
    }
    if let Ok(f) = EthernetFrame::new_checked(data) {
        let _ = (
            f.dst_addr(),
            f.src_addr(),
            f.ethertype(),
            f.payload(),
            f.header_len(),
        );
        let _ = VlanStack::parse(f.ethertype(), f.payload(), None);
        let _ = VlanStack::parse(f.ethertype(), f.payload(), Some(Tci(1)));
    }
    if let Ok(s) = VlanStack::from_frame(data, None) {
        assert!(s.l3_offset() <= data.len());
    }
    if let Ok(t) = VlanTag::new_checked(data) {
        let _ = (
            t.tci(),
            t.vid(),
            t.pcp(),
            t.dei(),
            t.ethertype(),
            t.payload(),
        );
    }
    if let Ok(a) = ArpPacket::new_checked(data) {
        let _ = (
            a.hardware_type(),
            a.protocol_type(),
            a.op(),
            a.sha(),
            a.spa(),
        );
        let _ = (a.tha(), a.tpa(), a.payload(), a.header_len());
    }
    // A tunnel packet's inner frame lies inside it.
    for partial in [false, true] {
        if let Ok(d) = vxlan::parse_ipv4(data, vxlan::UDP_PORT, partial) {
            assert!(d.inner + d.inner_len <= data.len());
            assert!(d.vni.get() <= vxlan::Vni::MAX);
        }
    }
    if let Ok(h) = vxlan::VxlanHeader::new_checked(data) {
        let _ = (h.flags(), h.vni(), h.payload());
    }
    if let Ok(p) = Ipv4Packet::new_checked(data) {
        let _ = (
            p.version(),
            p.ihl(),
            p.header_len(),
            p.dscp(),
            p.ecn(),
            p.total_len(),
        );
        let _ = (p.ident(), p.dont_frag(), p.more_frags(), p.frag_offset());
        let _ = (
            p.is_fragment(),
            p.is_later_fragment(),
            p.ttl(),
            p.protocol(),
        );
        let _ = (p.checksum(), p.src_addr(), p.dst_addr(), p.options());
        let _ = (p.verify_checksum(), p.payload());
    }
    if let Ok(p) = Ipv6Packet::new_checked(data) {
        let _ = (
            p.version(),
            p.traffic_class(),
            p.flow_label(),
            p.payload_len(),
        );
        let _ = (
            p.next_header(),
            p.hop_limit(),
            p.src_addr(),
            p.dst_addr(),
            p.payload(),
        );
        if let Ok(upper) = p.upper_layer() {
            let _ = p.upper_layer_payload(&upper);
        }
    }
    if let Ok(t) = TcpPacket::new_checked(data) {
        let _ = (t.src_port(), t.dst_port(), t.seq_number(), t.ack_number());
        let _ = (
            t.data_offset(),
            t.header_len(),
            t.flags(),
            t.ns(),
            t.window_len(),
        );
        let _ = (t.checksum(), t.urgent_at(), t.options(), t.payload());
    }
    for u in [
        UdpPacket::new_checked(data),
        UdpPacket::new_checked_header(data),
    ]
    .into_iter()
    .flatten()
    {
        let _ = (
            u.src_port(),
            u.dst_port(),
            u.len(),
            u.is_empty(),
            u.checksum(),
        );
        let _ = (u.payload(), u.header_len());
    }
    if let Ok(i) = Icmpv4Packet::new_checked(data) {
        let _ = (
            i.msg_type(),
            i.msg_code(),
            i.checksum(),
            i.is_echo(),
            i.echo_ident(),
        );
        let _ = (i.echo_seq_no(), i.verify_checksum(), i.payload());
    }
    if let Ok(i) = Icmpv6Packet::new_checked(data) {
        let _ = (
            i.msg_type(),
            i.msg_code(),
            i.checksum(),
            i.is_echo(),
            i.echo_ident(),
        );
        let _ = (i.echo_seq_no(), i.payload());
    }
    let _ = checksum(data);
}

/// The software offloads on arbitrary bytes: nothing panics; a finished
/// checksum verifies; segments never carry more than `mss` bytes of payload
/// and together carry exactly the frame's payload.
pub fn check_offloads(data: &[u8]) {
    use crate::offload::{
        finish_checksum, l4_checksum_ok, segment_tcp, wire_len, Offload, VnetHdr,
    };
    let mut f = data.to_vec();
    if finish_checksum(&mut f) {
        assert!(l4_checksum_ok(&f), "a finished checksum verifies");
    }
    let mss = data.first().map_or(1, |&b| u16::from(b).max(1));
    let o = Offload {
        partial_checksum: true,
        tcp_mss: mss,
    };
    let _ = VnetHdr::for_frame(data, o);
    let _ = VnetHdr::parse(data).map(|h| h.offload());
    let _ = wire_len(data, data.len() as u32, o);
    let mut carried = 0usize;
    let mut hdr_len = None;
    let n = segment_tcp(data, mss, |h, p, _| {
        assert!(p.len() <= usize::from(mss));
        hdr_len = Some(h.len());
        carried += p.len();
        true
    });
    if let (Some(_), Some(h)) = (n, hdr_len) {
        assert_eq!(carried, data.len() - h, "segments carry the whole payload");
    }
}
