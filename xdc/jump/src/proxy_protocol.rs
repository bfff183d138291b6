//! PROXY protocol version 2: the ingress may put the client's real address ahead of the SSH
//! bytes. Only the binary v2 header is understood (that is what the ingress sends).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt};

const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Why a connection's PROXY header was unusable.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyHeaderError {
    #[error("reading the PROXY header failed")]
    Io(#[from] std::io::Error),
    #[error("not a PROXY protocol v2 header: {0}")]
    Invalid(&'static str),
}

/// Reads a v2 header from `stream`, consuming exactly its bytes, and returns the client address
/// it names: `None` for a `LOCAL` command (the proxy's own health check) or an address family
/// other than TCP over IPv4 or IPv6.
pub(crate) async fn read_header<R: AsyncRead + Unpin>(
    stream: &mut R,
) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut fixed = [0u8; 16];
    stream.read_exact(&mut fixed).await?;
    // Checked before reading on: a client that sent no header must not leave us waiting for
    // a length it never meant.
    if fixed[..12] != SIGNATURE {
        return Err(ProxyHeaderError::Invalid("bad signature"));
    }
    let mut body = vec![0u8; usize::from(u16::from_be_bytes([fixed[14], fixed[15]]))];
    stream.read_exact(&mut body).await?;
    parse(&fixed, &body)
}

fn parse(fixed: &[u8; 16], body: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let version_command = fixed[12];
    if version_command >> 4 != 2 {
        return Err(ProxyHeaderError::Invalid("unsupported version"));
    }
    match version_command & 0x0f {
        0 => return Ok(None),
        1 => {}
        _ => return Err(ProxyHeaderError::Invalid("unknown command")),
    }
    let source = match fixed[13] {
        // TCP over IPv4: source, destination addresses, then ports.
        0x11 => {
            let b = body.get(..12).ok_or(ProxyHeaderError::Invalid("short IPv4 addresses"))?;
            let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
            SocketAddr::from((ip, u16::from_be_bytes([b[8], b[9]])))
        }
        0x21 => {
            let b = body.get(..36).ok_or(ProxyHeaderError::Invalid("short IPv6 addresses"))?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&b[..16]);
            SocketAddr::from((Ipv6Addr::from(octets), u16::from_be_bytes([b[32], b[33]])))
        }
        _ => return Ok(None),
    };
    Ok(Some(source))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.push(cmd);
        out.push(fam);
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[tokio::test]
    async fn reads_ipv4_and_ipv6_and_leaves_the_rest() {
        let mut v4 = header(0x21, 0x11, &[192, 0, 2, 7, 10, 0, 0, 1, 0x1f, 0x90, 0x08, 0x9a]);
        v4.extend_from_slice(b"SSH-2.0-x\r\n");
        let mut reader = &v4[..];
        assert_eq!(read_header(&mut reader).await.unwrap(), Some("192.0.2.7:8080".parse().unwrap()));
        assert_eq!(reader, b"SSH-2.0-x\r\n");

        let mut body = Vec::new();
        body.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        body.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        body.extend_from_slice(&[0, 22, 8, 154]);
        body.extend_from_slice(&[1, 0, 1, 0]); // a TLV after the addresses is skipped
        let v6 = header(0x21, 0x21, &body);
        assert_eq!(read_header(&mut &v6[..]).await.unwrap(), Some("[2001:db8::1]:22".parse().unwrap()));
    }

    #[tokio::test]
    async fn local_and_unknown_families_name_no_client() {
        assert_eq!(read_header(&mut &header(0x20, 0x00, &[])[..]).await.unwrap(), None);
        assert_eq!(read_header(&mut &header(0x21, 0x31, &[0; 216])[..]).await.unwrap(), None);
    }

    #[tokio::test]
    async fn rejects_what_is_not_a_v2_header() {
        let ssh = b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n".to_vec();
        assert!(matches!(read_header(&mut &ssh[..]).await, Err(ProxyHeaderError::Invalid(_))));
        let v1 = header(0x11, 0x11, &[0; 12]);
        assert!(matches!(read_header(&mut &v1[..]).await, Err(ProxyHeaderError::Invalid(_))));
        let short = header(0x21, 0x11, &[0; 4]);
        assert!(matches!(read_header(&mut &short[..]).await, Err(ProxyHeaderError::Invalid(_))));
        assert!(matches!(read_header(&mut &SIGNATURE[..]).await, Err(ProxyHeaderError::Io(_))));
    }
}
