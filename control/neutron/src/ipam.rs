//! IP and VLAN allocation. Everything here is a persistent (`imbl`) value:
//! a mutation clones the writer's world in O(1), changes the clone, and only
//! replaces the committed world once SQLite has committed, so a failed
//! request leaves no trace in memory either.
use super::error::ApiError;
use super::validate::{Cidr, IpVersion};
use imbl::OrdSet;
use std::sync::Arc;

/// An inclusive address range, as integers.
pub type Range = (u128, u128);

/// Neutron's default pools: the whole CIDR minus the network address, the
/// IPv4 broadcast address and the gateway (`neutron.ipam.utils.generate_pools`).
pub fn default_pools(cidr: &Cidr, gateway: Option<u128>) -> Vec<Range> {
    // IPv6 keeps the subnet-router anycast address (the network address)
    // out, as IPv4 keeps its network address; Neutron's gateway default.
    let first = cidr.base + 1;
    let last = if cidr.version == IpVersion::V4 {
        cidr.last().saturating_sub(1)
    } else {
        cidr.last()
    };
    if cidr.last() == cidr.base || first > last {
        return Vec::new();
    }
    match gateway {
        Some(g) if g >= first && g <= last => {
            let mut v = Vec::new();
            if g > first {
                v.push((first, g - 1));
            }
            if g < last {
                v.push((g + 1, last));
            }
            v
        }
        _ => vec![(first, last)],
    }
}

/// Checks requested pools: inside the CIDR, not the network or broadcast
/// address, start <= end, pairwise disjoint, and not containing the gateway.
/// Returns them sorted. Errors are Neutron's, with its types.
pub fn check_pools(
    cidr: &Cidr,
    gateway: Option<u128>,
    pools: &[Range],
) -> Result<Vec<Range>, ApiError> {
    let mut sorted = pools.to_vec();
    let invalid = |ss, es| {
        ApiError::new(
            400,
            "InvalidAllocationPool",
            format!("The allocation pool {{'start': '{ss}', 'end': '{es}'}} is not valid."),
        )
    };
    for &(s, e) in pools {
        let (ss, es) = (cidr.ip(s), cidr.ip(e));
        if s > e {
            return Err(invalid(ss, es));
        }
        if !cidr.contains_u128(s) || !cidr.contains_u128(e) {
            return Err(ApiError::new(
                400,
                "OutOfBoundsAllocationPool",
                format!("The allocation pool {ss}-{es} spans beyond the subnet cidr {cidr}."),
            ));
        }
        // The network and IPv4 broadcast addresses are never a host's.
        if s == cidr.base || (cidr.version == IpVersion::V4 && e == cidr.last()) {
            return Err(invalid(ss, es));
        }
        if let Some(g) = gateway {
            if g >= s && g <= e {
                return Err(ApiError::conflict(
                    "GatewayConflictWithAllocationPools",
                    format!(
                        "Gateway ip {} conflicts with allocation pool {ss}-{es}.",
                        cidr.ip(g)
                    ),
                ));
            }
        }
    }
    sorted.sort();
    for w in sorted.windows(2) {
        if w[1].0 <= w[0].1 {
            return Err(ApiError::conflict(
                "OverlappingAllocationPools",
                format!(
                    "Found overlapping allocation pools: {}-{} and {}-{} for subnet {cidr}.",
                    cidr.ip(w[0].0),
                    cidr.ip(w[0].1),
                    cidr.ip(w[1].0),
                    cidr.ip(w[1].1)
                ),
            ));
        }
    }
    Ok(sorted)
}

/// One subnet's allocator: the allocated set (every fixed IP, inside the
/// pools or not) plus a next-fit cursor, so consecutive creates cost
/// O(log n), never a scan of all allocations.
#[derive(Clone, Debug)]
pub struct SubnetIpam {
    cidr: Cidr,
    pools: Arc<Vec<Range>>,
    pool_size: u128,
    allocated: OrdSet<u128>,
    /// Allocated addresses that lie inside the pools.
    in_pools: u128,
    cursor: u128,
    /// SLAAC or DHCPv6-stateless: a port's address here is its EUI-64,
    /// computed from its MAC, never allocated from the pools.
    auto: bool,
}

/// The EUI-64 address of `mac` in a /64: the MAC with ff:fe in its middle
/// and the universal/local bit flipped (RFC 4291, appendix A).
pub fn eui64(cidr: &Cidr, mac: [u8; 6]) -> u128 {
    let iid = u64::from_be_bytes([
        mac[0] ^ 0x02,
        mac[1],
        mac[2],
        0xff,
        0xfe,
        mac[3],
        mac[4],
        mac[5],
    ]);
    cidr.base | iid as u128
}

