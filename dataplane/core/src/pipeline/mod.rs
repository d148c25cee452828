//! The staged burst pipeline of the NORMAL action.
//!
//! Per received burst, three stages, each a function with a stated
//! contract:
//!
//! 1. [`classify`]: parse every frame's L2 header (the addresses and the
//!    outer tag: further tags are payload, as in Open vSwitch), drop what
//!    goes to a link-local control address, apply the input port's
//!    VLAN rules, learn the sources and look up the destinations in the
//!    bridge's MAC table (buckets prefetched a few frames ahead), and
//!    resolve one [`Action`] per frame (a frame whose input port and
//!    header were decided before, with nothing changed since, takes that
//!    decision from the worker's decision cache instead, as Open vSwitch's
//!    exact-match cache): to one port with a tag action, flood through a [`FloodSet`]
//!    of two or more ports, or drop with a [`DropReason`]. Reads frames,
//!    never changes them.
//! 2. [`execute`]: carry the actions out: tag edits through the `wire`
//!    views, flood copies from a [`FramePool`](crate::frame::FramePool),
//!    the output port's MTU (longer frames are dropped and counted, never
//!    cut), per-port output batches; a batch that fills up is transmitted
//!    at once. Consumes the burst.
//! 3. transmit ([`Outputs::flush`]): every pending output batch goes to its
//!    port once, through the device's [`Transmit`](crate::frame::Transmit).
//!
//! Between 1 and 2, [`serve`] turns what a port sends the switch's own
//! DHCP server into the answer (`Action::Answer`), and the security stage
//! ([`filter`]) and, later, the flow tables refine or replace the actions
//! `classify` resolved, before anything is carried out.
//!
//! No stage allocates, locks, makes a system call or dispatches
//! dynamically per frame: the stages are generic over the device's frame
//! types and monomorphised for each.
mod classify;
mod execute;
mod filter;
mod flood;
mod flows;
mod serve;
#[cfg(test)]
mod tests;
mod trace;
mod tunnel;

pub use classify::{classify, Classified};
pub use execute::{execute, BurstCounts, Outputs};
pub use filter::{filter, revalidate, FilterCounts};
pub use flood::{FloodSet, FloodSets};
pub use flows::{flows, FlowScratch};
pub use serve::{serve, ServeCounts};
pub use trace::trace;
pub use tunnel::{
    decapsulate, encapsulate, make_request, Decapsulated, EncapCounts, Encapsulated, SOURCE_PORTS,
};

use crate::port::PortId;
use crate::vlan::Egress;

/// What a frame needs on the way out of one port, relative to the tags it
/// arrived with (a tag the NIC stripped counts as arrived).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagAction {
    Keep,
    /// Remove the outer tag.
    Pop,
    /// Insert an 802.1Q tag with this TCI.
    Push(u16),
    /// Rewrite the outer tag's TCI.
    Set(u16),
}

impl TagAction {
    /// The action that sends a frame arriving with outer TCI `in_tci` (if
    /// tagged) out of a port that wants it `egress`. PCP and DEI are kept.
    #[inline(always)]
    pub fn for_egress(in_tci: Option<u16>, egress: Egress) -> TagAction {
        match (in_tci, egress) {
            (None, Egress::Untagged) => TagAction::Keep,
            (Some(_), Egress::Untagged) => TagAction::Pop,
            (None, Egress::Tagged(vid)) => TagAction::Push(vid),
            (Some(tci), Egress::Tagged(vid)) if tci & 0x0fff == vid => TagAction::Keep,
            (Some(tci), Egress::Tagged(vid)) => TagAction::Set((tci & 0xf000) | vid),
            // VLAN 0 leaves a trunk as it came: untagged or priority-tagged.
            (_, Egress::Priority) => TagAction::Keep,
        }
    }

    /// The edit of the frame's bytes that this action means for a frame
    /// whose outer tag `stripped` the NIC took out of the data: what was to
    /// stay (or change) must go back in, what was to go is gone already.
    #[inline(always)]
    pub fn on_data(self, stripped: Option<u16>) -> TagAction {
        match (stripped, self) {
            (None, a) => a,
            (Some(tci), TagAction::Keep) => TagAction::Push(tci),
            (Some(_), TagAction::Pop) => TagAction::Keep,
            (Some(_), TagAction::Set(tci) | TagAction::Push(tci)) => TagAction::Push(tci),
        }
    }
}

/// Why a frame is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Its headers could not be parsed, or a tag edit could not be made.
    Malformed,
    /// Its VLAN is not one the input port carries.
    VlanViolation,
    /// Addressed to a link-local control protocol (STP, LACP, LLDP, ...) on
    /// a bridge without `forward_bpdu`: neither forwarded nor learned from.
    LinkLocal,
    /// Nowhere to go: destination learned on the input port, not a member
    /// of the VLAN, or a flood with no other port in it.
    NoOutput,
    /// Port security: not the input port's to send (see `acl::SpoofReason`).
    Spoofed,
    /// No security-group rule of the input port (egress) or of every
    /// output port (ingress) admits this new connection.
    Denied,
    /// Connection tracking found it invalid (`ct_state=+inv`).
    CtInvalid,
    /// The flow tables sent it nowhere: a flow without actions (`drop`),
    /// no flow matched, or its outputs went to no port.
    FlowTable,
}

/// The resolved fate of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// To one port, with a tag action.
    Output(PortId, TagAction),
    /// To every port of flood set `n` of the burst (two or more ports).
    Flood(u8),
    Drop(DropReason),
    /// The switch answered the frame itself (its DHCP server): rewritten
    /// into the answer, it goes back out of this port, the one it came
    /// from, as it is. No later stage looks at it.
    Answer(PortId),
}
