//! DHCPv4 messages (RFC 2131, options from RFC 2132 and RFC 3442): a view
//! that reads a BOOTP header and walks its options without panicking, and
//! the constants a server needs to write one.

use super::{read_array, read_u16, read_u32, Result, WireError};

mod field {
    pub const OP: usize = 0;
    pub const HTYPE: usize = 1;
    pub const HLEN: usize = 2;
    pub const XID: usize = 4;
    pub const FLAGS: usize = 10;
    pub const CIADDR: usize = 12;
    pub const GIADDR: usize = 24;
    pub const CHADDR: usize = 28;
    pub const COOKIE: usize = 236;
    pub const OPTIONS: usize = 240;
}

/// The fixed BOOTP header and the magic cookie: options start here.
pub const OPTIONS_OFFSET: usize = field::OPTIONS;
/// The smallest BOOTP message relays and old clients accept (RFC 1542).
pub const MIN_MESSAGE_LEN: usize = 300;
/// The magic cookie that makes a BOOTP message a DHCP one.
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// The broadcast bit of the flags field.
pub const FLAG_BROADCAST: u16 = 0x8000;
/// UDP port of servers and of clients.
pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;

/// `op` values.
pub const BOOTREQUEST: u8 = 1;
pub const BOOTREPLY: u8 = 2;

/// Option codes used here.
pub mod opt {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const DOMAIN_NAME: u8 = 15;
    pub const INTERFACE_MTU: u8 = 26;
    pub const BROADCAST: u8 = 28;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMETER_LIST: u8 = 55;
    pub const RENEWAL_TIME: u8 = 58;
    pub const REBINDING_TIME: u8 = 59;
    pub const CLASSLESS_ROUTES: u8 = 121;
    pub const END: u8 = 255;
}

/// DHCP message types (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Discover,
    Offer,
    Request,
    Decline,
    Ack,
    Nak,
    Release,
    Inform,
}

impl MessageType {
    pub fn from_code(code: u8) -> Option<MessageType> {
        Some(match code {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            4 => MessageType::Decline,
            5 => MessageType::Ack,
            6 => MessageType::Nak,
            7 => MessageType::Release,
            8 => MessageType::Inform,
            _ => return None,
        })
    }

    pub fn code(self) -> u8 {
        match self {
            MessageType::Discover => 1,
            MessageType::Offer => 2,
            MessageType::Request => 3,
            MessageType::Decline => 4,
            MessageType::Ack => 5,
            MessageType::Nak => 6,
            MessageType::Release => 7,
            MessageType::Inform => 8,
        }
    }
}

/// A view of a DHCPv4 message (the UDP payload).
///
/// [`new_checked`](Self::new_checked) guarantees the fixed header and the
/// magic cookie are there; accessors never panic, and [`options`](Self::options)
/// stops at the first malformed option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> DhcpPacket<T> {
    /// Wraps a UDP payload: `Truncated` below 240 bytes, `Malformed`
    /// without the magic cookie or with a hardware address that is not a
    /// 6-byte Ethernet one.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let data = buffer.as_ref();
        if data.len() < field::OPTIONS {
            return Err(WireError::Truncated);
        }
        if read_array::<4>(data, field::COOKIE) != MAGIC_COOKIE {
            return Err(WireError::Malformed("no DHCP magic cookie"));
        }
        if data[field::HTYPE] != 1 || data[field::HLEN] != 6 {
            return Err(WireError::Malformed("hardware address is not Ethernet"));
        }
        Ok(DhcpPacket { buffer })
    }

    fn data(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn op(&self) -> u8 {
        self.data()[field::OP]
    }

    pub fn xid(&self) -> u32 {
        read_u32(self.data(), field::XID)
    }

    pub fn flags(&self) -> u16 {
        read_u16(self.data(), field::FLAGS)
    }

    pub fn ciaddr(&self) -> [u8; 4] {
        read_array(self.data(), field::CIADDR)
    }

    pub fn giaddr(&self) -> [u8; 4] {
        read_array(self.data(), field::GIADDR)
    }

    /// The client's hardware address (the first 6 bytes of `chaddr`).
    pub fn chaddr(&self) -> [u8; 6] {
        read_array(self.data(), field::CHADDR)
    }

    /// The options, in order, until `END`, the end of the buffer or the
    /// first option whose length runs past it.
    pub fn options(&self) -> Options<'_> {
        Options {
            rest: self.data().get(field::OPTIONS..).unwrap_or_default(),
        }
    }

    /// The first option `code`'s data.
    pub fn option(&self, code: u8) -> Option<&[u8]> {
        self.options().find(|&(c, _)| c == code).map(|(_, d)| d)
    }

    /// Option 53, if it is there and known.
    pub fn message_type(&self) -> Option<MessageType> {
        match self.option(opt::MESSAGE_TYPE)? {
            [code] => MessageType::from_code(*code),
            _ => None,
        }
    }

    /// An IPv4 address option (50, 54): exactly four bytes.
    pub fn address_option(&self, code: u8) -> Option<[u8; 4]> {
        self.option(code)?.try_into().ok()
    }
}