impl SubnetIpam {
    pub fn new(cidr: Cidr, pools: Vec<Range>) -> SubnetIpam {
        let pool_size = pools.iter().map(|(s, e)| e - s + 1).sum();
        let cursor = pools.first().map(|p| p.0).unwrap_or(0);
        SubnetIpam {
            cidr,
            pools: Arc::new(pools),
            pool_size,
            allocated: OrdSet::new(),
            in_pools: 0,
            cursor,
            auto: false,
        }
    }

    /// Marks the subnet as auto-addressed (SLAAC, DHCPv6-stateless).
    pub fn with_auto(mut self, auto: bool) -> SubnetIpam {
        self.auto = auto;
        self
    }

    pub fn is_auto(&self) -> bool {
        self.auto
    }

    pub fn cidr(&self) -> &Cidr {
        &self.cidr
    }

    pub fn pools(&self) -> &[Range] {
        &self.pools
    }

    /// Replaces the pools (subnet update), keeping the allocations.
    pub fn set_pools(&mut self, pools: Vec<Range>) {
        let mut next = SubnetIpam::new(self.cidr, pools).with_auto(self.auto);
        for &ip in self.allocated.iter() {
            next.take(ip);
        }
        *self = next;
    }

    fn in_pool(&self, v: u128) -> bool {
        self.pools.iter().any(|&(s, e)| v >= s && v <= e)
    }

    pub fn is_allocated(&self, v: u128) -> bool {
        self.allocated.contains(&v)
    }

    pub fn allocated_count(&self) -> usize {
        self.allocated.len()
    }

    pub fn free_in_pools(&self) -> u128 {
        self.pool_size - self.in_pools
    }

    /// The next free pool address at or after the cursor (wrapping), without
    /// taking it; None when the pools are exhausted.
    pub fn next_free(&self) -> Option<u128> {
        if self.free_in_pools() == 0 {
            return None;
        }
        // Pools in order, starting with the one holding (or following) the
        // cursor, then wrapping to the first pools again.
        let start = self
            .pools
            .iter()
            .position(|&(_, e)| e >= self.cursor)
            .unwrap_or(0);
        let n = self.pools.len();
        for k in 0..=n {
            let (s, e) = self.pools[(start + k) % n];
            let from = if k == 0 { s.max(self.cursor) } else { s };
            if from > e {
                continue;
            }
            // Walk the allocated addresses in [from, e] in order: the first
            // gap is the answer.
            let mut cand = from;
            for &a in self.allocated.range(from..=e) {
                if a != cand {
                    break;
                }
                if cand == e {
                    break;
                }
                cand += 1;
            }
            if !self.allocated.contains(&cand) && cand <= e {
                return Some(cand);
            }
        }
        // free_in_pools > 0 guarantees a gap; reaching here means the
        // counters are wrong, which `take`/`release` keep from happening.
        None
    }

    /// Marks a requested (or restored) address allocated; the cursor stays,
    /// so automatic allocation still fills the pools in order.
    pub fn take(&mut self, v: u128) {
        if self.allocated.insert(v).is_none() && self.in_pool(v) {
            self.in_pools += 1;
        }
    }

    /// Takes a `next_free` result and moves the cursor past it.
    pub fn take_next(&mut self, v: u128) {
        self.take(v);
        self.cursor = v + 1;
    }

    pub fn release(&mut self, v: u128) {
        if self.allocated.remove(&v).is_some() && self.in_pool(v) {
            self.in_pools -= 1;
        }
    }
}

/// A physical network's VLAN range for tenant networks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VlanRange {
    pub physnet: String,
    /// None: "physnet" alone, provider networks only.
    pub range: Option<(u16, u16)>,
}

/// Lowest free VLAN for a tenant network, trying the ranges in config order.
/// `used` holds (physnet, vid); flat networks use vid 0.
pub fn lowest_free_vlan(
    ranges: &[VlanRange],
    used: &OrdSet<(String, u16)>,
) -> Option<(String, u16)> {
    ranges.iter().find_map(|r| {
        let (lo, hi) = r.range?;
        // The used VIDs of this physnet inside [lo, hi], in order.
        let taken = used
            .range((r.physnet.clone(), lo)..=(r.physnet.clone(), hi))
            .map(|(_, vid)| u32::from(*vid));
        let vid = lowest_free_in(lo.into(), hi.into(), taken)?;
        Some((r.physnet.clone(), vid as u16))
    })
}

