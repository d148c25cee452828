//! DHCPv6 messages (RFC 8415): a view over a client-server message that
//! reads its type and transaction id and walks its options without
//! panicking, and the codes a server needs to write one.

use super::{Result, WireError};

/// UDP ports of clients and of servers and relays.
pub const CLIENT_PORT: u16 = 546;
pub const SERVER_PORT: u16 = 547;

/// Message types.
pub mod msg {
    pub const SOLICIT: u8 = 1;
    pub const ADVERTISE: u8 = 2;
    pub const REQUEST: u8 = 3;
    pub const CONFIRM: u8 = 4;
    pub const RENEW: u8 = 5;
    pub const REBIND: u8 = 6;
    pub const REPLY: u8 = 7;
    pub const RELEASE: u8 = 8;
    pub const DECLINE: u8 = 9;
    pub const INFORMATION_REQUEST: u8 = 11;
}

/// Option codes used here.
pub mod opt {
    pub const CLIENTID: u16 = 1;
    pub const SERVERID: u16 = 2;
    pub const IA_NA: u16 = 3;
    pub const IAADDR: u16 = 5;
    pub const PREFERENCE: u16 = 7;
    pub const STATUS_CODE: u16 = 13;
    pub const RAPID_COMMIT: u16 = 14;
    pub const DNS_SERVERS: u16 = 23;
    pub const DOMAIN_LIST: u16 = 24;
}

/// Status codes (option 13).
pub mod status {
    pub const SUCCESS: u16 = 0;
    pub const NO_ADDRS_AVAIL: u16 = 2;
}

/// The longest DUID (RFC 8415 11.1: 128 bytes after its 2-byte type).
pub const MAX_DUID_LEN: usize = 130;

/// A client-server message: type, 3-byte transaction id, options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dhcpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Dhcpv6Packet<T> {
    /// The message header is 4 bytes; options are checked as they are read.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < 4 {
            return Err(WireError::Truncated);
        }
        Ok(Dhcpv6Packet { buffer })
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    pub fn transaction_id(&self) -> [u8; 3] {
        let b = self.buffer.as_ref();
        [b[1], b[2], b[3]]
    }

    /// The options, in order; stops at the first one that is cut short.
    pub fn options(&self) -> Options<'_> {
        Options {
            rest: &self.buffer.as_ref()[4..],
        }
    }

    /// The data of the first option `code`.
    pub fn option(&self, code: u16) -> Option<&[u8]> {
        self.options().find(|&(c, _)| c == code).map(|(_, d)| d)
    }
}

/// Walks (code, data) options in a byte string of options (a message's,
/// or an IA_NA's after its 12 fixed bytes).
#[derive(Debug, Clone)]
pub struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Options<'a> {
    pub fn new(bytes: &'a [u8]) -> Options<'a> {
        Options { rest: bytes }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let &[c0, c1, l0, l1, ..] = self.rest else {
            self.rest = &[];
            return None;
        };
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        let Some(data) = self.rest.get(4..4 + len) else {
            self.rest = &[];
            return None;
        };
        self.rest = &self.rest[4 + len..];
        Some((u16::from_be_bytes([c0, c1]), data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_type_id_and_options() {
        let mut m = vec![msg::SOLICIT, 0xab, 0xcd, 0xef];
        m.extend_from_slice(&[0, 1, 0, 2, 9, 9]); // client id
        m.extend_from_slice(&[0, 14, 0, 0]); // rapid commit
        let p = Dhcpv6Packet::new_checked(&m[..]).unwrap();
        assert_eq!(p.msg_type(), msg::SOLICIT);
        assert_eq!(p.transaction_id(), [0xab, 0xcd, 0xef]);
        assert_eq!(p.option(opt::CLIENTID), Some(&[9u8, 9][..]));
        assert_eq!(p.option(opt::RAPID_COMMIT), Some(&[][..]));
        assert_eq!(p.option(opt::SERVERID), None);
        // Cut inside the second option: the first is still read.
        let p = Dhcpv6Packet::new_checked(&m[..12]).unwrap();
        assert_eq!(p.options().count(), 1);
        assert!(Dhcpv6Packet::new_checked(&m[..3]).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]
        /// Any bytes: no panic, and the options read never run past them.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(p) = Dhcpv6Packet::new_checked(&bytes[..]) {
                let used: usize = p.options().map(|(_, d)| 4 + d.len()).sum();
                prop_assert!(used <= bytes.len() - 4);
            }
        }
    }
}
