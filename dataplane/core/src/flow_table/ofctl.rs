//! Flows in `ovs-ofctl`'s text, both ways, so an operator's habits carry
//! over: `priority=4,in_port=1,dl_vlan=2,actions=mod_vlan_vid:3029,NORMAL`.
//!
//! [`parse_flow`] takes what `ovs-ofctl add-flow` takes (fields separated
//! by commas or spaces, `actions=` last, keywords in any case) and refuses
//! a flow whole, with the byte position of what is wrong and why: an
//! unknown field, a value out of range, a field given twice, a field whose
//! prerequisite is missing (`nw_src` without `ip` or `arp`, `tp_dst`
//! without `tcp` or `udp`), a `goto_table` that does not go forward.
//! [`format_flow`] writes a flow as `dump-flows` shows it (without the
//! counters), which [`parse_flow`] reads back to the same flow; the
//! counters `dump-flows` adds (`duration`, `n_packets`, `n_bytes`,
//! `idle_age`, `hard_age`) are read and ignored, as `ovs-ofctl` does, so a
//! dumped line can be added again unchanged.

use super::{
    mac_bits, mac_of_bits, Action, Ct, CtZone, Field, Flow, Masked, Match, PortRef, SubField,
    VlanMatch, MAX_TABLE, REGISTERS,
};
use crate::conntrack::CtState;
use crate::wire::{EtherType, EthernetAddress};
use std::fmt::Write;

/// Why a flow's text was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {at}: {why}")]
pub struct OfctlError {
    /// Byte offset in the text of the field or action at fault.
    pub at: usize,
    pub why: String,
}

fn err<T>(at: usize, why: impl Into<String>) -> Result<T, OfctlError> {
    Err(OfctlError {
        at,
        why: why.into(),
    })
}

/// A number in decimal or `0x` hex, at most `max`.
fn number(at: usize, field: &str, s: &str, max: u64) -> Result<u64, OfctlError> {
    let v = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse::<u64>(),
    };
    match v {
        Ok(v) if v <= max => Ok(v),
        Ok(_) => err(at, format!("{field}: {s} is larger than {max}")),
        Err(_) => err(at, format!("{field}: {s:?} is not a number")),
    }
}

fn mac(at: usize, field: &str, s: &str) -> Result<EthernetAddress, OfctlError> {
    s.parse()
        .or_else(|_| err(at, format!("{field}: {s:?} is not a MAC address")))
}

fn ipv4(at: usize, field: &str, s: &str) -> Result<[u8; 4], OfctlError> {
    s.parse::<std::net::Ipv4Addr>()
        .map(|a| a.octets())
        .or_else(|_| err(at, format!("{field}: {s:?} is not an IPv4 address")))
}

/// An address of `N` bytes, with a prefix length or a mask: `A`,
/// `A/len` or `A/M` (a mask has `sep` in it: '.' or ':').
fn addr_masked<const N: usize>(
    at: usize,
    field: &str,
    s: &str,
    sep: char,
    addr: fn(usize, &str, &str) -> Result<[u8; N], OfctlError>,
) -> Result<Masked<[u8; N]>, OfctlError> {
    let (v, m) = value_and_mask(s);
    let value = addr(at, field, v)?;
    let mask: [u8; N] = match m {
        None => [0xff; N],
        Some(m) if m.contains(sep) => addr(at, field, m)?,
        Some(m) => {
            let len = number(at, field, m, 8 * N as u64)? as u32;
            let bits = u128::MAX.checked_shl(128 - len).unwrap_or(0).to_be_bytes();
            std::array::from_fn(|i| bits[i])
        }
    };
    // Bits outside the mask mean nothing: kept zero, as OVS keeps them.
    let value = std::array::from_fn(|i| value[i] & mask[i]);
    Ok(Masked { value, mask })
}

fn ipv4_masked(at: usize, field: &str, s: &str) -> Result<Masked<[u8; 4]>, OfctlError> {
    addr_masked(at, field, s, '.', ipv4)
}

/// `V` and `M` of `V/M`; `V` and nothing of `V`.
fn value_and_mask(s: &str) -> (&str, Option<&str>) {
    match s.split_once('/') {
        None => (s, None),
        Some((v, m)) => (v, Some(m)),
    }
}

fn mac_masked(at: usize, field: &str, s: &str) -> Result<Masked<EthernetAddress>, OfctlError> {
    match s.split_once('/') {
        None => Ok(Masked {
            value: mac(at, field, s)?,
            mask: EthernetAddress([0xff; 6]),
        }),
        Some((v, m)) => {
            let (v, m) = (mac(at, field, v)?, mac(at, field, m)?);
            Ok(Masked {
                value: EthernetAddress(std::array::from_fn(|i| v.0[i] & m.0[i])),
                mask: m,
            })
        }
    }
}

fn u16_masked(at: usize, field: &str, s: &str) -> Result<Masked<u16>, OfctlError> {
    let (value, mask) = number_masked(at, field, s, 0xffff)?;
    Ok(Masked {
        value: value as u16,
        mask: mask as u16,
    })
}

/// `V` or `V/M`, numbers up to `max` (the mask all ones of `max` when
/// absent); the value's bits outside the mask dropped.
fn number_masked(at: usize, field: &str, s: &str, max: u64) -> Result<(u64, u64), OfctlError> {
    let (v, m) = value_and_mask(s);
    let mask = match m {
        None => max,
        Some(m) => number(at, field, m, max)?,
    };
    Ok((number(at, field, v, max)? & mask, mask))
}

fn ipv6(at: usize, field: &str, s: &str) -> Result<[u8; 16], OfctlError> {
    s.parse::<std::net::Ipv6Addr>()
        .map(|a| a.octets())
        .or_else(|_| err(at, format!("{field}: {s:?} is not an IPv6 address")))
}

fn ipv6_masked(at: usize, field: &str, s: &str) -> Result<Masked<[u8; 16]>, OfctlError> {
    addr_masked(at, field, s, ':', ipv6)
}

/// TCP flag names in bit order, as `ovs-ofctl` writes them.
const TCP_FLAGS: [&str; 8] = ["fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr"];

/// Flags as `+name-name...` (these set, those clear, the rest any) or
/// `V/M`: (value, mask), the mask at most `max` (and, for names, their
/// bits: `names[i]` is bit i).
fn flags(
    at: usize,
    field: &str,
    s: &str,
    names: &[&str],
    max: u64,
) -> Result<(u64, u64), OfctlError> {
    if !s.starts_with(['+', '-']) {
        return number_masked(at, field, s, max);
    }
    let (mut value, mut mask) = (0u64, 0u64);
    let mut rest = s;
    while let Some(sign) = rest.chars().next() {
        let body = &rest[1..];
        let end = body.find(['+', '-']).unwrap_or(body.len());
        let name = body[..end].to_ascii_lowercase();
        let Some(bit) = names.iter().position(|f| *f == name) else {
            return err(
                at,
                format!("{field}: unknown flag {name:?} ({})", names.join(", ")),
            );
        };
        let bit = 1u64 << bit;
        if mask & bit != 0 {
            return err(at, format!("{field}: {name} is given twice"));
        }
        mask |= bit;
        if sign == '+' {
            value |= bit;
        }
        rest = &body[end..];
    }
    Ok((value, mask))
}

/// `tcp_flags=+syn-ack` or `tcp_flags=0x012/0x012`. Only the eight flags
/// FIN..CWR: the NS bit and the reserved ones are not in the key.
fn tcp_flags(at: usize, s: &str) -> Result<Masked<u16>, OfctlError> {
    let (value, mask) = flags(at, "tcp_flags", s, &TCP_FLAGS, 0xfff)?;
    if mask > 0xff {
        return err(
            at,
            "tcp_flags: only FIN to CWR (0x001-0x080) can be matched (not NS or the reserved bits)",
        );
    }
    Ok(Masked {
        value: value as u16,
        mask: mask as u16,
    })
}

/// The field `load`, `set_field` and `move` name, by its OXM/NXM or
/// `ovs-ofctl` name (any case).
fn field_named(name: &str) -> Option<Field> {
    let n = name.to_ascii_lowercase();
    for prefix in ["nxm_nx_reg", "reg"] {
        if let Some(r) = n.strip_prefix(prefix) {
            return r
                .parse::<u8>()
                .ok()
                .filter(|&r| usize::from(r) < REGISTERS)
                .map(Field::Reg);
        }
    }
    Some(match n.as_str() {
        "metadata" | "oxm_of_metadata" => Field::Metadata,
        "eth_src" | "dl_src" | "nxm_of_eth_src" => Field::EthSrc,
        "eth_dst" | "dl_dst" | "nxm_of_eth_dst" => Field::EthDst,
        "vlan_tci" | "nxm_of_vlan_tci" => Field::VlanTci,
        "vlan_vid" | "oxm_of_vlan_vid" => Field::VlanVid,
        "vlan_pcp" | "dl_vlan_pcp" | "oxm_of_vlan_pcp" => Field::VlanPcp,
        "eth_type" | "dl_type" | "nxm_of_eth_type" => Field::EthType,
        "in_port" | "nxm_of_in_port" => Field::InPort,
        "ip_src" | "nw_src" | "nxm_of_ip_src" => Field::IpSrc,
        "ip_dst" | "nw_dst" | "nxm_of_ip_dst" => Field::IpDst,
        "nw_tos" | "nxm_of_ip_tos" => Field::IpTos,
        "ip_dscp" | "oxm_of_ip_dscp" => Field::IpDscp,
        "nw_ttl" | "nxm_nx_ip_ttl" => Field::IpTtl,
        "ip_proto" | "nw_proto" | "nxm_of_ip_proto" => Field::IpProto,
        "tcp_src" | "udp_src" | "tp_src" | "nxm_of_tcp_src" | "nxm_of_udp_src" => Field::TpSrc,
        "tcp_dst" | "udp_dst" | "tp_dst" | "nxm_of_tcp_dst" | "nxm_of_udp_dst" => Field::TpDst,
        "ct_state" | "nxm_nx_ct_state" => Field::CtState,
        "ct_zone" | "nxm_nx_ct_zone" => Field::CtZone,
        "ct_mark" | "nxm_nx_ct_mark" => Field::CtMark,
        _ => return None,
    })
}

