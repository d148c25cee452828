//! A control-socket request line, as a client may send it: parsing never
//! panics, what parses survives a round trip, and a port it would add is
//! validated without panicking (the daemon validates before it opens).
#![no_main]

use control_api::protocol::Request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = serde_json::from_slice::<Request>(data) else {
        return;
    };
    let text = serde_json::to_string(&req).expect("a parsed request serialises");
    let again: Request = serde_json::from_str(&text).expect("and parses again");
    assert_eq!(serde_json::to_string(&again).unwrap(), text);
    if let Request::PortAdd { port, .. } = &req {
        let _ = port.validate("port");
    }
});
