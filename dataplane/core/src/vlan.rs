//! VLAN port modes with Open vSwitch's semantics (`vlan_mode`, `tag`,
//! `trunks` of the Port table):
//!
//! | mode | ingress untagged | ingress tagged V | egress to VLAN V |
//! |---|---|---|---|
//! | access (tag T) | VLAN T | dropped (V≠0) | untagged, only V = T |
//! | trunk | VLAN 0 if 0 is trunked | V if trunked | tagged (VLAN 0: see below) |
//! | native-tagged (T) | VLAN T | V if trunked | tagged, for T and trunks |
//! | native-untagged (T) | VLAN T | V if trunked | untagged for T, tagged for trunks |
//!
//! An empty trunk list means every VLAN. A priority tag (VID 0) counts as
//! untagged. VLAN 0 (untagged and priority-tagged frames of trunk ports)
//! only ever leaves through trunk ports that trunk it, as it came: untagged,
//! or with its priority tag (as Open vSwitch does). A native port never
//! carries VLAN 0, even when its trunk list names it: its untagged frames
//! are its native VLAN (Open vSwitch drops 0 from a native port's trunks
//! for the same reason). VID 4095 is reserved (802.1Q) and never carried.
//! Membership is a 4096-bit map so the per-packet checks are one load and a
//! bit test.
//!
//! VLAN translation, as the Neutron OVS agent programs it on the uplink
//! (`dl_vlan=3029 -> mod_vlan_vid:2` in, the reverse out): a trunk or native
//! port may map external VIDs on the wire to local VLANs inside the switch.
//! A mapped VID is translated on ingress, and its local VLAN leaves the port
//! tagged with the external VID; the maps take precedence over `trunks`.
use serde::{Deserialize, Serialize};

pub const MAX_VID: u16 = 4095;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VlanMode {
    Access,
    Trunk,
    NativeTagged,
    NativeUntagged,
}

impl std::fmt::Display for VlanMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VlanMode::Access => "access",
            VlanMode::Trunk => "trunk",
            VlanMode::NativeTagged => "native-tagged",
            VlanMode::NativeUntagged => "native-untagged",
        })
    }
}

/// Why a port's VLAN settings are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VlanConfigError {
    #[error("tag: {0} is not a VLAN id (1-4094)")]
    BadTag(u16),
    #[error("trunks: {0} is not a VLAN id (0-4094)")]
    BadTrunk(u16),
    #[error("tag: vlan_mode {0} needs a tag")]
    MissingTag(VlanMode),
    #[error("trunks: an access port carries one VLAN and takes no trunks")]
    TrunksOnAccess,
    #[error("tag: a trunk port has no native VLAN; use native-tagged or native-untagged")]
    TagOnTrunk,
    #[error("vlan_translations: {0}")]
    BadTranslation(String),
}

#[derive(Clone, PartialEq, Eq)]
pub struct VidSet([u64; 64]);

impl VidSet {
    pub const fn empty() -> Self {
        VidSet([0; 64])
    }
    pub fn all() -> Self {
        let mut s = VidSet([u64::MAX; 64]);
        // 4095 is reserved.
        s.0[63] &= !(1u64 << 63);
        s
    }
    pub fn insert(&mut self, vid: u16) {
        if vid <= MAX_VID {
            self.0[vid as usize >> 6] |= 1u64 << (vid & 63);
        }
    }
    pub fn remove(&mut self, vid: u16) {
        if vid <= MAX_VID {
            self.0[vid as usize >> 6] &= !(1u64 << (vid & 63));
        }
    }
    #[inline(always)]
    pub fn contains(&self, vid: u16) -> bool {
        vid <= MAX_VID && self.0[(vid as usize >> 6) & 63] & (1u64 << (vid & 63)) != 0
    }
}

impl std::fmt::Debug for VidSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n: u32 = self.0.iter().map(|w| w.count_ones()).sum();
        write!(f, "VidSet({n} vids)")
    }
}

/// How a frame of a given VLAN leaves a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Egress {
    Untagged,
    /// Tagged with this VID on the wire (the VLAN itself, or its translation).
    Tagged(u16),
    /// VLAN 0 out of a trunk: as the frame came, untagged or with its
    /// priority tag (VID 0).
    Priority,
}