/// A field's NXM/OXM name, as `load` and `move` print it.
fn nxm_name(f: Field) -> String {
    match f {
        Field::Reg(r) => format!("NXM_NX_REG{r}"),
        Field::Metadata => "OXM_OF_METADATA".into(),
        Field::EthSrc => "NXM_OF_ETH_SRC".into(),
        Field::EthDst => "NXM_OF_ETH_DST".into(),
        Field::VlanTci => "NXM_OF_VLAN_TCI".into(),
        Field::VlanVid => "OXM_OF_VLAN_VID".into(),
        Field::VlanPcp => "OXM_OF_VLAN_PCP".into(),
        Field::EthType => "NXM_OF_ETH_TYPE".into(),
        Field::InPort => "NXM_OF_IN_PORT".into(),
        Field::IpSrc => "NXM_OF_IP_SRC".into(),
        Field::IpDst => "NXM_OF_IP_DST".into(),
        Field::IpTos => "NXM_OF_IP_TOS".into(),
        Field::IpDscp => "OXM_OF_IP_DSCP".into(),
        Field::IpTtl => "NXM_NX_IP_TTL".into(),
        Field::IpProto => "NXM_OF_IP_PROTO".into(),
        Field::TpSrc => "NXM_OF_TCP_SRC".into(),
        Field::TpDst => "NXM_OF_TCP_DST".into(),
        Field::CtState => "NXM_NX_CT_STATE".into(),
        Field::CtZone => "NXM_NX_CT_ZONE".into(),
        Field::CtMark => "NXM_NX_CT_MARK".into(),
    }
}

/// A field's name as `set_field` prints it.
fn field_name(f: Field) -> String {
    match f {
        Field::Reg(r) => format!("reg{r}"),
        Field::Metadata => "metadata".into(),
        Field::EthSrc => "eth_src".into(),
        Field::EthDst => "eth_dst".into(),
        Field::VlanTci => "vlan_tci".into(),
        Field::VlanVid => "vlan_vid".into(),
        Field::VlanPcp => "vlan_pcp".into(),
        Field::EthType => "eth_type".into(),
        Field::InPort => "in_port".into(),
        Field::IpSrc => "ip_src".into(),
        Field::IpDst => "ip_dst".into(),
        Field::IpTos => "nw_tos".into(),
        Field::IpDscp => "ip_dscp".into(),
        Field::IpTtl => "nw_ttl".into(),
        Field::IpProto => "ip_proto".into(),
        Field::TpSrc => "tcp_src".into(),
        Field::TpDst => "tcp_dst".into(),
        Field::CtState => "ct_state".into(),
        Field::CtZone => "ct_zone".into(),
        Field::CtMark => "ct_mark".into(),
    }
}

/// `FIELD`, `FIELD[]`, `FIELD[i]` or `FIELD[i..j]` (bits i to j).
fn subfield(at: usize, s: &str) -> Result<SubField, OfctlError> {
    let (name, range) = match s.split_once('[') {
        None => (s, None),
        Some((n, r)) => match r.strip_suffix(']') {
            Some(r) => (n, Some(r)),
            None => return err(at, format!("{s:?}: a bit range ends with ]")),
        },
    };
    let Some(field) = field_named(name) else {
        return err(at, format!("unknown field {name:?}"));
    };
    let bits = u64::from(field.bits());
    let (ofs, end) = match range {
        None | Some("") => (0, bits - 1),
        Some(r) => match r.split_once("..") {
            Some((a, b)) => (number(at, name, a, 63)?, number(at, name, b, 63)?),
            None => {
                let i = number(at, name, r, 63)?;
                (i, i)
            }
        },
    };
    if end < ofs || end >= bits {
        return err(
            at,
            format!("{s}: bits {ofs}..{end} are not within {name}'s {bits}"),
        );
    }
    Ok(SubField {
        field,
        ofs: ofs as u8,
        n_bits: (end - ofs + 1) as u8,
    })
}

/// `load:VALUE->DST`.
fn parse_load(at: usize, arg: &str) -> Result<Action, OfctlError> {
    let Some((v, d)) = arg.split_once("->") else {
        return err(at, "load: write load:VALUE->FIELD[BITS]");
    };
    let dst = writable(at, subfield(at, d)?)?;
    let value = number(at, "load", v, u64::MAX)?;
    if dst.n_bits < 64 && value >> dst.n_bits != 0 {
        return err(at, format!("load: {v} does not fit in {} bits", dst.n_bits));
    }
    Ok(Action::Load { value, dst })
}

/// A destination an action may write (not in_port, dl_type or
/// nw_proto; of nw_tos only the DSCP bits).
fn writable(at: usize, d: SubField) -> Result<SubField, OfctlError> {
    if !d.field.writable() {
        return err(at, format!("{} cannot be written", field_name(d.field)));
    }
    if d.field == Field::IpTos && d.mask() & 3 != 0 {
        return err(
            at,
            "nw_tos: only its DSCP bits (0xfc) can be written; ip_dscp names them",
        );
    }
    Ok(d)
}

/// `set_field:VALUE[/MASK]->FIELD`, the value in the field's own form.
fn parse_set_field(at: usize, arg: &str) -> Result<Action, OfctlError> {
    let Some((v, f)) = arg.rsplit_once("->") else {
        return err(at, "set_field: write set_field:VALUE->FIELD");
    };
    let Some(field) = field_named(f) else {
        return err(at, format!("set_field: unknown field {f:?}"));
    };
    let name = field_name(field);
    if !field.writable() {
        return err(at, format!("{name} cannot be written"));
    }
    let whole = SubField::whole(field).mask();
    let (value, mask) = match field {
        Field::EthSrc | Field::EthDst => {
            let m = mac_masked(at, &name, v)?;
            (mac_bits(m.value), mac_bits(m.mask))
        }
        Field::IpSrc | Field::IpDst => {
            let m = ipv4_masked(at, &name, v)?;
            (
                u64::from(u32::from_be_bytes(m.value)),
                u64::from(u32::from_be_bytes(m.mask)),
            )
        }
        _ => number_masked(at, &name, v, whole)?,
    };
    if field == Field::IpTos && mask & 3 != 0 && value & 3 != 0 {
        return err(
            at,
            "nw_tos: only its DSCP bits (a multiple of 4) can be written",
        );
    }
    let mask = if field == Field::IpTos {
        mask & 0xfc
    } else {
        mask
    };
    Ok(Action::SetField { field, value, mask })
}

/// `move:SRC->DST`, both as wide.
fn parse_move(at: usize, arg: &str) -> Result<Action, OfctlError> {
    let Some((a, b)) = arg.split_once("->") else {
        return err(at, "move: write move:SRC[BITS]->DST[BITS]");
    };
    let (src, dst) = (subfield(at, a)?, writable(at, subfield(at, b)?)?);
    if src.n_bits != dst.n_bits {
        return err(
            at,
            format!(
                "move: {a}->{b}: source field is {} bits wide but destination is {} bits wide",
                src.n_bits, dst.n_bits
            ),
        );
    }
    Ok(Action::Move { src, dst })
}

/// A subfield as `load` and `move` print it.
fn format_subfield(d: &SubField) -> String {
    let name = nxm_name(d.field);
    if d.ofs == 0 && d.n_bits == d.field.bits() {
        format!("{name}[]")
    } else if d.n_bits == 1 {
        format!("{name}[{}]", d.ofs)
    } else {
        format!("{name}[{}..{}]", d.ofs, d.ofs + d.n_bits - 1)
    }
}

/// A `set_field` value (and mask, when not the whole field) in the
/// field's own form.
fn format_set_field(field: Field, value: u64, mask: u64) -> String {
    let whole = SubField::whole(field).mask();
    let full = mask == whole || (field == Field::IpTos && mask == 0xfc);
    let one = |v: u64| match field {
        Field::EthSrc | Field::EthDst => mac_of_bits(v).to_string(),
        Field::IpSrc | Field::IpDst => std::net::Ipv4Addr::from(v as u32).to_string(),
        Field::Reg(_) | Field::Metadata => format!("{v:#x}"),
        _ => v.to_string(),
    };
    if full {
        one(value)
    } else {
        format!("{}/{}", one(value), one(mask))
    }
}

/// `ct_state=+trk+new-est` or `ct_state=0x21/0x21`.
fn ct_state_flags(at: usize, s: &str) -> Result<Masked<u8>, OfctlError> {
    let (value, mask) = flags(at, "ct_state", s, &CtState::NAMES, 0xff)?;
    if mask > 0x3f {
        return err(
            at,
            "ct_state: only new, est, rel, rpl, inv and trk (0x01-0x20)",
        );
    }
    Ok(Masked {
        value: value as u8,
        mask: mask as u8,
    })
}

/// The inside of `ct(...)`: `commit`, `table=N`, `zone=N` or
/// `zone=FIELD[16 bits]`, `exec(...)` setting `ct_mark`.
fn parse_ct(at: usize, inner: &str) -> Result<Action, OfctlError> {
    let mut ct = Ct {
        commit: false,
        table: None,
        zone: CtZone::Value(0),
        mark: None,
    };
    for (_, arg) in pieces(inner, 0) {
        let lower = arg.to_ascii_lowercase();
        if lower == "commit" {
            ct.commit = true;
        } else if let Some(t) = lower.strip_prefix("table=") {
            ct.table = Some(number(at, "ct table", t, u64::from(MAX_TABLE))? as u8);
        } else if let Some(z) = arg.get(5..).filter(|_| lower.starts_with("zone=")) {
            ct.zone = if z.starts_with(|c: char| c.is_ascii_digit()) {
                CtZone::Value(number(at, "ct zone", z, 0xffff)? as u16)
            } else {
                let f = subfield(at, z)?;
                if f.n_bits != 16 {
                    return err(at, format!("ct: zone={z} is {} bits, a zone 16", f.n_bits));
                }
                CtZone::Field(f)
            };
        } else if let Some(body) = arg
            .get(5..arg.len().saturating_sub(1))
            .filter(|_| lower.starts_with("exec(") && lower.ends_with(')'))
        {
            for (_, a) in pieces(body, 0) {
                let l = a.to_ascii_lowercase();
                let mark = if let Some(x) = a.get(5..).filter(|_| l.starts_with("load:")) {
                    let Some((v, d)) = x.split_once("->") else {
                        return err(at, "ct exec: write load:VALUE->NXM_NX_CT_MARK[BITS]");
                    };
                    let d = subfield(at, d)?;
                    let v = number(at, "load", v, u64::MAX)?;
                    if d.field != Field::CtMark || v >> d.n_bits != 0 {
                        return err(at, "ct exec: only a load into ct_mark (that fits)");
                    }
                    Masked {
                        value: d.place(v) as u32,
                        mask: d.mask() as u32,
                    }
                } else if let Some(x) = a.get(10..).filter(|_| l.starts_with("set_field:")) {
                    match x.rsplit_once("->") {
                        Some((v, f)) if field_named(f) == Some(Field::CtMark) => {
                            let (v, m) = number_masked(at, "ct_mark", v, u64::from(u32::MAX))?;
                            Masked {
                                value: v as u32,
                                mask: m as u32,
                            }
                        }
                        _ => return err(at, "ct exec: only set_field:VALUE->ct_mark"),
                    }
                } else {
                    return err(
                        at,
                        format!("ct exec: {a:?} (only setting ct_mark is supported)"),
                    );
                };
                ct.mark = Some(mark);
            }
        } else {
            return err(
                at,
                format!("ct: {arg:?} is not supported (commit, table=, zone=, exec(...))"),
            );
        }
    }
    if ct.mark.is_some() && !ct.commit {
        return err(at, "ct: exec(...) needs commit");
    }
    Ok(Action::Ct(ct))
}

