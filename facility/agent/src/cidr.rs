//! Addresses with a prefix length (`10.0.1.1/24`), as the Facility API carries them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address and a prefix length; the address may have host bits set (an interface address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Parses `addr/prefix`; `None` when either part is malformed or the prefix is too long.
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = text.split_once('/')?;
        let addr: IpAddr = addr.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        (prefix <= max_prefix(addr)).then_some(Cidr { addr, prefix })
    }

    /// The network this address belongs to (host bits cleared).
    pub fn network(self) -> Cidr {
        Cidr {
            addr: from_bits(self.addr, to_bits(self.addr) & mask(self.addr, self.prefix)),
            prefix: self.prefix,
        }
    }

    /// Whether `ip` lies inside this network.
    pub fn contains(self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4()
            && to_bits(ip) & mask(ip, self.prefix) == to_bits(self.addr) & mask(self.addr, self.prefix)
    }

    /// The first usable address of the network (network address + 1).
    pub fn first_host(self) -> IpAddr {
        from_bits(self.addr, (to_bits(self.addr) & mask(self.addr, self.prefix)).wrapping_add(1))
    }

    /// The `n`-th address counted down from the top of the network (0: the last address,
    /// IPv4's broadcast); `None` past the bottom.
    pub fn nth_from_top(self, n: u128) -> Option<IpAddr> {
        let width = u32::from(max_prefix(self.addr));
        let host_bits = width - u32::from(self.prefix.min(max_prefix(self.addr)));
        let size_minus_one = if host_bits == 128 { u128::MAX } else { (1u128 << host_bits) - 1 };
        let offset = size_minus_one.checked_sub(n)?;
        Some(from_bits(self.addr, (to_bits(self.addr) & mask(self.addr, self.prefix)) + offset))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

fn to_bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_bits(like: IpAddr, bits: u128) -> IpAddr {
    match like {
        // Truncation is intended: IPv4 values never exceed 32 bits here.
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(bits as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(bits)),
    }
}

fn mask(addr: IpAddr, prefix: u8) -> u128 {
    let width = u32::from(max_prefix(addr));
    let prefix = u32::from(prefix).min(width);
    if prefix == 0 {
        return 0;
    }
    let all: u128 = if width == 128 { u128::MAX } else { (1u128 << width) - 1 };
    all & !((1u128 << (width - prefix)) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_masks_ipv4() {
        let c = Cidr::parse("10.0.1.7/24").unwrap();
        assert_eq!(c.network().to_string(), "10.0.1.0/24");
        assert!(c.contains("10.0.1.200".parse().unwrap()));
        assert!(!c.contains("10.0.2.1".parse().unwrap()));
        assert_eq!(Cidr::parse("10.4.0.0/16").unwrap().first_host().to_string(), "10.4.0.1");
        assert_eq!(Cidr::parse("10.0.0.9/32").unwrap().network().to_string(), "10.0.0.9/32");
        assert_eq!(Cidr::parse("10.0.0.9/0").unwrap().network().to_string(), "0.0.0.0/0");
        let c = Cidr::parse("10.4.0.0/24").unwrap();
        assert_eq!(c.nth_from_top(0).unwrap().to_string(), "10.4.0.255");
        assert_eq!(c.nth_from_top(1).unwrap().to_string(), "10.4.0.254");
        assert_eq!(c.nth_from_top(255).unwrap().to_string(), "10.4.0.0");
        assert_eq!(c.nth_from_top(256), None);
    }

    #[test]
    fn parses_ipv6_and_rejects_garbage() {
        let c = Cidr::parse("fd00::5/64").unwrap();
        assert_eq!(c.network().to_string(), "fd00::/64");
        assert_eq!(c.nth_from_top(1).unwrap().to_string(), "fd00::ffff:ffff:ffff:fffe");
        assert!(!c.contains("10.0.0.1".parse().unwrap()));
        for bad in ["10.0.0.1", "10.0.0.1/33", "x/24", "10.0.0.1/", "fd00::/129"] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
    }
}