/// External <-> local VID maps of a translating port (0 = no mapping).
#[derive(Clone, PartialEq, Eq)]
struct Xlate {
    to_local: Box<[u16; 4096]>,
    to_external: Box<[u16; 4096]>,
}

impl std::fmt::Debug for Xlate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.to_local.iter().filter(|&&v| v != 0).count();
        write!(f, "Xlate({n} VIDs)")
    }
}

/// A port's VLAN configuration, compiled for the fast path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortVlan {
    mode: VlanMode,
    tag: u16,
    trunks: Vec<u16>,
    /// VLANs accepted tagged on ingress.
    tagged_in: VidSet,
    /// VLANs sent out (tagged or not).
    member: VidSet,
    /// VLAN for untagged ingress, or `None` to drop.
    untagged_in: Option<u16>,
    /// VLAN that leaves untagged, if any.
    untagged_out: Option<u16>,
    /// (external, local) pairs as configured.
    translations: Vec<(u16, u16)>,
    xlate: Option<Xlate>,
}

impl PortVlan {
    /// From OVS-style settings. `mode: None` picks OVS's default: access when
    /// a tag is given, trunk otherwise.
    pub fn new(
        mode: Option<VlanMode>,
        tag: Option<u16>,
        trunks: &[u16],
    ) -> Result<Self, VlanConfigError> {
        if let Some(t) = tag {
            if t == 0 || t >= MAX_VID {
                return Err(VlanConfigError::BadTag(t));
            }
        }
        if let Some(&t) = trunks.iter().find(|&&t| t >= MAX_VID) {
            return Err(VlanConfigError::BadTrunk(t));
        }
        let mode = mode.unwrap_or(if tag.is_some() {
            VlanMode::Access
        } else {
            VlanMode::Trunk
        });
        let mut trunk_set = if trunks.is_empty() {
            VidSet::all()
        } else {
            let mut s = VidSet::empty();
            trunks.iter().for_each(|&v| s.insert(v));
            s
        };
        let (tagged_in, member, untagged_in, untagged_out) = match mode {
            VlanMode::Access => {
                let t = tag.ok_or(VlanConfigError::MissingTag(mode))?;
                if !trunks.is_empty() {
                    return Err(VlanConfigError::TrunksOnAccess);
                }
                let mut m = VidSet::empty();
                m.insert(t);
                (VidSet::empty(), m, Some(t), Some(t))
            }
            VlanMode::Trunk => {
                if tag.is_some() {
                    return Err(VlanConfigError::TagOnTrunk);
                }
                let untagged = trunk_set.contains(0).then_some(0);
                (trunk_set.clone(), trunk_set, untagged, untagged)
            }
            VlanMode::NativeTagged | VlanMode::NativeUntagged => {
                let t = tag.ok_or(VlanConfigError::MissingTag(mode))?;
                trunk_set.insert(t);
                // Untagged frames are the native VLAN's: never VLAN 0.
                trunk_set.remove(0);
                let out = (mode == VlanMode::NativeUntagged).then_some(t);
                (trunk_set.clone(), trunk_set, Some(t), out)
            }
        };
        Ok(PortVlan {
            mode,
            tag: tag.unwrap_or(0),
            trunks: trunks.to_vec(),
            tagged_in,
            member,
            untagged_in,
            untagged_out,
            translations: Vec::new(),
            xlate: None,
        })
    }

    /// A port that carries nothing: every frame breaks its membership (the
    /// Neutron agent's "dead VLAN" for a port it cannot place yet).
    pub fn dead() -> PortVlan {
        PortVlan {
            mode: VlanMode::Access,
            tag: 0,
            trunks: Vec::new(),
            tagged_in: VidSet::empty(),
            member: VidSet::empty(),
            untagged_in: None,
            untagged_out: None,
            translations: Vec::new(),
            xlate: None,
        }
    }