/// `ct(...)` as `ovs-ofctl` writes it.
fn format_ct(out: &mut String, ct: &Ct) {
    let mut parts: Vec<String> = Vec::new();
    if ct.commit {
        parts.push("commit".into());
    }
    if let Some(t) = ct.table {
        parts.push(format!("table={t}"));
    }
    match ct.zone {
        CtZone::Value(0) => {}
        CtZone::Value(z) => parts.push(format!("zone={z}")),
        CtZone::Field(f) => parts.push(format!("zone={}", format_subfield(&f))),
    }
    match ct.mark {
        Some(m) if m.mask == u32::MAX && m.value == 0 => {
            parts.push("exec(load:0->NXM_NX_CT_MARK[])".into())
        }
        Some(m) if m.mask == u32::MAX => {
            parts.push(format!("exec(load:{:#x}->NXM_NX_CT_MARK[])", m.value))
        }
        Some(m) => parts.push(format!(
            "exec(set_field:{:#x}/{:#x}->ct_mark)",
            m.value, m.mask
        )),
        None => {}
    }
    write!(out, "ct({})", parts.join(",")).ok();
}

fn port(s: &str) -> PortRef {
    match s.parse::<u16>() {
        Ok(n) => PortRef::Number(n),
        Err(_) => PortRef::Name(s.to_owned()),
    }
}

/// Sets `slot` once; a second time is an error naming `field`.
fn once<T>(slot: &mut Option<T>, at: usize, field: &str, v: T) -> Result<(), OfctlError> {
    if slot.is_some() {
        return err(at, format!("{field} is given twice"));
    }
    *slot = Some(v);
    Ok(())
}

/// Splits `s` (starting at byte `base` of the whole text) at commas and
/// whitespace outside parentheses: (offset, piece) of each non-empty piece.
fn pieces(s: &str, base: usize) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' | ' ' | '\t' if depth <= 0 => {
                if i > start {
                    out.push((base + start, &s[start..i]));
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    if s.len() > start {
        out.push((base + start, &s[start..]));
    }
    out
}

/// What selects flows in `del-flows`, `dump-flows` and `mod-flows`: a
/// match, and the table, priority and cookie when given (absent: any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pattern {
    pub table: Option<u8>,
    pub priority: Option<u16>,
    /// `cookie=V/M`: the cookie's bits under M equal V's.
    pub cookie: Option<(u64, u64)>,
    pub m: Match,
}

impl Pattern {
    /// Whether the pattern selects `f`. Strict (`--strict`): the same
    /// match and priority (the default priority when none is given).
    /// Otherwise every field of the pattern must be in `f`'s match, as
    /// narrow or narrower and agreeing on the pattern's bits (a pattern
    /// without fields selects every flow), as OpenFlow's non-strict
    /// modify and delete do. Table and cookie, when given, select too.
    pub fn selects(&self, f: &Flow, strict: bool) -> bool {
        if self.table.is_some_and(|t| t != f.table)
            || self.cookie.is_some_and(|(v, m)| f.cookie & m != v)
        {
            return false;
        }
        if strict {
            return f.priority == self.priority.unwrap_or(super::DEFAULT_PRIORITY) && f.m == self.m;
        }
        fn exact<T: PartialEq>(p: &Option<T>, f: &Option<T>) -> bool {
            p.as_ref().is_none_or(|p| f.as_ref() == Some(p))
        }
        fn masked<const N: usize>(
            p: Option<([u8; N], [u8; N])>,
            f: Option<([u8; N], [u8; N])>,
        ) -> bool {
            match (p, f) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some((pv, pm)), Some((fv, fm))) => {
                    (0..N).all(|i| fm[i] & pm[i] == pm[i] && fv[i] & pm[i] == pv[i] & pm[i])
                }
            }
        }
        let mac = |m: &Option<Masked<EthernetAddress>>| m.map(|m| (m.value.0, m.mask.0));
        let tp = |m: &Option<Masked<u16>>| m.map(|m| (m.value.to_be_bytes(), m.mask.to_be_bytes()));
        let tci = tp;
        let ip = |m: &Option<Masked<[u8; 4]>>| m.map(|m| (m.value, m.mask));
        let ip6 = |m: &Option<Masked<[u8; 16]>>| m.map(|m| (m.value, m.mask));
        let byte = |m: &Option<Masked<u8>>| m.map(|m| ([m.value], [m.mask]));
        let word =
            |m: &Option<Masked<u32>>| m.map(|m| (m.value.to_be_bytes(), m.mask.to_be_bytes()));
        let long =
            |m: &Option<Masked<u64>>| m.map(|m| (m.value.to_be_bytes(), m.mask.to_be_bytes()));
        let (p, q) = (&self.m, &f.m);
        let extra = masked(byte(&p.nw_tos), byte(&q.nw_tos))
            && exact(&p.nw_ttl, &q.nw_ttl)
            && masked(tp(&p.tcp_flags), tp(&q.tcp_flags))
            && masked(mac(&p.arp_sha), mac(&q.arp_sha))
            && masked(mac(&p.arp_tha), mac(&q.arp_tha))
            && masked(ip6(&p.ipv6_src), ip6(&q.ipv6_src))
            && masked(ip6(&p.ipv6_dst), ip6(&q.ipv6_dst))
            && masked(word(&p.ipv6_label), word(&q.ipv6_label))
            && masked(ip6(&p.nd_target), ip6(&q.nd_target))
            && masked(long(&p.metadata), long(&q.metadata))
            && p.regs
                .iter()
                .zip(&q.regs)
                .all(|(a, b)| masked(word(a), word(b)));
        exact(&p.in_port, &q.in_port)
            && exact(&p.dl_vlan, &q.dl_vlan)
            && exact(&p.dl_vlan_pcp, &q.dl_vlan_pcp)
            && masked(tci(&p.vlan_tci), tci(&q.vlan_tci))
            && exact(&p.dl_type, &q.dl_type)
            && exact(&p.nw_proto, &q.nw_proto)
            && masked(mac(&p.dl_src), mac(&q.dl_src))
            && masked(mac(&p.dl_dst), mac(&q.dl_dst))
            && masked(ip(&p.nw_src), ip(&q.nw_src))
            && masked(ip(&p.nw_dst), ip(&q.nw_dst))
            && masked(tp(&p.tp_src), tp(&q.tp_src))
            && masked(tp(&p.tp_dst), tp(&q.tp_dst))
            && extra
    }
}

/// The fields before `actions=`, read.
struct Head {
    pattern: Pattern,
    idle: Option<u16>,
    hard: Option<u16>,
    /// Where `cookie` was given with a mask (which only a pattern takes).
    cookie_mask_at: Option<usize>,
}

/// Where `actions=` (or `action=`) starts, and where its value does.
fn actions_at(text: &str) -> Option<(usize, usize)> {
    let lower = text.to_ascii_lowercase();
    let i = lower.find("actions=").or_else(|| lower.find("action="))?;
    let eq = text[i..].find('=').map_or(i, |e| i + e + 1);
    Some((i, eq))
}

/// Reads one flow in `ovs-ofctl add-flow`'s syntax.
pub fn parse_flow(text: &str) -> Result<Flow, OfctlError> {
    let Some((head_end, eq)) = actions_at(text) else {
        return err(
            text.len(),
            "no actions= (a flow needs actions=, or actions=drop)",
        );
    };
    let h = parse_head(&text[..head_end])?;
    if let Some(at) = h.cookie_mask_at {
        return err(at, "cookie: a mask selects flows; a new flow takes a value");
    }
    let p = h.pattern;
    let table = p.table.unwrap_or(0);
    let actions = parse_actions(&text[eq..], eq, table, is_ip(&p.m))?;
    Ok(Flow {
        table,
        priority: p.priority.unwrap_or(super::DEFAULT_PRIORITY),
        cookie: p.cookie.map_or(0, |(v, _)| v),
        idle_timeout: h.idle.unwrap_or(0),
        hard_timeout: h.hard.unwrap_or(0),
        m: p.m,
        actions,
    })
}

/// Reads what `del-flows` and `dump-flows` take: fields as in a flow,
/// without actions.
pub fn parse_pattern(text: &str) -> Result<Pattern, OfctlError> {
    if let Some((at, _)) = actions_at(text) {
        return err(at, "actions= has no place here");
    }
    Ok(parse_head(text)?.pattern)
}

/// Reads what `mod-flows` takes: the flows to change (a pattern) and the
/// actions they get.
pub fn parse_flow_mod(text: &str) -> Result<(Pattern, Vec<Action>), OfctlError> {
    let Some((head_end, eq)) = actions_at(text) else {
        return err(text.len(), "no actions= (the actions the flows get)");
    };
    let p = parse_head(&text[..head_end])?.pattern;
    let actions = parse_actions(&text[eq..], eq, p.table.unwrap_or(0), is_ip(&p.m))?;
    Ok((p, actions))
}

