//! Feeds arbitrary text to the `ovs-ofctl` flow parser: nothing may panic,
//! an error points inside the text, and a flow that parses prints as text
//! that parses back to the same flow and prints the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switch_core::flow_table::ofctl::{format_flow, parse_flow};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_flow(text) {
        Err(e) => assert!(e.at <= text.len(), "{e} in {text:?}"),
        Ok(f) => {
            let printed = format_flow(&f);
            let back = parse_flow(&printed).unwrap_or_else(|e| panic!("{printed:?}: {e}"));
            assert_eq!(back, f, "{printed:?}");
            assert_eq!(format_flow(&back), printed);
        }
    }
});