    /// An uplink that carries only translated VLANs (`pairs`: external,
    /// local) plus, untagged, `native` (a flat network's local VLAN).
    pub fn uplink(pairs: &[(u16, u16)], native: Option<u16>) -> Result<PortVlan, VlanConfigError> {
        let mut p = PortVlan::new(Some(VlanMode::Trunk), None, &[])?;
        p.tagged_in = VidSet::empty();
        p.member = VidSet::empty();
        p.untagged_in = native;
        p.untagged_out = native;
        if let Some(n) = native {
            if n == 0 || n >= MAX_VID {
                return Err(VlanConfigError::BadTag(n));
            }
            p.mode = VlanMode::NativeUntagged;
            p.tag = n;
            p.member.insert(n);
        }
        p.with_translations(pairs)
    }

    /// Adds external -> local VID translations (trunk and native modes).
    /// Each external and each local VID may appear once.
    pub fn with_translations(mut self, pairs: &[(u16, u16)]) -> Result<Self, VlanConfigError> {
        if pairs.is_empty() {
            return Ok(self);
        }
        if self.mode == VlanMode::Access {
            return Err(VlanConfigError::BadTranslation(
                "an access port cannot translate VLANs".into(),
            ));
        }
        let mut to_local = Box::new([0u16; 4096]);
        let mut to_external = Box::new([0u16; 4096]);
        for &(ext, local) in pairs {
            for (what, v) in [("external", ext), ("local", local)] {
                if v == 0 || v >= MAX_VID {
                    return Err(VlanConfigError::BadTranslation(format!(
                        "{what} VID {v} is not 1-4094"
                    )));
                }
            }
            if to_local[ext as usize] != 0 {
                return Err(VlanConfigError::BadTranslation(format!(
                    "external VID {ext} mapped twice"
                )));
            }
            if to_external[local as usize] != 0 {
                return Err(VlanConfigError::BadTranslation(format!(
                    "local VLAN {local} mapped twice"
                )));
            }
            to_local[ext as usize] = local;
            to_external[local as usize] = ext;
            self.member.insert(local);
        }
        self.translations = pairs.to_vec();
        self.xlate = Some(Xlate {
            to_local,
            to_external,
        });
        Ok(self)
    }

    pub fn translations(&self) -> &[(u16, u16)] {
        &self.translations
    }

    pub fn mode(&self) -> VlanMode {
        self.mode
    }
    pub fn tag(&self) -> Option<u16> {
        (self.tag != 0).then_some(self.tag)
    }
    pub fn trunks(&self) -> &[u16] {
        &self.trunks
    }

    /// The VLAN a frame arriving here belongs to, from its outer tag's VID
    /// (`None` = untagged); `None` means it breaks the port's membership.
    #[inline(always)]
    pub fn ingress(&self, vid: Option<u16>) -> Option<u16> {
        match vid {
            None | Some(0) => self.untagged_in,
            Some(v) => {
                if let Some(x) = &self.xlate {
                    let local = x.to_local[v as usize & 0x0fff];
                    if local != 0 {
                        return Some(local);
                    }
                }
                self.tagged_in.contains(v).then_some(v)
            }
        }
    }

    /// How a frame of `vlan` leaves this port; `None` if not a member.
    #[inline(always)]
    pub fn egress(&self, vlan: u16) -> Option<Egress> {
        if !self.member.contains(vlan) {
            return None;
        }
        if vlan == 0 {
            return Some(Egress::Priority);
        }
        if self.untagged_out == Some(vlan) {
            return Some(Egress::Untagged);
        }
        if let Some(x) = &self.xlate {
            let ext = x.to_external[vlan as usize & 0x0fff];
            if ext != 0 {
                return Some(Egress::Tagged(ext));
            }
        }
        Some(Egress::Tagged(vlan))
    }

