//! Feeds arbitrary text to the `ovs-ofctl` flow parsers: nothing may panic,
//! an error points inside the text, a flow that parses prints (as a flow
//! and as a `dump-flows` line) as text that parses back to the same flow,
//! and a flow's own match selects it as a pattern, strictly and not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switch_core::flow_table::ofctl::{
    format_dump, format_flow, parse_flow, parse_flow_mod, parse_pattern, FlowCounters,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = parse_pattern(text) {
        assert!(e.at <= text.len(), "{e} in {text:?}");
    }
    if let Err(e) = parse_flow_mod(text) {
        assert!(e.at <= text.len(), "{e} in {text:?}");
    }
    match parse_flow(text) {
        Err(e) => assert!(e.at <= text.len(), "{e} in {text:?}"),
        Ok(f) => {
            let printed = format_flow(&f);
            let back = parse_flow(&printed).unwrap_or_else(|e| panic!("{printed:?}: {e}"));
            assert_eq!(back, f, "{printed:?}");
            assert_eq!(format_flow(&back), printed);
            let dumped = format_dump(&f, &FlowCounters::default());
            let back = parse_flow(&dumped).unwrap_or_else(|e| panic!("{dumped:?}: {e}"));
            assert_eq!(back, f, "{dumped:?}");
            let head = printed.split("actions=").next().unwrap_or_default();
            if let Ok(p) = parse_pattern(head) {
                assert!(p.selects(&f, false), "{head:?}");
            }
        }
    }
});