fn parse_head(head: &str) -> Result<Head, OfctlError> {
    let mut m = Match::default();
    let (mut table, mut priority, mut cookie) = (None, None, None);
    let mut cookie_mask_at = None;
    let (mut idle, mut hard) = (None, None);
    // Where the fields with prerequisites were given (for the error).
    let (mut nw_at, mut proto_at, mut tp_at) = (None, None, None);
    // Where icmp_type or icmp_code was given (they need icmp or icmp6).
    let mut icmp_at = None;
    let mut vlan_tci_at = None;
    // Where fields needing ip/ipv6, tcp, arp, ipv6, or ND were given.
    let (mut l3_at, mut tcp_at, mut arp_at, mut v6_at, mut nd_at) = (None, None, None, None, None);
    for (at, piece) in pieces(head, 0) {
        let (key, value) = match piece.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
            None => (piece.to_ascii_lowercase(), None),
        };
        let need = || match value {
            Some(v) if !v.is_empty() => Ok(v),
            _ => err(at, format!("{key} needs a value")),
        };
        let proto: Option<(u16, Option<u8>)> = match key.as_str() {
            "ip" => Some((0x0800, None)),
            "tcp" => Some((0x0800, Some(6))),
            "udp" => Some((0x0800, Some(17))),
            "icmp" => Some((0x0800, Some(1))),
            "arp" => Some((0x0806, None)),
            "ipv6" => Some((0x86dd, None)),
            "tcp6" => Some((0x86dd, Some(6))),
            "udp6" => Some((0x86dd, Some(17))),
            "icmp6" => Some((0x86dd, Some(58))),
            _ => None,
        };
        if let Some((t, p)) = proto {
            if value.is_some() {
                return err(at, format!("{key} takes no value"));
            }
            once(&mut m.dl_type, at, "dl_type", t)?;
            if let Some(p) = p {
                once(&mut m.nw_proto, at, "nw_proto", p)?;
            }
            if p.is_some() {
                proto_at.get_or_insert(at);
            }
            continue;
        }
        match key.as_str() {
            "table" => {
                let v = number(at, "table", need()?, u64::from(MAX_TABLE))?;
                once(&mut table, at, "table", v as u8)?;
            }
            "priority" => {
                let v = number(at, "priority", need()?, 0xffff)?;
                once(&mut priority, at, "priority", v as u16)?;
            }
            "cookie" => {
                let v = need()?;
                let (v, mask) = match v.split_once('/') {
                    Some((v, m)) => {
                        cookie_mask_at = Some(at);
                        let m = if m == "-1" {
                            u64::MAX
                        } else {
                            number(at, "cookie", m, u64::MAX)?
                        };
                        (v, m)
                    }
                    None => (v, u64::MAX),
                };
                let v = number(at, "cookie", v, u64::MAX)?;
                once(&mut cookie, at, "cookie", (v & mask, mask))?;
            }
            "idle_timeout" => {
                let v = number(at, "idle_timeout", need()?, 0xffff)?;
                once(&mut idle, at, "idle_timeout", v as u16)?;
            }
            "hard_timeout" => {
                let v = number(at, "hard_timeout", need()?, 0xffff)?;
                once(&mut hard, at, "hard_timeout", v as u16)?;
            }
            // What dump-flows adds: read and ignored, as ovs-ofctl does.
            "duration" | "n_packets" | "n_bytes" | "idle_age" | "hard_age" => {}
            "in_port" => once(&mut m.in_port, at, "in_port", port(need()?))?,
            "dl_src" => once(
                &mut m.dl_src,
                at,
                "dl_src",
                mac_masked(at, "dl_src", need()?)?,
            )?,
            "dl_dst" => once(
                &mut m.dl_dst,
                at,
                "dl_dst",
                mac_masked(at, "dl_dst", need()?)?,
            )?,
            "dl_vlan" => {
                let v = number(at, "dl_vlan", need()?, 0xffff)?;
                let vm = match v {
                    0xffff => VlanMatch::None,
                    0..=4095 => VlanMatch::Vid(v as u16),
                    _ => {
                        return err(
                            at,
                            format!("dl_vlan: {v} is not a VLAN id (0-4095, or 0xffff for none)"),
                        )
                    }
                };
                once(&mut m.dl_vlan, at, "dl_vlan", vm)?;
            }
            "dl_vlan_pcp" => {
                let v = number(at, "dl_vlan_pcp", need()?, 7)?;
                once(&mut m.dl_vlan_pcp, at, "dl_vlan_pcp", v as u8)?;
            }
            "vlan_tci" => {
                vlan_tci_at.get_or_insert(at);
                once(
                    &mut m.vlan_tci,
                    at,
                    "vlan_tci",
                    u16_masked(at, "vlan_tci", need()?)?,
                )?
            }
            "dl_type" => {
                let v = number(at, "dl_type", need()?, 0xffff)?;
                once(&mut m.dl_type, at, "dl_type", v as u16)?;
            }
            "nw_src" | "arp_spa" => {
                nw_at.get_or_insert(at);
                once(&mut m.nw_src, at, "nw_src", ipv4_masked(at, &key, need()?)?)?
            }
            "nw_dst" | "arp_tpa" => {
                nw_at.get_or_insert(at);
                once(&mut m.nw_dst, at, "nw_dst", ipv4_masked(at, &key, need()?)?)?
            }
            "nw_proto" | "arp_op" => {
                proto_at.get_or_insert(at);
                let v = number(at, &key, need()?, 0xff)?;
                once(&mut m.nw_proto, at, "nw_proto", v as u8)?;
            }
            "tp_src" | "tcp_src" | "udp_src" => {
                tp_at.get_or_insert(at);
                once(&mut m.tp_src, at, "tp_src", u16_masked(at, &key, need()?)?)?
            }
            "tp_dst" | "tcp_dst" | "udp_dst" => {
                tp_at.get_or_insert(at);
                once(&mut m.tp_dst, at, "tp_dst", u16_masked(at, &key, need()?)?)?
            }
            // ICMP's type and code sit where the ports are, as in OVS.
            "icmp_type" | "icmpv6_type" | "icmp_code" | "icmpv6_code" => {
                icmp_at.get_or_insert(at);
                let exact = Masked {
                    value: number(at, &key, need()?, 0xff)? as u16,
                    mask: 0xffff,
                };
                let (slot, field) = if key.ends_with("type") {
                    (&mut m.tp_src, "icmp_type")
                } else {
                    (&mut m.tp_dst, "icmp_code")
                };
                once(slot, at, field, exact)?
            }
            "nw_tos" | "ip_dscp" | "nw_ecn" | "ip_ecn" => {
                l3_at.get_or_insert(at);
                // DSCP and ECN share the TOS byte; OVS keeps nw_tos's
                // DSCP bits only.
                let (bits, v) = match key.as_str() {
                    "nw_tos" => (0xfc, number(at, &key, need()?, 0xff)? as u8 & 0xfc),
                    "ip_dscp" => (0xfc, (number(at, &key, need()?, 63)? as u8) << 2),
                    _ => (0x03, number(at, &key, need()?, 3)? as u8),
                };
                let t = m.nw_tos.get_or_insert(Masked { value: 0, mask: 0 });
                if t.mask & bits != 0 {
                    return err(at, format!("{key}: the TOS bits are given twice"));
                }
                t.value |= v;
                t.mask |= bits;
            }
            "nw_ttl" => {
                l3_at.get_or_insert(at);
                let v = number(at, &key, need()?, 0xff)? as u8;
                once(&mut m.nw_ttl, at, "nw_ttl", v)?;
            }
            "tcp_flags" => {
                tcp_at.get_or_insert(at);
                once(&mut m.tcp_flags, at, "tcp_flags", tcp_flags(at, need()?)?)?;
            }
            "arp_sha" | "arp_tha" => {
                arp_at.get_or_insert(at);
                let v = mac_masked(at, &key, need()?)?;
                let slot = if key == "arp_sha" {
                    &mut m.arp_sha
                } else {
                    &mut m.arp_tha
                };
                once(slot, at, &key, v)?;
            }
            "ipv6_src" | "ipv6_dst" => {
                v6_at.get_or_insert(at);
                let v = ipv6_masked(at, &key, need()?)?;
                let slot = if key == "ipv6_src" {
                    &mut m.ipv6_src
                } else {
                    &mut m.ipv6_dst
                };
                once(slot, at, &key, v)?;
            }
            "ipv6_label" => {
                v6_at.get_or_insert(at);
                let (value, mask) = number_masked(at, &key, need()?, 0xf_ffff)?;
                let v = Masked {
                    value: value as u32,
                    mask: mask as u32,
                };
                once(&mut m.ipv6_label, at, "ipv6_label", v)?;
            }
            "nd_target" => {
                nd_at.get_or_insert(at);
                let v = ipv6_masked(at, &key, need()?)?;
                once(&mut m.nd_target, at, "nd_target", v)?;
            }
            "ct_state" => {
                let v = ct_state_flags(at, need()?)?;
                once(&mut m.ct_state, at, "ct_state", v)?;
            }
            "ct_zone" => {
                let v = number(at, &key, need()?, 0xffff)? as u16;
                once(&mut m.ct_zone, at, "ct_zone", v)?;
            }
            "ct_mark" => {
                let (value, mask) = number_masked(at, &key, need()?, u64::from(u32::MAX))?;
                let v = Masked {
                    value: value as u32,
                    mask: mask as u32,
                };
                once(&mut m.ct_mark, at, "ct_mark", v)?;
            }
            "metadata" => {
                let (value, mask) = number_masked(at, &key, need()?, u64::MAX)?;
                once(&mut m.metadata, at, "metadata", Masked { value, mask })?;
            }
            _ => match field_named(&key) {
                Some(Field::Reg(r)) if key.starts_with("reg") => {
                    let (value, mask) = number_masked(at, &key, need()?, u64::from(u32::MAX))?;
                    let v = Masked {
                        value: value as u32,
                        mask: mask as u32,
                    };
                    once(&mut m.regs[usize::from(r)], at, &key, v)?;
                }
                _ => return err(at, format!("unknown field {key:?}")),
            },
        }
    }
    // Prerequisites, as OpenFlow states them.
    let ip4 = m.dl_type == Some(EtherType::IPV4.0);
    let arp = m.dl_type == Some(EtherType::ARP.0);
    let ip = ip4 || m.dl_type == Some(EtherType::IPV6.0);
    if let (Some(at), false) = (nw_at, ip4 || arp) {
        return err(
            at,
            "nw_src and nw_dst need ip (dl_type=0x0800) or arp (dl_type=0x0806)",
        );
    }
    if let (Some(at), false) = (proto_at, ip || arp) {
        return err(at, "nw_proto needs ip, ipv6 or arp");
    }
    if let (Some(at), false) = (tp_at, ip && matches!(m.nw_proto, Some(6 | 17 | 132))) {
        return err(at, "tp_src and tp_dst need tcp, udp or sctp");
    }
    if let (Some(at), true) = (vlan_tci_at, m.dl_vlan.is_some() || m.dl_vlan_pcp.is_some()) {
        return err(at, "vlan_tci: give it or dl_vlan/dl_vlan_pcp, not both");
    }
    let icmp = (ip4 && m.nw_proto == Some(1)) || (ip && !ip4 && m.nw_proto == Some(58));
    if let (Some(at), false) = (icmp_at, icmp) {
        return err(at, "icmp_type and icmp_code need icmp or icmp6");
    }
    let v6 = m.dl_type == Some(EtherType::IPV6.0);
    if let (Some(at), false) = (l3_at, ip) {
        return err(at, "nw_tos, ip_dscp, nw_ecn and nw_ttl need ip or ipv6");
    }
    if let (Some(at), false) = (tcp_at, ip && m.nw_proto == Some(6)) {
        return err(at, "tcp_flags needs tcp or tcp6");
    }
    if let (Some(at), false) = (arp_at, arp) {
        return err(at, "arp_sha and arp_tha need arp");
    }
    if let (Some(at), false) = (v6_at, v6) {
        return err(
            at,
            "ipv6_src, ipv6_dst and ipv6_label need ipv6 (dl_type=0x86dd)",
        );
    }
    // As OVS: a neighbour solicitation or advertisement, code 0.
    let exact = |x: Option<Masked<u16>>| x.filter(|x| x.mask == 0xffff).map(|x| x.value);
    let nd = v6
        && m.nw_proto == Some(58)
        && matches!(exact(m.tp_src), Some(135 | 136))
        && m.tp_dst.is_none_or(|c| exact(Some(c)) == Some(0));
    if let (Some(at), false) = (nd_at, nd) {
        return err(
            at,
            "nd_target needs icmp6 with icmp_type=135 or 136 (and icmp_code 0)",
        );
    }
    Ok(Head {
        pattern: Pattern {
            table,
            priority,
            cookie,
            m,
        },
        idle,
        hard,
        cookie_mask_at,
    })
}

