//! Flood sets: where a frame flooded in a VLAN goes, worked out once per
//! (VLAN, arriving tag) per burst.
use super::{Action, DropReason, TagAction};
use crate::frame::BURST;
use crate::port::{PortId, PortMask, MAX_PORTS};
use crate::view::SwitchView;

/// The ports a frame flooded in `vlan` goes to, each with the tag action it
/// needs: every port of the bridge that is a member of `vlan`, but the
/// input port.
#[derive(Debug, Clone, Copy)]
pub struct FloodSet {
    vlan: u16,
    in_tci: Option<u16>,
    targets: [(PortId, TagAction); MAX_PORTS],
    len: usize,
}

impl Default for FloodSet {
    fn default() -> Self {
        FloodSet {
            vlan: 0,
            in_tci: None,
            targets: [(PortId::default(), TagAction::Keep); MAX_PORTS],
            len: 0,
        }
    }
}

impl FloodSet {
    /// Fills the set for a frame of `vlan` (arrived with outer TCI `in_tci`)
    /// from `in_port`, over the bridge's `members`.
    pub fn fill(
        &mut self,
        view: &SwitchView,
        members: PortMask,
        in_port: PortId,
        vlan: u16,
        in_tci: Option<u16>,
    ) {
        self.vlan = vlan;
        self.in_tci = in_tci;
        self.len = 0;
        for p in members.without(in_port).iter() {
            if let Some(eg) = view.port(p).and_then(|o| o.vlan.egress(vlan)) {
                // At most MAX_PORTS members, so there is always room.
                if let Some(slot) = self.targets.get_mut(self.len) {
                    *slot = (p, TagAction::for_egress(in_tci, eg));
                    self.len += 1;
                }
            }
        }
    }

    /// The ports and their tag actions, by port number.
    #[inline(always)]
    pub fn targets(&self) -> &[(PortId, TagAction)] {
        &self.targets[..self.len.min(MAX_PORTS)]
    }

    #[inline(always)]
    fn is_for(&self, vlan: u16, in_tci: Option<u16>) -> bool {
        self.vlan == vlan && self.in_tci == in_tci
    }
}

/// The flood sets of one burst: at most one per frame from `classify`, and
/// one more per frame from `filter` (a flood some ports refuse).
pub struct FloodSets {
    sets: Box<[FloodSet; 2 * BURST]>,
    len: usize,
}

impl Default for FloodSets {
    fn default() -> Self {
        FloodSets {
            sets: Box::new([FloodSet::default(); 2 * BURST]),
            len: 0,
        }
    }
}

impl FloodSets {
    /// Forgets the previous burst's sets.
    #[inline(always)]
    pub fn clear(&mut self) {
        self.len = 0;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Set `n` of this burst.
    #[inline(always)]
    pub fn get(&self, n: u8) -> Option<&FloodSet> {
        self.sets[..self.len.min(2 * BURST)].get(n as usize)
    }

    /// The action of flooding as set `n` does but only to the ports in
    /// `keep`: a drop (`Denied`) when none is left, an output when one is,
    /// else a flood through a new set of this burst.
    pub fn restrict(&mut self, n: u8, keep: PortMask) -> Action {
        let Some(&set) = self.get(n) else {
            return Action::Drop(DropReason::NoOutput);
        };
        let mut sub = FloodSet { len: 0, ..set };
        for &(p, tag) in set.targets() {
            if keep.contains(p) {
                sub.targets[sub.len] = (p, tag);
                sub.len += 1;
            }
        }
        match sub.targets() {
            [] => return Action::Drop(DropReason::Denied),
            &[(p, tag)] => return Action::Output(p, tag),
            _ => {}
        }
        let Some(slot) = self.sets.get_mut(self.len) else {
            // Two sets per frame at most: cannot happen.
            return Action::Drop(DropReason::NoOutput);
        };
        // A restricted set is never shared: give it a VLAN no frame has.
        sub.vlan = u16::MAX;
        *slot = sub;
        self.len += 1;
        Action::Flood((self.len - 1) as u8)
    }

    /// The action of flooding a frame of `vlan` (arrived with `in_tci`) from
    /// `in_port`: dropped when no other port is in the VLAN, sent as to one
    /// port when just one is, else a flood through a set of this burst
    /// (reused by every frame of the burst with the same VLAN and tag).
    #[inline]
    pub fn resolve(
        &mut self,
        view: &SwitchView,
        members: PortMask,
        in_port: PortId,
        vlan: u16,
        in_tci: Option<u16>,
    ) -> Action {
        let known = self.sets[..self.len.min(2 * BURST)]
            .iter()
            .position(|s| s.is_for(vlan, in_tci));
        let n = match known {
            Some(n) => n,
            None => {
                let Some(set) = self.sets.get_mut(self.len) else {
                    // One set per frame at most: cannot happen.
                    return Action::Drop(DropReason::NoOutput);
                };
                set.fill(view, members, in_port, vlan, in_tci);
                self.len += 1;
                self.len - 1
            }
        };
        match self.sets[n].targets() {
            [] => Action::Drop(DropReason::NoOutput),
            &[(p, tag)] => Action::Output(p, tag),
            // n < 2 * BURST = 64: the cast is lossless.
            _ => Action::Flood(n as u8),
        }
    }
}
