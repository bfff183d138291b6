//! PROXY protocol version 2 (the binary header HAProxy defined): tells a TCP backend, such as
//! the SSH jump host, the client's real address ahead of the forwarded bytes.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Every v2 header starts with these 12 bytes.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The addresses a PROXY header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// The client's address.
    pub source: SocketAddr,
    /// The address the client connected to.
    pub destination: SocketAddr,
}

/// Why bytes are not a PROXY v2 header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    /// More bytes are needed.
    #[error("incomplete PROXY header")]
    Incomplete,
    /// The bytes are not a v2 header we understand.
    #[error("not a PROXY protocol v2 header: {0}")]
    Invalid(&'static str),
}

/// Encodes a `PROXY` command for a TCP connection from `source` to `destination`. Mixed
/// families are sent as IPv6 (IPv4 addresses mapped), since one header has one family.
pub fn encode(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 36);
    out.extend_from_slice(&SIGNATURE);
    out.push(0x21); // version 2, command PROXY
    match (source.ip().to_canonical(), destination.ip().to_canonical()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            out.push(0x11); // AF_INET, STREAM
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&src.octets());
            out.extend_from_slice(&dst.octets());
        }
        (src, dst) => {
            out.push(0x21); // AF_INET6, STREAM
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&as_v6(src).octets());
            out.extend_from_slice(&as_v6(dst).octets());
        }
    }
    out.extend_from_slice(&source.port().to_be_bytes());
    out.extend_from_slice(&destination.port().to_be_bytes());
    out
}

fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// Decodes a header at the start of `bytes`: the addresses (`None` for a `LOCAL` command or an
/// unsupported family) and the header's length.
pub fn decode(bytes: &[u8]) -> Result<(Option<ProxyHeader>, usize), ProxyHeaderError> {
    if bytes.len() < 16 {
        return Err(ProxyHeaderError::Incomplete);
    }
    if bytes[..12] != SIGNATURE {
        return Err(ProxyHeaderError::Invalid("bad signature"));
    }
    if bytes[12] >> 4 != 2 {
        return Err(ProxyHeaderError::Invalid("not version 2"));
    }
    let length = 16 + usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    let body = bytes.get(16..length).ok_or(ProxyHeaderError::Incomplete)?;
    let command = bytes[12] & 0x0f;
    if command == 0 {
        return Ok((None, length));
    }
    if command != 1 {
        return Err(ProxyHeaderError::Invalid("unknown command"));
    }
    let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
    let header = match bytes[13] {
        0x11 if body.len() >= 12 => {
            let ip = |at: usize| IpAddr::from([body[at], body[at + 1], body[at + 2], body[at + 3]]);
            Some(ProxyHeader {
                source: SocketAddr::new(ip(0), port(8)),
                destination: SocketAddr::new(ip(4), port(10)),
            })
        }
        0x21 if body.len() >= 36 => {
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&body[at..at + 16]);
                IpAddr::from(octets)
            };
            Some(ProxyHeader {
                source: SocketAddr::new(ip(0), port(32)),
                destination: SocketAddr::new(ip(16), port(34)),
            })
        }
        0x11 | 0x21 => return Err(ProxyHeaderError::Invalid("address block too short")),
        _ => None,
    };
    Ok((header, length))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_ipv4_and_ipv6() {
        for (src, dst) in [("203.0.113.7:40000", "127.0.1.3:2202"), ("[2001:db8::7]:40000", "[::1]:2202")] {
            let (src, dst) = (src.parse().unwrap(), dst.parse().unwrap());
            let mut bytes = encode(src, dst);
            let length = bytes.len();
            bytes.extend_from_slice(b"SSH-2.0-client\r\n");
            let (header, consumed) = decode(&bytes).unwrap();
            assert_eq!(header, Some(ProxyHeader { source: src, destination: dst }));
            assert_eq!(consumed, length);
        }
    }

    #[test]
    fn the_known_bytes_of_an_ipv4_header() {
        let bytes = encode("1.2.3.4:256".parse().unwrap(), "5.6.7.8:443".parse().unwrap());
        let mut expected = SIGNATURE.to_vec();
        expected.extend_from_slice(&[0x21, 0x11, 0, 12, 1, 2, 3, 4, 5, 6, 7, 8, 1, 0, 1, 187]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn rejects_garbage_and_waits_for_more() {
        assert_eq!(decode(b"SSH-2.0-OpenSSH_9.2p1\r\n"), Err(ProxyHeaderError::Invalid("bad signature")));
        let bytes = encode("1.2.3.4:1".parse().unwrap(), "5.6.7.8:2".parse().unwrap());
        assert_eq!(decode(&bytes[..20]), Err(ProxyHeaderError::Incomplete));
    }
}