/// The actions of a flow in table `table`, `text` starting at byte `base`.
/// Whether a match has IPv4 or IPv6 as its EtherType (what `ct` needs).
fn is_ip(m: &Match) -> bool {
    matches!(m.dl_type, Some(0x0800 | 0x86dd))
}

/// The actions of a flow in table `table` whose match is (`ip`) or is
/// not on IP, `text` starting at byte `base`.
fn parse_actions(text: &str, base: usize, table: u8, ip: bool) -> Result<Vec<Action>, OfctlError> {
    let list = pieces(text, base);
    let mut out = Vec::new();
    for (i, &(at, a)) in list.iter().enumerate() {
        let lower = a.to_ascii_lowercase();
        let (name, arg) = match lower.split_once(':') {
            Some((n, _)) => (n.to_owned(), Some(&a[n.len() + 1..])),
            None => (lower.clone(), None),
        };
        let need = || match arg {
            Some(v) if !v.is_empty() => Ok(v),
            _ => err(at, format!("{name} needs an argument (as {name}:VALUE)")),
        };
        let action = match name.as_str() {
            "drop" if list.len() == 1 => return Ok(Vec::new()),
            "drop" => return err(at, "drop must be the only action"),
            "normal" => Action::Normal,
            "flood" => Action::Flood,
            "all" => Action::All,
            "in_port" => Action::InPort,
            "output" => Action::Output(port(need()?)),
            "mod_vlan_vid" => Action::ModVlanVid(number(at, &name, need()?, 4095)? as u16),
            "mod_vlan_pcp" => Action::ModVlanPcp(number(at, &name, need()?, 7)? as u8),
            "strip_vlan" | "pop_vlan" => Action::StripVlan,
            "mod_dl_src" => Action::ModDlSrc(mac(at, &name, need()?)?),
            "mod_dl_dst" => Action::ModDlDst(mac(at, &name, need()?)?),
            "mod_nw_src" => Action::ModNwSrc(ipv4(at, &name, need()?)?),
            "mod_nw_dst" => Action::ModNwDst(ipv4(at, &name, need()?)?),
            "mod_nw_tos" => {
                let v = number(at, &name, need()?, 255)? as u8;
                if v & 3 != 0 {
                    return err(
                        at,
                        format!("mod_nw_tos:{v}: the DSCP bits only (a multiple of 4)"),
                    );
                }
                Action::ModNwTos(v)
            }
            "mod_tp_src" => Action::ModTpSrc(number(at, &name, need()?, 0xffff)? as u16),
            "mod_tp_dst" => Action::ModTpDst(number(at, &name, need()?, 0xffff)? as u16),
            "dec_ttl" => Action::DecTtl,
            "push_vlan" => match number(at, &name, need()?, 0xffff)? {
                t @ (0x8100 | 0x88a8) => Action::PushVlan(t as u16),
                t => {
                    return err(
                        at,
                        format!("push_vlan:{t:#06x}: the TPID is 0x8100 or 0x88a8"),
                    )
                }
            },
            "load" => parse_load(at, need()?)?,
            "ct_clear" => Action::CtClear,
            "set_field" => parse_set_field(at, need()?)?,
            "move" => parse_move(at, need()?)?,
            "goto_table" => {
                let t = number(at, &name, need()?, u64::from(MAX_TABLE))? as u8;
                if t <= table {
                    return err(
                        at,
                        format!("goto_table:{t} must go to a table after {table}"),
                    );
                }
                if i + 1 != list.len() {
                    return err(at, "goto_table must be the last action");
                }
                Action::GotoTable(t)
            }
            _ if lower.starts_with("ct(") && lower.ends_with(')') => {
                if !ip {
                    return err(at, "ct needs ip or ipv6 (dl_type=0x0800 or 0x86dd)");
                }
                parse_ct(at, &a[3..a.len() - 1])?
            }
            _ if lower.starts_with("resubmit(") && lower.ends_with(')') => {
                let inner = &a["resubmit(".len()..a.len() - 1];
                match inner.split_once(',') {
                    Some(("", t)) => {
                        Action::Resubmit(
                            number(at, "resubmit", t.trim(), u64::from(MAX_TABLE))? as u8
                        )
                    }
                    _ => return err(at, "resubmit: only resubmit(,TABLE) is supported"),
                }
            }
            // A bare port number or name outputs there, as in ovs-ofctl.
            _ if arg.is_none() && a.parse::<u16>().is_ok() => Action::Output(port(a)),
            _ => return err(at, format!("unknown action {a:?}")),
        };
        out.push(action);
    }
    if out.is_empty() {
        return err(base, "no action (write actions=drop to drop)");
    }
    Ok(out)
}

/// `,field=A`, `,field=A/len` or `,field=A/M`, as `ovs-ofctl` writes an
/// address of `N` bytes.
fn write_addr<const N: usize, A>(out: &mut String, field: &str, m: &Masked<[u8; N]>)
where
    A: From<[u8; N]> + std::fmt::Display,
{
    let a = A::from(m.value);
    let mut b = [0u8; 16];
    b[..N].copy_from_slice(&m.mask);
    let bits = u128::from_be_bytes(b);
    let len = bits.leading_ones();
    if len as usize == 8 * N {
        write!(out, ",{field}={a}")
    } else if bits.checked_shl(len).unwrap_or(0) == 0 {
        write!(out, ",{field}={a}/{len}")
    } else {
        write!(out, ",{field}={a}/{}", A::from(m.mask))
    }
    .ok();
}

fn write_ipv4(out: &mut String, field: &str, m: &Masked<[u8; 4]>) {
    write_addr::<4, std::net::Ipv4Addr>(out, field, m)
}

fn write_ipv6(out: &mut String, field: &str, m: &Masked<[u8; 16]>) {
    write_addr::<16, std::net::Ipv6Addr>(out, field, m)
}

/// `,field=+a-b...`: the bits of `mask` by their `names`, `+` where
/// `value` has them; `field=0/0` for an empty mask.
fn write_flags(out: &mut String, field: &str, value: u64, mask: u64, names: &[&str]) {
    write!(out, ",{field}=").ok();
    if mask == 0 {
        out.push_str("0/0");
    }
    for (bit, name) in names.iter().enumerate() {
        if mask & 1 << bit != 0 {
            let sign = if value & 1 << bit != 0 { '+' } else { '-' };
            write!(out, "{sign}{name}").ok();
        }
    }
}

/// `,field=V` or `,field=V/M` in hex, as OVS writes registers (0 bare).
fn write_hex(out: &mut String, field: &str, value: u64, mask: u64, all: u64) {
    let hex = |v: u64| {
        if v == 0 {
            "0".to_owned()
        } else {
            format!("{v:#x}")
        }
    };
    if mask == all {
        write!(out, ",{field}={}", hex(value)).ok();
    } else {
        write!(out, ",{field}={}/{}", hex(value), hex(mask)).ok();
    }
}

fn write_port(out: &mut String, p: &PortRef) {
    match p {
        PortRef::Number(n) => write!(out, "{n}"),
        PortRef::Name(s) => write!(out, "{s}"),
    }
    .ok();
}

/// A flow as `ovs-ofctl dump-flows` writes it, without its counters:
/// `cookie=0x5, table=1, priority=4,in_port=1,dl_vlan=2
/// actions=mod_vlan_vid:3029,NORMAL` (cookie, table, timeouts and the
/// priority only when not their defaults).
pub fn format_flow(f: &Flow) -> String {
    let mut head: Vec<String> = Vec::new();
    if f.cookie != 0 {
        head.push(format!("cookie={:#x}", f.cookie));
    }
    if f.table != 0 {
        head.push(format!("table={}", f.table));
    }
    if f.idle_timeout != 0 {
        head.push(format!("idle_timeout={}", f.idle_timeout));
    }
    if f.hard_timeout != 0 {
        head.push(format!("hard_timeout={}", f.hard_timeout));
    }
    finish_flow(head, f)
}

/// A flow's counters, as `dump-flows` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FlowCounters {
    /// Seconds since the flow was added.
    pub duration: f64,
    pub n_packets: u64,
    pub n_bytes: u64,
    /// Whole seconds since a packet last matched (or since it was added).
    pub idle_age: u64,
}

/// A flow as `ovs-ofctl dump-flows` prints it: ` cookie=0x0,
/// duration=1.234s, table=0, n_packets=0, n_bytes=0, idle_age=1,
/// priority=4,in_port=1 actions=NORMAL`; [`parse_flow`] reads it back to
/// the same flow (the counters are ignored).
pub fn format_dump(f: &Flow, c: &FlowCounters) -> String {
    let mut head = vec![
        format!("cookie={:#x}", f.cookie),
        format!("duration={:.3}s", c.duration),
        format!("table={}", f.table),
        format!("n_packets={}", c.n_packets),
        format!("n_bytes={}", c.n_bytes),
    ];
    if f.idle_timeout != 0 {
        head.push(format!("idle_timeout={}", f.idle_timeout));
    }
    if f.hard_timeout != 0 {
        head.push(format!("hard_timeout={}", f.hard_timeout));
    }
    head.push(format!("idle_age={}", c.idle_age));
    format!(" {}", finish_flow(head, f))
}

