//! Infranet subnets: every realization gets its own aligned run of /24 blocks of 10.0.0.0/8,
//! each block claimed by one store key. The first address is the facility's gateway on it (the
//! Facility API says so); nodes get .2, .3, ... in order.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use rand::Rng;
use trellis_types::Error;

use crate::keys;

/// /24 blocks in 10.0.0.0/8.
const BLOCKS: u32 = 1 << 16;

/// An aligned run of `count` (a power of two) /24 blocks starting at block `first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub first: u32,
    pub count: u32,
}

impl Subnet {
    /// The blocks a subnet for `nodes` nodes spans (network, gateway and broadcast addresses
    /// excluded).
    pub fn blocks_for(nodes: usize) -> u32 {
        let needed = (nodes as u64 + 3).div_ceil(256);
        (needed.max(1) as u32).next_power_of_two()
    }

    fn base(&self) -> u32 {
        u32::from(Ipv4Addr::new(10, 0, 0, 0)) + (self.first << 8)
    }

    pub fn cidr(&self) -> String {
        format!("{}/{}", Ipv4Addr::from(self.base()), 24 - self.count.trailing_zeros())
    }

    /// Reads back a subnet written by [`Subnet::cidr`].
    pub fn parse(cidr: &str) -> Option<Subnet> {
        let (address, length) = cidr.split_once('/')?;
        let address: Ipv4Addr = address.parse().ok()?;
        let length: u32 = length.parse().ok()?;
        let [first_octet, b, c, d] = address.octets();
        if first_octet != 10 || d != 0 || !(8..=24).contains(&length) {
            return None;
        }
        let subnet = Subnet { first: (u32::from(b) << 8) | u32::from(c), count: 1 << (24 - length) };
        (subnet.first.is_multiple_of(subnet.count)).then_some(subnet)
    }

    pub fn keys(&self) -> Vec<String> {
        (self.first..self.first + self.count).map(keys::infranet).collect()
    }

    /// Addresses for `nodes` nodes, from .2 up (.1 is the gateway).
    pub fn addresses(&self, nodes: usize) -> Vec<String> {
        (2..=nodes as u32 + 1).map(|i| Ipv4Addr::from(self.base() + i).to_string()).collect()
    }
}

/// Picks a free subnet for `nodes` nodes given the blocks in use. The start is random so
/// concurrent realizations rarely contend for the same block key.
pub fn choose(nodes: usize, used: &HashSet<u32>) -> Result<Subnet, Error> {
    let count = Subnet::blocks_for(nodes);
    if count > BLOCKS {
        return Err(Error::invalid("model", format!("{nodes} nodes do not fit one infranet")));
    }
    let slots = BLOCKS / count;
    let free = |slot: u32| (slot * count..(slot + 1) * count).all(|b| !used.contains(&b));
    let mut rng = rand::rng();
    for _ in 0..64 {
        let slot = rng.random_range(0..slots);
        if free(slot) {
            return Ok(Subnet { first: slot * count, count });
        }
    }
    let start = rng.random_range(0..slots);
    (0..slots)
        .map(|i| (start + i) % slots)
        .find(|&slot| free(slot))
        .map(|slot| Subnet { first: slot * count, count })
        .ok_or_else(|| Error::ResourceExhausted("every infranet subnet is in use".to_owned()))
}

/// The block a store key under [`keys::INFRANET`] claims.
pub fn parse_block_key(key: &str) -> Option<u32> {
    key.strip_prefix(keys::INFRANET)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_grow_in_aligned_powers_of_two() {
        assert_eq!(Subnet::blocks_for(1), 1);
        assert_eq!(Subnet::blocks_for(253), 1);
        assert_eq!(Subnet::blocks_for(254), 2);
        assert_eq!(Subnet::blocks_for(1000), 4);
        let s = Subnet { first: 258, count: 1 };
        assert_eq!(s.cidr(), "10.1.2.0/24");
        assert_eq!(s.addresses(3), ["10.1.2.2", "10.1.2.3", "10.1.2.4"]);
        let wide = Subnet { first: 4, count: 4 };
        assert_eq!(wide.cidr(), "10.0.4.0/22");
        assert_eq!(wide.addresses(300)[299], "10.0.5.45");
        for subnet in [s, wide] {
            assert_eq!(Subnet::parse(&subnet.cidr()), Some(subnet));
        }
        assert_eq!(Subnet::parse("10.0.5.0/22"), None, "misaligned");
        assert_eq!(Subnet::parse("192.168.0.0/24"), None);
        assert_eq!(wide.keys(), (4..8).map(keys::infranet).collect::<Vec<_>>());
        assert_eq!(parse_block_key(&keys::infranet(77)), Some(77));
    }

    #[test]
    fn choosing_avoids_used_blocks() {
        let used: HashSet<u32> = (0..BLOCKS).filter(|b| b % 8 != 5).collect();
        for _ in 0..20 {
            let s = choose(10, &used).unwrap();
            assert_eq!(s.count, 1);
            assert_eq!(s.first % 8, 5);
        }
        // Only single blocks are free: a two-block subnet does not fit.
        assert!(matches!(choose(300, &used), Err(Error::ResourceExhausted(_))));
    }
}