/// The options of a message: `(code, data)` pairs, PADs skipped.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Options<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (&code, tail) = self.rest.split_first()?;
            match code {
                opt::PAD => self.rest = tail,
                opt::END => {
                    self.rest = &[];
                    return None;
                }
                _ => {
                    let Some((&len, tail)) = tail.split_first() else {
                        self.rest = &[];
                        return None;
                    };
                    let Some(data) = tail.get(..usize::from(len)) else {
                        self.rest = &[];
                        return None;
                    };
                    self.rest = &tail[usize::from(len)..];
                    return Some((code, data));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(options: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; OPTIONS_OFFSET];
        m[0] = BOOTREQUEST;
        m[1] = 1;
        m[2] = 6;
        m[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        m[10] = 0x80;
        m[28..34].copy_from_slice(&[2, 0, 0, 0, 0, 7]);
        m[236..240].copy_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(options);
        m
    }

    #[test]
    fn reads_the_header_and_walks_the_options() {
        let m = message(&[0, 53, 1, 3, 50, 4, 10, 0, 0, 5, 55, 2, 1, 3, 255, 9, 9]);
        let p = DhcpPacket::new_checked(&m[..]).unwrap();
        assert_eq!(p.op(), BOOTREQUEST);
        assert_eq!(p.xid(), 0x1234_5678);
        assert_eq!(p.flags(), FLAG_BROADCAST);
        assert_eq!(p.chaddr(), [2, 0, 0, 0, 0, 7]);
        assert_eq!(p.message_type(), Some(MessageType::Request));
        assert_eq!(p.address_option(opt::REQUESTED_IP), Some([10, 0, 0, 5]));
        assert_eq!(p.option(opt::PARAMETER_LIST), Some(&[1u8, 3][..]));
        // Nothing after END counts.
        assert_eq!(p.options().count(), 3);
    }

    #[test]
    fn refuses_what_is_not_dhcp_and_stops_at_a_truncated_option() {
        assert_eq!(
            DhcpPacket::new_checked(&[0u8; 239][..]),
            Err(WireError::Truncated)
        );
        let mut m = message(&[]);
        m[236] = 0;
        assert!(DhcpPacket::new_checked(&m[..]).is_err());
        let mut m = message(&[]);
        m[2] = 8;
        assert!(DhcpPacket::new_checked(&m[..]).is_err());
        // 53 says 4 bytes follow, 1 does.
        let m = message(&[53, 1, 1, 51, 4, 0]);
        let p = DhcpPacket::new_checked(&m[..]).unwrap();
        assert_eq!(p.options().count(), 1);
        assert_eq!(p.option(opt::LEASE_TIME), None);
        // A bad message type is not one.
        let m = message(&[53, 2, 1, 1]);
        assert_eq!(
            DhcpPacket::new_checked(&m[..]).unwrap().message_type(),
            None
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            if let Ok(p) = DhcpPacket::new_checked(&bytes[..]) {
                let _ = (p.xid(), p.flags(), p.ciaddr(), p.giaddr(), p.chaddr(), p.message_type());
                for (_, d) in p.options() {
                    proptest::prop_assert!(d.len() <= bytes.len());
                }
            }
        }
    }
}