/// `head`, then the priority and match, then the actions.
fn finish_flow(head: Vec<String>, f: &Flow) -> String {
    let mut m = String::new();
    if f.priority != super::DEFAULT_PRIORITY {
        write!(m, ",priority={}", f.priority).ok();
    }
    let x = &f.m;
    // The shorthand for the protocol, as OVS prints it.
    let shorthand = match (x.dl_type, x.nw_proto) {
        (Some(0x0800), Some(6)) => Some(("tcp", true)),
        (Some(0x0800), Some(17)) => Some(("udp", true)),
        (Some(0x0800), Some(1)) => Some(("icmp", true)),
        (Some(0x0800), _) => Some(("ip", false)),
        (Some(0x0806), _) => Some(("arp", false)),
        (Some(0x86dd), Some(6)) => Some(("tcp6", true)),
        (Some(0x86dd), Some(17)) => Some(("udp6", true)),
        (Some(0x86dd), Some(58)) => Some(("icmp6", true)),
        (Some(0x86dd), _) => Some(("ipv6", false)),
        _ => None,
    };
    if let Some(c) = x.ct_state {
        write_flags(
            &mut m,
            "ct_state",
            c.value.into(),
            c.mask.into(),
            &CtState::NAMES,
        );
    }
    if let Some(z) = x.ct_zone {
        write!(m, ",ct_zone={z}").ok();
    }
    if let Some(v) = x.ct_mark {
        write_hex(
            &mut m,
            "ct_mark",
            v.value.into(),
            v.mask.into(),
            u32::MAX.into(),
        );
    }
    if let Some((s, _)) = shorthand {
        write!(m, ",{s}").ok();
    }
    for (r, v) in x.regs.iter().enumerate() {
        if let Some(v) = v {
            write_hex(
                &mut m,
                &format!("reg{r}"),
                v.value.into(),
                v.mask.into(),
                u32::MAX.into(),
            );
        }
    }
    if let Some(v) = x.metadata {
        write_hex(&mut m, "metadata", v.value, v.mask, u64::MAX);
    }
    if let Some(p) = &x.in_port {
        m.push_str(",in_port=");
        write_port(&mut m, p);
    }
    match x.dl_vlan {
        Some(VlanMatch::None) => m.push_str(",dl_vlan=0xffff"),
        Some(VlanMatch::Vid(v)) => write!(m, ",dl_vlan={v}").unwrap_or(()),
        None => {}
    }
    if let Some(p) = x.dl_vlan_pcp {
        write!(m, ",dl_vlan_pcp={p}").ok();
    }
    match x.vlan_tci {
        Some(t) if t.mask == 0xffff => write!(m, ",vlan_tci={:#06x}", t.value).unwrap_or(()),
        Some(t) => write!(m, ",vlan_tci={:#06x}/{:#06x}", t.value, t.mask).unwrap_or(()),
        None => {}
    }
    for (field, v) in [("dl_src", &x.dl_src), ("dl_dst", &x.dl_dst)] {
        if let Some(v) = v {
            if v.mask.0 == [0xff; 6] {
                write!(m, ",{field}={}", v.value).ok();
            } else {
                write!(m, ",{field}={}/{}", v.value, v.mask).ok();
            }
        }
    }
    if let (Some(t), None) = (x.dl_type, shorthand) {
        write!(m, ",dl_type={t:#06x}").ok();
    }
    if let Some(v) = &x.nw_src {
        write_ipv4(&mut m, "nw_src", v);
    }
    if let Some(v) = &x.nw_dst {
        write_ipv4(&mut m, "nw_dst", v);
    }
    if let (Some(p), false) = (x.nw_proto, shorthand.is_some_and(|(_, p)| p)) {
        let field = if x.dl_type == Some(0x0806) {
            "arp_op"
        } else {
            "nw_proto"
        };
        write!(m, ",{field}={p}").ok();
    }
    for (field, v) in [("arp_sha", &x.arp_sha), ("arp_tha", &x.arp_tha)] {
        if let Some(v) = v {
            if v.mask.0 == [0xff; 6] {
                write!(m, ",{field}={}", v.value).ok();
            } else {
                write!(m, ",{field}={}/{}", v.value, v.mask).ok();
            }
        }
    }
    for (field, v) in [("ipv6_src", &x.ipv6_src), ("ipv6_dst", &x.ipv6_dst)] {
        if let Some(v) = v {
            write_ipv6(&mut m, field, v);
        }
    }
    match x.ipv6_label {
        Some(v) if v.mask == 0xf_ffff => write!(m, ",ipv6_label={:#07x}", v.value).unwrap_or(()),
        Some(v) => write!(m, ",ipv6_label={:#07x}/{:#07x}", v.value, v.mask).unwrap_or(()),
        None => {}
    }
    if let Some(t) = x.nw_tos {
        if t.mask & 0xfc == 0xfc {
            write!(m, ",nw_tos={}", t.value & 0xfc).ok();
        }
        if t.mask & 3 == 3 {
            write!(m, ",nw_ecn={}", t.value & 3).ok();
        }
    }
    if let Some(t) = x.nw_ttl {
        write!(m, ",nw_ttl={t}").ok();
    }
    let icmp = matches!(
        (x.dl_type, x.nw_proto),
        (Some(0x0800), Some(1)) | (Some(0x86dd), Some(58))
    );
    let (src_name, dst_name) = if icmp {
        ("icmp_type", "icmp_code")
    } else {
        ("tp_src", "tp_dst")
    };
    for (field, v) in [(src_name, &x.tp_src), (dst_name, &x.tp_dst)] {
        if let Some(v) = v {
            if v.mask == 0xffff {
                write!(m, ",{field}={}", v.value).ok();
            } else {
                write!(m, ",{field}={:#06x}/{:#06x}", v.value, v.mask).ok();
            }
        }
    }
    if let Some(f) = x.tcp_flags {
        write_flags(
            &mut m,
            "tcp_flags",
            f.value.into(),
            f.mask.into(),
            &TCP_FLAGS,
        );
    }
    if let Some(v) = &x.nd_target {
        write_ipv6(&mut m, "nd_target", v);
    }
    let mut out = head.join(", ");
    let m = m.trim_start_matches(',');
    if !m.is_empty() {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(m);
    }
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str("actions=");
    out.push_str(&format_actions(&f.actions));
    out
}

