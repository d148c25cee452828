//! Feeds arbitrary bytes to every parser of the fast path: `FlowKey::extract`
//! at both depths (with and without a NIC-stripped tag) and every `wire`
//! view's `new_checked` followed by all its accessors, and the software
//! offloads (checksum completion, TCP segmentation, virtio-net headers). Nothing may panic, and
//! the two depths must agree on the L2 fields (`switch_core::selfcheck`).
#![no_main]

use switch_core::selfcheck::{check_flow_key, check_offloads, check_views};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_flow_key(data, None);
    // The first two bytes double as a NIC-stripped TCI.
    if let Some(&[hi, lo]) = data.first_chunk::<2>() {
        check_flow_key(data, Some(u16::from_be_bytes([hi, lo])));
    }
    check_views(data);
    check_offloads(data);
    // Every view also over the bytes after a 14-byte Ethernet header, where
    // the fast path would hand them over.
    if let Some(rest) = data.get(14..) {
        check_views(rest);
    }
});