/// Lowest free VNI for a tenant vxlan network, trying the ranges
/// (inclusive) in config order.
pub fn lowest_free_vni(ranges: &[(u32, u32)], used: &OrdSet<u32>) -> Option<u32> {
    ranges
        .iter()
        .find_map(|&(lo, hi)| lowest_free_in(lo, hi, used.range(lo..=hi).copied()))
}

/// The lowest value of `[lo, hi]` not in `taken`: the taken values of
/// `[lo, hi]`, ascending.
fn lowest_free_in(lo: u32, hi: u32, taken: impl Iterator<Item = u32>) -> Option<u32> {
    let mut cand = lo;
    for t in taken {
        if t != cand {
            break;
        }
        if cand == hi {
            return None;
        }
        cand += 1;
    }
    Some(cand)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn ip(s: &str) -> u128 {
        super::super::validate::ip_to_u128(s.parse().unwrap())
    }

    #[test]
    fn default_pools_skip_network_broadcast_gateway() {
        let c = Cidr::parse_strict("10.0.0.0/24").unwrap();
        assert_eq!(
            default_pools(&c, Some(ip("10.0.0.1"))),
            vec![(ip("10.0.0.2"), ip("10.0.0.254"))]
        );
        assert_eq!(
            default_pools(&c, Some(ip("10.0.0.100"))),
            vec![
                (ip("10.0.0.1"), ip("10.0.0.99")),
                (ip("10.0.0.101"), ip("10.0.0.254"))
            ]
        );
        assert_eq!(
            default_pools(&c, Some(ip("10.0.0.254"))),
            vec![(ip("10.0.0.1"), ip("10.0.0.253"))]
        );
        assert_eq!(
            default_pools(&c, None),
            vec![(ip("10.0.0.1"), ip("10.0.0.254"))]
        );
        let v6 = Cidr::parse_strict("2001:db8::/64").unwrap();
        // IPv6 has no broadcast: the last address is usable.
        assert_eq!(
            default_pools(&v6, Some(ip("2001:db8::1"))),
            vec![(ip("2001:db8::2"), ip("2001:db8::ffff:ffff:ffff:ffff"))]
        );
        let p31 = Cidr::parse_strict("10.0.0.0/31").unwrap();
        assert!(default_pools(&p31, None).is_empty());
    }

    #[test]
    fn pool_checks() {
        let c = Cidr::parse_strict("10.0.0.0/24").unwrap();
        let gw = Some(ip("10.0.0.1"));
        assert!(check_pools(&c, gw, &[(ip("10.0.0.10"), ip("10.0.0.20"))]).is_ok());
        let e = check_pools(&c, gw, &[(ip("10.0.0.20"), ip("10.0.0.10"))]).unwrap_err();
        assert_eq!(e.kind, "InvalidAllocationPool");
        let e = check_pools(&c, gw, &[(ip("10.0.0.10"), ip("10.0.1.20"))]).unwrap_err();
        assert_eq!(e.kind, "OutOfBoundsAllocationPool");
        let e = check_pools(&c, gw, &[(ip("10.0.0.0"), ip("10.0.0.5"))]).unwrap_err();
        assert_eq!(e.kind, "InvalidAllocationPool");
        let e = check_pools(&c, gw, &[(ip("10.0.0.250"), ip("10.0.0.255"))]).unwrap_err();
        assert_eq!(e.kind, "InvalidAllocationPool");
        let e = check_pools(&c, gw, &[(ip("10.0.0.1"), ip("10.0.0.5"))]).unwrap_err();
        assert_eq!(
            (e.status, e.kind.as_str()),
            (409, "GatewayConflictWithAllocationPools")
        );
        let e = check_pools(
            &c,
            gw,
            &[
                (ip("10.0.0.30"), ip("10.0.0.40")),
                (ip("10.0.0.10"), ip("10.0.0.30")),
            ],
        )
        .unwrap_err();
        assert_eq!(e.kind, "OverlappingAllocationPools");
    }

    #[test]
    fn allocates_in_order_and_exhausts() {
        let c = Cidr::parse_strict("10.0.0.0/29").unwrap();
        let mut a = SubnetIpam::new(c, default_pools(&c, Some(ip("10.0.0.1"))));
        let mut got = Vec::new();
        while let Some(v) = a.next_free() {
            a.take_next(v);
            got.push(v);
        }
        assert_eq!(got, (ip("10.0.0.2")..=ip("10.0.0.6")).collect::<Vec<_>>());
        assert_eq!(a.free_in_pools(), 0);
        a.release(ip("10.0.0.4"));
        assert_eq!(a.next_free(), Some(ip("10.0.0.4")));
        // An address outside the pools does not count against them.
        a.take(ip("10.0.0.1"));
        assert_eq!(a.free_in_pools(), 1);
    }

    #[test]
    fn vlan_lowest_free_over_ranges() {
        let ranges = vec![
            VlanRange {
                physnet: "p0".into(),
                range: None,
            },
            VlanRange {
                physnet: "p1".into(),
                range: Some((100, 102)),
            },
            VlanRange {
                physnet: "p2".into(),
                range: Some((7, 7)),
            },
        ];
        let mut used = OrdSet::new();
        let mut got = Vec::new();
        while let Some(v) = lowest_free_vlan(&ranges, &used) {
            used.insert(v.clone());
            got.push(v);
        }
        assert_eq!(
            got,
            vec![
                ("p1".to_string(), 100),
                ("p1".to_string(), 101),
                ("p1".to_string(), 102),
                ("p2".to_string(), 7)
            ]
        );
        used.remove(&("p1".to_string(), 101));
        assert_eq!(lowest_free_vlan(&ranges, &used), Some(("p1".into(), 101)));
        // A provider network's VLAN outside the range does not block it.
        let mut used = OrdSet::new();
        used.insert(("p1".to_string(), 99));
        used.insert(("p1".to_string(), 101));
        assert_eq!(lowest_free_vlan(&ranges, &used), Some(("p1".into(), 100)));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Alloc,
        Release(usize),
        Take(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => Just(Op::Alloc),
            2 => any::<usize>().prop_map(Op::Release),
            1 => any::<u8>().prop_map(Op::Take),
        ]
    }

    proptest! {
        /// Against a reference that scans the whole /24: an allocation is
        /// always free and inside the pools, and None exactly when the pools
        /// have no free address.
        #[test]
        fn allocator_matches_reference(
            gw in 1u8..=254,
            pool_cut in proptest::option::of((1u8..=254, 1u8..=254)),
            ops in proptest::collection::vec(op(), 1..400),
        ) {
            let c = Cidr::parse_strict("10.9.8.0/24").unwrap();
            let g = c.base + gw as u128;
            let pools = match pool_cut {
                Some((a, b)) => {
                    let (a, b) = (a.min(b) as u128 + c.base, a.max(b) as u128 + c.base);
                    let mut v = Vec::new();
                    if g < a || g > b { v.push((a, b)); } else {
                        if g > a { v.push((a, g - 1)); }
                        if g < b { v.push((g + 1, b)); }
                    }
                    v
                }
                None => default_pools(&c, Some(g)),
            };
            let mut alloc = SubnetIpam::new(c, pools.clone());
            let mut reference: BTreeSet<u128> = BTreeSet::new();
            let in_pool = |v: u128| pools.iter().any(|&(s, e)| v >= s && v <= e);
            for op in ops {
                match op {
                    Op::Alloc => {
                        let free_exists = (c.base..=c.last()).any(|v| in_pool(v) && !reference.contains(&v));
                        match alloc.next_free() {
                            Some(v) => {
                                prop_assert!(free_exists);
                                prop_assert!(in_pool(v), "outside pools");
                                prop_assert!(!reference.contains(&v), "handed out twice");
                                alloc.take_next(v);
                                reference.insert(v);
                            }
                            None => prop_assert!(!free_exists, "exhausted too early"),
                        }
                    }
                    Op::Release(i) => {
                        if !reference.is_empty() {
                            let v = *reference.iter().nth(i % reference.len()).unwrap();
                            reference.remove(&v);
                            alloc.release(v);
                        }
                    }
                    Op::Take(host) => {
                        let v = c.base + host as u128;
                        if !reference.contains(&v) {
                            reference.insert(v);
                            alloc.take(v);
                        }
                        prop_assert!(alloc.is_allocated(v));
                    }
                }
                prop_assert_eq!(alloc.allocated_count(), reference.len());
            }
        }

        #[test]
        fn vlan_allocation_never_repeats(lo in 1u16..4000, len in 0u16..50, pre in proptest::collection::vec(1u16..4095, 0..20)) {
            let hi = (lo + len).min(4094);
            let ranges = vec![VlanRange { physnet: "p".into(), range: Some((lo, hi)) }];
            let mut used: OrdSet<(String, u16)> = pre.iter().map(|v| ("p".to_string(), *v)).collect();
            let free_before = (lo..=hi).filter(|v| !used.contains(&("p".to_string(), *v))).count();
            let mut n = 0;
            while let Some((p, v)) = lowest_free_vlan(&ranges, &used) {
                prop_assert!(v >= lo && v <= hi);
                prop_assert!(used.insert((p, v)).is_none());
                n += 1;
            }
            prop_assert_eq!(n, free_before);
        }
    }
}