/// Actions as `ovs-ofctl` writes them; none: `drop`.
pub fn format_actions(actions: &[Action]) -> String {
    if actions.is_empty() {
        return "drop".to_owned();
    }
    let mut out = String::new();
    for (i, a) in actions.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match a {
            Action::Output(p) => {
                out.push_str("output:");
                write_port(&mut out, p);
            }
            Action::InPort => out.push_str("IN_PORT"),
            Action::Normal => out.push_str("NORMAL"),
            Action::Flood => out.push_str("FLOOD"),
            Action::All => out.push_str("ALL"),
            Action::ModVlanVid(v) => write!(out, "mod_vlan_vid:{v}").unwrap_or(()),
            Action::ModVlanPcp(p) => write!(out, "mod_vlan_pcp:{p}").unwrap_or(()),
            Action::StripVlan => out.push_str("strip_vlan"),
            Action::ModDlSrc(m) => write!(out, "mod_dl_src:{m}").unwrap_or(()),
            Action::ModDlDst(m) => write!(out, "mod_dl_dst:{m}").unwrap_or(()),
            Action::ModNwSrc(a) => {
                write!(out, "mod_nw_src:{}", std::net::Ipv4Addr::from(*a)).unwrap_or(())
            }
            Action::ModNwDst(a) => {
                write!(out, "mod_nw_dst:{}", std::net::Ipv4Addr::from(*a)).unwrap_or(())
            }
            Action::ModNwTos(t) => write!(out, "mod_nw_tos:{t}").unwrap_or(()),
            Action::ModTpSrc(p) => write!(out, "mod_tp_src:{p}").unwrap_or(()),
            Action::ModTpDst(p) => write!(out, "mod_tp_dst:{p}").unwrap_or(()),
            Action::DecTtl => out.push_str("dec_ttl"),
            Action::PushVlan(t) => write!(out, "push_vlan:{t:#06x}").unwrap_or(()),
            // OVS writes 0 bare and the rest in hex.
            Action::Load { value: 0, dst } => {
                write!(out, "load:0->{}", format_subfield(dst)).unwrap_or(())
            }
            Action::Load { value, dst } => {
                write!(out, "load:{value:#x}->{}", format_subfield(dst)).unwrap_or(())
            }
            Action::SetField { field, value, mask } => write!(
                out,
                "set_field:{}->{}",
                format_set_field(*field, *value, *mask),
                field_name(*field)
            )
            .unwrap_or(()),
            Action::Ct(ct) => format_ct(&mut out, ct),
            Action::CtClear => out.push_str("ct_clear"),
            Action::Move { src, dst } => write!(
                out,
                "move:{}->{}",
                format_subfield(src),
                format_subfield(dst)
            )
            .unwrap_or(()),
            Action::Resubmit(t) => write!(out, "resubmit(,{t})").unwrap_or(()),
            Action::GotoTable(t) => write!(out, "goto_table:{t}").unwrap_or(()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_seed_flows_read_and_print_as_ovs_does() {
        for (text, printed) in [
            (
                "priority=4,in_port=1,dl_vlan=2,actions=mod_vlan_vid:3029,NORMAL",
                "priority=4,in_port=1,dl_vlan=2 actions=mod_vlan_vid:3029,NORMAL",
            ),
            ("priority=2,in_port=1,actions=drop", "priority=2,in_port=1 actions=drop"),
            ("priority=1,actions=NORMAL", "priority=1 actions=NORMAL"),
            (
                "table=71, priority=95,arp,in_port=1,dl_src=fa:16:3e:00:00:01,arp_spa=10.0.0.5 actions=resubmit(,94)",
                "table=71, priority=95,arp,in_port=1,dl_src=fa:16:3e:00:00:01,nw_src=10.0.0.5 actions=resubmit(,94)",
            ),
            (
                "tcp,nw_src=10.0.0.0/255.255.255.0,tp_dst=0x0016/0xfffe actions=output:vm2,goto_table:3",
                "tcp,nw_src=10.0.0.0/24,tp_dst=0x0016/0xfffe actions=output:vm2,goto_table:3",
            ),
        ] {
            let f = parse_flow(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(format_flow(&f), printed, "{text}");
            assert_eq!(parse_flow(printed).unwrap(), f, "{printed}");
        }
    }

    /// What `ovs-ofctl parse-flow` (OVS 3.1) prints for the same flows.
    #[test]
    fn the_newer_fields_and_actions_read_and_print_as_ovs_does() {
        for (text, printed) in [
            (
                "tcp,in_port=1,reg0=5,metadata=1,nw_tos=4,nw_ecn=2,nw_ttl=3,tcp_flags=+syn,tp_dst=80,actions=drop",
                "tcp,reg0=0x5,metadata=0x1,in_port=1,nw_tos=4,nw_ecn=2,nw_ttl=3,tp_dst=80,tcp_flags=+syn actions=drop",
            ),
            ("ip,ip_dscp=1,actions=drop", "ip,nw_tos=4 actions=drop"),
            ("ip,nw_tos=5,actions=drop", "ip,nw_tos=4 actions=drop"),
            (
                "tcp,tcp_flags=0x012/0x012,actions=drop",
                "tcp,tcp_flags=+syn+ack actions=drop",
            ),
            (
                "arp,arp_sha=00:00:00:00:00:01,arp_tha=00:00:00:00:00:02/ff:ff:ff:00:00:00,actions=drop",
                "arp,arp_sha=00:00:00:00:00:01,arp_tha=00:00:00:00:00:00/ff:ff:ff:00:00:00 actions=drop",
            ),
            (
                "ipv6,ipv6_src=2001:db8::/32,ipv6_dst=::1,ipv6_label=0x12345,actions=drop",
                "ipv6,ipv6_src=2001:db8::/32,ipv6_dst=::1,ipv6_label=0x12345 actions=drop",
            ),
            (
                "icmp6,icmp_type=135,nd_target=fe80::1,actions=drop",
                "icmp6,icmp_type=135,nd_target=fe80::1 actions=drop",
            ),
            (
                "reg0=5,reg7=0x10/0xf0,metadata=0x1/0xff,actions=drop",
                "reg0=0x5,reg7=0x10/0xf0,metadata=0x1/0xff actions=drop",
            ),
            (
                "actions=load:0x1234->NXM_OF_VLAN_TCI[],load:1->OXM_OF_METADATA[],move:NXM_NX_REG0[0..5]->NXM_NX_REG1[10..15]",
                "actions=load:0x1234->NXM_OF_VLAN_TCI[],load:0x1->OXM_OF_METADATA[],move:NXM_NX_REG0[0..5]->NXM_NX_REG1[10..15]",
            ),
            (
                "actions=set_field:7->reg2,set_field:00:00:00:00:00:01->eth_dst,push_vlan:0x8100,set_field:4101->vlan_vid,set_field:5->vlan_pcp,NORMAL",
                "actions=set_field:0x7->reg2,set_field:00:00:00:00:00:01->eth_dst,push_vlan:0x8100,set_field:4101->vlan_vid,set_field:5->vlan_pcp,NORMAL",
            ),
            (
                "tcp,actions=move:NXM_OF_TCP_SRC[]->NXM_OF_TCP_DST[],move:NXM_OF_IP_SRC[]->NXM_OF_IP_DST[],load:0->NXM_NX_REG3[0..7]",
                "tcp actions=move:NXM_OF_TCP_SRC[]->NXM_OF_TCP_DST[],move:NXM_OF_IP_SRC[]->NXM_OF_IP_DST[],load:0->NXM_NX_REG3[0..7]",
            ),
            (
                "ip,actions=set_field:10.0.0.1->ip_src,set_field:3->ip_dscp,set_field:5->nw_ttl,set_field:8->nw_tos,load:0xa000001->NXM_OF_IP_DST[]",
                "ip actions=set_field:10.0.0.1->ip_src,set_field:3->ip_dscp,set_field:5->nw_ttl,set_field:8->nw_tos,load:0xa000001->NXM_OF_IP_DST[]",
            ),
            (
                "table=72,priority=77,ct_state=+est-rel-rpl,ip,reg5=1,actions=resubmit(,73)",
                "table=72, priority=77,ct_state=+est-rel-rpl,ip,reg5=0x1 actions=resubmit(,73)",
            ),
            (
                "ip,actions=ct(commit,zone=NXM_NX_REG6[0..15],exec(load:1->NXM_NX_CT_MARK[]))",
                "ip actions=ct(commit,zone=NXM_NX_REG6[0..15],exec(load:0x1->NXM_NX_CT_MARK[]))",
            ),
            (
                "ip,actions=ct(commit,zone=5,exec(set_field:1->ct_mark),table=3)",
                "ip actions=ct(commit,table=3,zone=5,exec(load:0x1->NXM_NX_CT_MARK[]))",
            ),
            (
                "ct_state=+est-rel+rpl,ct_zone=2,ct_mark=0,reg5=1,actions=resubmit(,91)",
                "ct_state=+est-rel+rpl,ct_zone=2,ct_mark=0,reg5=0x1 actions=resubmit(,91)",
            ),
            ("ct_state=-trk,actions=ct_clear,NORMAL", "ct_state=-trk actions=ct_clear,NORMAL"),
            ("ct_state=0x21/0x21,actions=drop", "ct_state=+new+trk actions=drop"),
            (
                "tcp,actions=set_field:80->tcp_dst,set_field:1->tp_src,load:1->NXM_OF_TCP_SRC[0..3]",
                "tcp actions=set_field:80->tcp_dst,set_field:1->tcp_src,load:0x1->NXM_OF_TCP_SRC[0..3]",
            ),
        ] {
            let f = parse_flow(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(format_flow(&f), printed, "{text}");
            assert_eq!(parse_flow(printed).unwrap(), f, "{printed}");
        }
    }

    #[test]
    fn a_dumped_line_with_its_counters_reads_back() {
        let line = "cookie=0x5, duration=3.2s, table=0, n_packets=10, n_bytes=600, idle_age=1, \
                    priority=4,in_port=1,dl_vlan=2 actions=mod_vlan_vid:3029,NORMAL";
        let f = parse_flow(line).unwrap();
        assert_eq!((f.cookie, f.priority), (5, 4));
        assert_eq!(
            format_flow(&f),
            "cookie=0x5, priority=4,in_port=1,dl_vlan=2 actions=mod_vlan_vid:3029,NORMAL"
        );
    }

    #[test]
    fn bad_flows_are_refused_with_the_position_and_the_reason() {
        for (text, at, why) in [
            ("in_port=1", 9, "no actions="),
            ("in_port=1,foo=2,actions=drop", 10, "unknown field"),
            ("dl_vlan=5000,actions=drop", 0, "not a VLAN id"),
            ("nw_src=10.0.0.1,actions=drop", 0, "need ip"),
            ("ip,tp_dst=22,actions=drop", 3, "need tcp"),
            ("in_port=1,in_port=2,actions=drop", 10, "given twice"),
            ("actions=output:1,drop", 17, "only action"),
            ("table=3,actions=goto_table:2", 16, "after 3"),
            ("actions=mod_vlan_vid:4096", 8, "larger than 4095"),
            ("actions=frobnicate", 8, "unknown action"),
            ("actions=", 8, "no action"),
            ("nw_ttl=3,actions=drop", 0, "need ip or ipv6"),
            ("ip,tcp_flags=+syn,actions=drop", 3, "needs tcp"),
            ("tcp,tcp_flags=+ns,actions=drop", 4, "unknown flag"),
            (
                "tcp,tcp_flags=0x100/0x100,actions=drop",
                4,
                "only FIN to CWR",
            ),
            ("ip,arp_sha=00:00:00:00:00:01,actions=drop", 3, "need arp"),
            ("ip,ipv6_src=::1,actions=drop", 3, "need ipv6"),
            ("ipv6,ipv6_label=0x100000,actions=drop", 5, "larger than"),
            (
                "icmp6,nd_target=::1,actions=drop",
                6,
                "icmp_type=135 or 136",
            ),
            ("reg8=1,actions=drop", 0, "unknown field"),
            (
                "actions=load:5->NXM_NX_REG0[0..1]",
                8,
                "does not fit in 2 bits",
            ),
            ("actions=load:1->NXM_OF_IN_PORT[]", 8, "cannot be written"),
            ("actions=load:1->reg0[30..33]", 8, "not within"),
            (
                "actions=move:NXM_OF_IN_PORT[]->NXM_NX_REG0[]",
                8,
                "16 bits wide but destination is 32",
            ),
            ("actions=set_field:1->nw_tos", 8, "DSCP bits"),
            ("actions=set_field:1->bogus", 8, "unknown field"),
            ("actions=push_vlan:0x800", 8, "0x8100 or 0x88a8"),
            ("actions=ct(table=1)", 8, "ct needs ip"),
            (
                "ip,actions=ct(commit,nat(src=10.0.0.1))",
                11,
                "not supported",
            ),
            ("ip,actions=ct(zone=NXM_NX_REG6[0..7])", 11, "a zone 16"),
            (
                "ip,actions=ct(exec(set_field:1->ct_mark))",
                11,
                "needs commit",
            ),
            ("ip,actions=set_field:1->ct_mark", 11, "cannot be written"),
            ("ct_state=+bogus,actions=drop", 0, "unknown flag"),
        ] {
            let e = parse_flow(text).expect_err(text);
            assert_eq!(e.at, at, "{text}: {e}");
            assert!(e.why.contains(why), "{text}: {e}");
        }
    }

    fn arb_port() -> impl Strategy<Value = PortRef> {
        prop_oneof![
            any::<u16>().prop_map(PortRef::Number),
            "[a-z][a-z0-9_-]{0,10}".prop_map(PortRef::Name),
        ]
    }

    fn arb_flow() -> impl Strategy<Value = Flow> {
        let mac = any::<[u8; 6]>().prop_map(EthernetAddress);
        let masked_mac = (
            mac.clone(),
            prop_oneof![Just(EthernetAddress([0xff; 6])), mac],
        )
            .prop_map(|(v, mask)| Masked {
                value: EthernetAddress(std::array::from_fn(|i| v.0[i] & mask.0[i])),
                mask,
            });
        let v4 = (
            any::<[u8; 4]>(),
            prop_oneof![
                (0u32..=32).prop_map(|l| if l == 0 {
                    [0; 4]
                } else {
                    (u32::MAX << (32 - l)).to_be_bytes()
                }),
                any::<[u8; 4]>()
            ],
        )
            .prop_map(|(v, mask): ([u8; 4], [u8; 4])| Masked {
                value: std::array::from_fn(|i| v[i] & mask[i]),
                mask,
            });
        let tp =
            (any::<u16>(), prop_oneof![Just(0xffffu16), any::<u16>()]).prop_map(|(v, mask)| {
                Masked {
                    value: v & mask,
                    mask,
                }
            });
        let proto = prop_oneof![
            Just((None, None)),
            Just((Some(0x0800u16), None)),
            Just((Some(0x0800), Some(6u8))),
            Just((Some(0x0800), Some(17))),
            Just((Some(0x0800), Some(1))),
            Just((Some(0x0800), Some(47))),
            Just((Some(0x0806), None)),
            Just((Some(0x0806), Some(2))),
            Just((Some(0x86dd), Some(6))),
            Just((Some(0x86dd), None)),
            Just((Some(0x86dd), Some(58))),
            Just((Some(0x88cc), None)),
        ];
        let fields = [
            Field::Reg(0),
            Field::Reg(7),
            Field::Metadata,
            Field::EthSrc,
            Field::EthDst,
            Field::VlanTci,
            Field::VlanVid,
            Field::VlanPcp,
            Field::IpSrc,
            Field::IpDst,
            Field::IpDscp,
            Field::IpTtl,
            Field::TpSrc,
            Field::TpDst,
        ];
        let readable = [Field::EthType, Field::InPort, Field::IpProto];
        let sub = |f: Field| {
            (0..f.bits()).prop_flat_map(move |ofs| {
                (1..=f.bits() - ofs).prop_map(move |n_bits| SubField {
                    field: f,
                    ofs,
                    n_bits,
                })
            })
        };
        let dst = proptest::sample::select(fields.to_vec()).prop_flat_map(sub);
        let src =
            proptest::sample::select([&fields[..], &readable[..]].concat()).prop_flat_map(sub);
        let load = (dst.clone(), any::<u64>()).prop_map(|(dst, v)| Action::Load {
            value: v & (dst.mask() >> dst.ofs),
            dst,
        });
        let set_field = (
            proptest::sample::select([&fields[..], &[Field::IpTos]].concat()),
            any::<u64>(),
            any::<u64>(),
            any::<bool>(),
        )
            .prop_map(|(field, v, m, whole)| {
                let width = SubField::whole(field).mask();
                let mask = if field == Field::IpTos {
                    0xfc
                } else if whole {
                    width
                } else {
                    m & width
                };
                Action::SetField {
                    field,
                    value: v & mask,
                    mask,
                }
            });
        let moves = (src, dst).prop_map(|(src, dst)| {
            let n = src.n_bits.min(dst.n_bits);
            Action::Move {
                src: SubField { n_bits: n, ..src },
                dst: SubField { n_bits: n, ..dst },
            }
        });
        let action = prop_oneof![
            arb_port().prop_map(Action::Output),
            Just(Action::InPort),
            Just(Action::Normal),
            Just(Action::Flood),
            Just(Action::All),
            (0u16..4096).prop_map(Action::ModVlanVid),
            (0u8..8).prop_map(Action::ModVlanPcp),
            Just(Action::StripVlan),
            any::<[u8; 6]>().prop_map(|m| Action::ModDlSrc(EthernetAddress(m))),
            any::<[u8; 6]>().prop_map(|m| Action::ModDlDst(EthernetAddress(m))),
            any::<[u8; 4]>().prop_map(Action::ModNwSrc),
            any::<[u8; 4]>().prop_map(Action::ModNwDst),
            (0u8..64).prop_map(|d| Action::ModNwTos(d << 2)),
            any::<u16>().prop_map(Action::ModTpSrc),
            any::<u16>().prop_map(Action::ModTpDst),
            Just(Action::DecTtl),
            (0u8..=253).prop_map(Action::Resubmit),
            prop_oneof![Just(0x8100u16), Just(0x88a8)].prop_map(Action::PushVlan),
            Just(Action::CtClear),
            (
                any::<bool>(),
                proptest::option::of(0u8..=253),
                any::<u16>(),
                any::<bool>(),
                proptest::option::of((any::<u32>(), any::<bool>()))
            )
                .prop_map(|(commit, table, z, by_reg, mark)| Action::Ct(Ct {
                    commit: commit || mark.is_some(),
                    table,
                    zone: if by_reg {
                        CtZone::Field(SubField {
                            field: Field::Reg(6),
                            ofs: 0,
                            n_bits: 16,
                        })
                    } else {
                        CtZone::Value(z)
                    },
                    mark: mark.map(|(v, whole)| if whole {
                        Masked {
                            value: v,
                            mask: u32::MAX,
                        }
                    } else {
                        Masked {
                            value: v & 0xf0,
                            mask: 0xf0,
                        }
                    }),
                })),
            load,
            set_field,
            moves,
        ];
        let v6 = (any::<[u8; 16]>(), 0u32..=128, any::<bool>()).prop_map(|(v, len, prefix)| {
            let mask = if prefix {
                u128::MAX.checked_shl(128 - len).unwrap_or(0).to_be_bytes()
            } else {
                std::array::from_fn(|i| v[15 - i] | 1)
            };
            Masked {
                value: std::array::from_fn(|i| v[i] & mask[i]),
                mask,
            }
        });
        let num = |max: u64| {
            (any::<u64>(), any::<u64>(), any::<bool>()).prop_map(move |(v, m, whole)| {
                let mask = if whole { max } else { m & max };
                (v & mask, mask)
            })
        };
        let extra = (
            (
                proptest::option::of((proptest::option::of(0u8..64), proptest::option::of(0u8..4))),
                proptest::option::of(any::<u8>()),
                proptest::option::of(num(0xff)),
                proptest::option::of(masked_mac.clone()),
                proptest::option::of(masked_mac.clone()),
            ),
            (
                proptest::option::of(v6.clone()),
                proptest::option::of(v6.clone()),
                proptest::option::of(num(0xf_ffff)),
                proptest::option::of(v6),
                proptest::collection::vec(
                    proptest::option::weighted(0.2, num(u64::from(u32::MAX))),
                    8,
                ),
                proptest::option::of(num(u64::MAX)),
                (
                    proptest::option::of(num(0x3f)),
                    proptest::option::of(any::<u16>()),
                    proptest::option::of(num(u64::from(u32::MAX))),
                ),
            ),
        );
        (
            (
                0u8..=200,
                any::<u16>(),
                any::<u64>(),
                any::<u16>(),
                any::<u16>(),
            ),
            (
                proptest::option::of(arb_port()),
                proptest::option::of(masked_mac.clone()),
                proptest::option::of(masked_mac),
                proptest::option::of(prop_oneof![
                    Just(VlanMatch::None),
                    (0u16..4096).prop_map(VlanMatch::Vid)
                ]),
                proptest::option::of(0u8..8),
                proptest::option::of((any::<u16>(), any::<u16>())),
            ),
            (
                proto,
                proptest::option::of(v4.clone()),
                proptest::option::of(v4),
                proptest::option::of(tp.clone()),
                proptest::option::of(tp),
            ),
            proptest::collection::vec(action, 0..5),
            proptest::option::of(1u8..=53),
            extra,
        )
            .prop_map(
                |(
                    (table, priority, cookie, idle, hard),
                    (in_port, dl_src, dl_dst, dl_vlan, pcp, tci),
                    ((dl_type, nw_proto), nw_src, nw_dst, tp_src, tp_dst),
                    mut actions,
                    goto,
                    ((tos, ttl, flags, sha, tha), (s6, d6, label, nd, regs, meta, (cts, ctz, ctm))),
                )| {
                    let ip4_or_arp = matches!(dl_type, Some(0x0800 | 0x0806));
                    let l4 = matches!(nw_proto, Some(6 | 17)) && dl_type != Some(0x0806);
                    let ip = matches!(dl_type, Some(0x0800 | 0x86dd));
                    let (arp, ipv6) = (dl_type == Some(0x0806), dl_type == Some(0x86dd));
                    // ICMP's type and code: exact, one byte each.
                    let icmp = ip && nw_proto == Some(if ipv6 { 58 } else { 1 });
                    let icmp_field = |t: Option<Masked<u16>>| {
                        t.map(|t| Masked {
                            value: t.value & 0xff,
                            mask: 0xffff,
                        })
                    };
                    let (tp_src, tp_dst) = if icmp {
                        (icmp_field(tp_src), icmp_field(tp_dst))
                    } else {
                        (tp_src, tp_dst)
                    };
                    if !ip {
                        actions.retain(|a| !matches!(a, Action::Ct(_)));
                    }
                    if let Some(g) = goto {
                        actions.push(Action::GotoTable(table + g));
                    }
                    let nd_ok = icmp
                        && ipv6
                        && matches!(tp_src.map(|t| t.value), Some(135 | 136))
                        && tp_dst.is_none_or(|c| c.value == 0);
                    let tos = tos.filter(|_| ip).and_then(|(d, e)| {
                        let mut t = Masked { value: 0, mask: 0 };
                        if let Some(d) = d {
                            (t.value, t.mask) = (d << 2, 0xfc);
                        }
                        if let Some(e) = e {
                            (t.value, t.mask) = (t.value | e, t.mask | 3);
                        }
                        (t.mask != 0).then_some(t)
                    });
                    let word = |x: Option<(u64, u64)>| {
                        x.map(|(v, m)| Masked {
                            value: v as u32,
                            mask: m as u32,
                        })
                    };
                    Flow {
                        table,
                        priority,
                        cookie,
                        idle_timeout: idle,
                        hard_timeout: hard,
                        m: Match {
                            in_port,
                            dl_src,
                            dl_dst,
                            dl_vlan,
                            dl_vlan_pcp: pcp,
                            vlan_tci: tci.filter(|_| dl_vlan.is_none() && pcp.is_none()).map(
                                |(v, mask)| Masked {
                                    value: v & mask,
                                    mask,
                                },
                            ),
                            dl_type,
                            nw_src: nw_src.filter(|_| ip4_or_arp),
                            nw_dst: nw_dst.filter(|_| ip4_or_arp),
                            nw_proto,
                            tp_src: tp_src.filter(|_| l4 || icmp),
                            tp_dst: tp_dst.filter(|_| l4 || icmp),
                            nw_tos: tos,
                            nw_ttl: ttl.filter(|_| ip),
                            tcp_flags: flags.filter(|_| ip && nw_proto == Some(6)).map(|(v, m)| {
                                Masked {
                                    value: v as u16,
                                    mask: m as u16,
                                }
                            }),
                            arp_sha: sha.filter(|_| arp),
                            arp_tha: tha.filter(|_| arp),
                            ipv6_src: s6.filter(|_| ipv6),
                            ipv6_dst: d6.filter(|_| ipv6),
                            ipv6_label: word(label).filter(|_| ipv6),
                            nd_target: nd.filter(|_| nd_ok),
                            regs: std::array::from_fn(|i| word(regs[i])),
                            metadata: meta.map(|(value, mask)| Masked { value, mask }),
                            ct_state: cts.map(|(v, m)| Masked {
                                value: v as u8,
                                mask: m as u8,
                            }),
                            ct_zone: ctz,
                            ct_mark: word(ctm),
                        },
                        actions,
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

        /// Every flow printed reads back as the same flow, and prints the same.
        #[test]
        fn printed_flows_read_back_unchanged(f in arb_flow()) {
            let text = format_flow(&f);
            let back = parse_flow(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            prop_assert_eq!(&back, &f, "{}", text);
            prop_assert_eq!(format_flow(&back), text);
        }

        /// What `dump-flows` prints, counters and all, is the same flow to
        /// `add-flow`; and the flow's own match, as a pattern, selects it.
        #[test]
        fn dumped_flows_read_back_and_select_themselves(
            f in arb_flow(),
            n_packets in any::<u64>(),
            idle_age in 0u64..100_000,
        ) {
            let c = FlowCounters { duration: 12.5, n_packets, n_bytes: n_packets.wrapping_mul(60), idle_age };
            let text = format_dump(&f, &c);
            let back = parse_flow(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            prop_assert_eq!(&back, &f, "{}", text);
            let plain = format_flow(&f);
            let head = plain.split("actions=").next().unwrap_or_default();
            let p = parse_pattern(head).map_err(|e| TestCaseError::fail(format!("{head}: {e}")))?;
            prop_assert!(p.selects(&f, false), "{}", head);
            let strict = Pattern { priority: Some(f.priority), ..p };
            prop_assert!(strict.selects(&f, true), "{}", head);
        }

        /// Any text: a flow or an error whose position lies in the text.
        #[test]
        fn arbitrary_text_never_panics(text in "[a-z_0-9=,:/.() x]{0,80}") {
            if let Err(e) = parse_flow(&text) {
                prop_assert!(e.at <= text.len());
            }
        }
    }
}