    #[inline(always)]
    pub fn is_member(&self, vlan: u16) -> bool {
        self.member.contains(vlan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn access() {
        let p = PortVlan::new(None, Some(100), &[]).unwrap();
        assert_eq!(p.mode(), VlanMode::Access);
        assert_eq!(p.ingress(None), Some(100));
        assert_eq!(p.ingress(Some(0)), Some(100), "priority tag is untagged");
        assert_eq!(p.ingress(Some(100)), None, "tagged frames break access");
        assert_eq!(p.ingress(Some(200)), None);
        assert_eq!(p.egress(100), Some(Egress::Untagged));
        assert_eq!(p.egress(200), None);
    }

    #[test]
    fn trunk_all_and_list() {
        let all = PortVlan::new(None, None, &[]).unwrap();
        assert_eq!(all.ingress(None), Some(0));
        assert_eq!(all.ingress(Some(7)), Some(7));
        assert_eq!(all.egress(7), Some(Egress::Tagged(7)));
        assert_eq!(all.egress(0), Some(Egress::Priority));
        assert_eq!(all.ingress(Some(4095)), None);
        let some = PortVlan::new(Some(VlanMode::Trunk), None, &[10, 20]).unwrap();
        assert_eq!(some.ingress(None), None, "VLAN 0 not trunked");
        assert_eq!(some.ingress(Some(10)), Some(10));
        assert_eq!(some.ingress(Some(30)), None);
        assert_eq!(some.egress(20), Some(Egress::Tagged(20)));
        assert_eq!(some.egress(30), None);
    }

    #[test]
    fn native_modes() {
        let nt = PortVlan::new(Some(VlanMode::NativeTagged), Some(5), &[10]).unwrap();
        assert_eq!(nt.ingress(None), Some(5));
        assert_eq!(nt.ingress(Some(10)), Some(10));
        assert_eq!(nt.ingress(Some(5)), Some(5));
        assert_eq!(nt.egress(5), Some(Egress::Tagged(5)));
        let nu = PortVlan::new(Some(VlanMode::NativeUntagged), Some(5), &[10]).unwrap();
        assert_eq!(nu.egress(5), Some(Egress::Untagged));
        assert_eq!(nu.egress(10), Some(Egress::Tagged(10)));
        assert_eq!(nu.egress(11), None);
        // VLAN 0 in the trunk list of a native port is ignored.
        let n0 = PortVlan::new(Some(VlanMode::NativeUntagged), Some(5), &[0, 10]).unwrap();
        assert_eq!(
            (n0.egress(0), n0.ingress(None), n0.ingress(Some(0))),
            (None, Some(5), Some(5))
        );
    }

    #[test]
    fn translation_as_the_neutron_agent_does_on_the_uplink() {
        let up = PortVlan::new(None, None, &[100])
            .unwrap()
            .with_translations(&[(3029, 2), (3030, 3)])
            .unwrap();
        assert_eq!(up.ingress(Some(3029)), Some(2));
        assert_eq!(up.ingress(Some(3030)), Some(3));
        assert_eq!(up.ingress(Some(100)), Some(100), "plain trunks still pass");
        assert_eq!(up.ingress(Some(2)), None, "local VIDs are not on the wire");
        assert_eq!(up.ingress(Some(3031)), None);
        assert_eq!(up.egress(2), Some(Egress::Tagged(3029)));
        assert_eq!(up.egress(3), Some(Egress::Tagged(3030)));
        assert_eq!(up.egress(100), Some(Egress::Tagged(100)));
        assert_eq!(up.egress(4), None);
        // A flat network on the same uplink: native-untagged local VLAN 5.
        let flat = PortVlan::new(Some(VlanMode::NativeUntagged), Some(5), &[5])
            .unwrap()
            .with_translations(&[(3029, 2)])
            .unwrap();
        assert_eq!(flat.ingress(None), Some(5));
        assert_eq!(flat.egress(5), Some(Egress::Untagged));
        assert_eq!(flat.egress(2), Some(Egress::Tagged(3029)));
        for bad in [
            &[(3029, 2), (3029, 3)][..],
            &[(3029, 2), (3030, 2)],
            &[(0, 2)],
            &[(5000, 2)],
            &[(10, 4095)],
        ] {
            let e = PortVlan::new(None, None, &[])
                .unwrap()
                .with_translations(bad)
                .unwrap_err();
            assert!(e.to_string().starts_with("vlan_translations:"), "{e}");
        }
        assert!(PortVlan::new(None, Some(3), &[])
            .unwrap()
            .with_translations(&[(9, 3)])
            .is_err());
    }

    #[test]
    fn dead_and_uplink_ports() {
        let d = PortVlan::dead();
        assert_eq!(
            (
                d.ingress(None),
                d.ingress(Some(5)),
                d.egress(0),
                d.egress(5)
            ),
            (None, None, None, None)
        );
        let up = PortVlan::uplink(&[(3029, 2)], Some(7)).unwrap();
        assert_eq!(up.ingress(Some(3029)), Some(2));
        assert_eq!(up.ingress(Some(100)), None, "nothing but the mapped VIDs");
        assert_eq!(up.ingress(None), Some(7), "the flat network, untagged");
        assert_eq!(up.egress(2), Some(Egress::Tagged(3029)));
        assert_eq!(up.egress(7), Some(Egress::Untagged));
        assert_eq!(up.egress(3), None);
        let bare = PortVlan::uplink(&[], None).unwrap();
        assert_eq!((bare.ingress(None), bare.ingress(Some(1))), (None, None));
    }

    #[test]
    fn bad_settings_are_refused_with_the_field() {
        assert_eq!(
            PortVlan::new(None, Some(0), &[]),
            Err(VlanConfigError::BadTag(0))
        );
        assert_eq!(
            PortVlan::new(None, Some(4095), &[]),
            Err(VlanConfigError::BadTag(4095))
        );
        assert_eq!(
            PortVlan::new(None, None, &[5000]),
            Err(VlanConfigError::BadTrunk(5000))
        );
        assert_eq!(
            PortVlan::new(Some(VlanMode::Access), None, &[]),
            Err(VlanConfigError::MissingTag(VlanMode::Access))
        );
        assert_eq!(
            PortVlan::new(Some(VlanMode::Access), Some(3), &[4]),
            Err(VlanConfigError::TrunksOnAccess)
        );
        assert!(PortVlan::new(Some(VlanMode::Trunk), Some(3), &[])
            .unwrap_err()
            .to_string()
            .starts_with("tag:"));
    }

    proptest! {
        // Reference: the table in the module docs, written out naively.
        #[test]
        fn membership_matches_reference(
            mode in prop_oneof![Just(VlanMode::Access), Just(VlanMode::Trunk), Just(VlanMode::NativeTagged), Just(VlanMode::NativeUntagged)],
            tag in 1u16..4095,
            trunks in proptest::collection::vec(0u16..4095, 0..6),
            vid in proptest::option::of(0u16..4096),
            out in 0u16..4096,
        ) {
            let trunks = if mode == VlanMode::Access { vec![] } else { trunks };
            let tag_opt = if mode == VlanMode::Trunk { None } else { Some(tag) };
            let p = PortVlan::new(Some(mode), tag_opt, &trunks).unwrap();
            let trunked = |v: u16| v < 4095 && (trunks.is_empty() || trunks.contains(&v));
            let native_trunked = |v: u16| v != 0 && trunked(v);
            let want_in = match (mode, vid) {
                (VlanMode::Access, None | Some(0)) => Some(tag),
                (VlanMode::Access, Some(_)) => None,
                (VlanMode::Trunk, None | Some(0)) => trunked(0).then_some(0),
                (VlanMode::Trunk, Some(v)) => trunked(v).then_some(v),
                (_, None | Some(0)) => Some(tag),
                (_, Some(v)) => (v == tag || native_trunked(v)).then_some(v),
            };
            prop_assert_eq!(p.ingress(vid), want_in);
            let want_out = match mode {
                VlanMode::Access => (out == tag).then_some(Egress::Untagged),
                VlanMode::Trunk => trunked(out).then_some(if out == 0 { Egress::Priority } else { Egress::Tagged(out) }),
                VlanMode::NativeTagged => (out == tag || native_trunked(out)).then_some(Egress::Tagged(out)),
                VlanMode::NativeUntagged => (out == tag || native_trunked(out)).then_some(if out == tag { Egress::Untagged } else { Egress::Tagged(out) }),
            };
            prop_assert_eq!(p.egress(out), want_out);
        }
    }
}
