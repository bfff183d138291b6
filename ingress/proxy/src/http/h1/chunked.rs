//! Finding the end of a chunked body while passing its bytes through unchanged.
//!
//! The proxy forwards chunked bodies as they are (both hops speak HTTP/1.1), so it does not
//! decode them; it only has to know where the body ends, so the connection can carry the
//! next message, and to refuse framing a peer could use to smuggle one message inside another.

/// A chunk-size line longer than this (hex digits plus extensions) is refused.
const MAX_LINE: usize = 4096;
/// Trailer fields after the last chunk, in total, may not exceed this.
const MAX_TRAILERS: usize = 64 * 1024;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ChunkError {
    #[error("a chunk size is not a hexadecimal number")]
    BadSize,
    #[error("a chunk size is larger than 2^64")]
    SizeOverflow,
    #[error("a chunk size line is longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("a chunk is not followed by CRLF")]
    MissingCrlf,
    #[error("the trailer fields exceed {MAX_TRAILERS} bytes")]
    TrailersTooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size.
    Size {
        size: u64,
        digits: u8,
    },
    /// After the size: whitespace or `;extensions`, up to CR.
    Extension {
        size: u64,
    },
    /// Expecting the LF of the size line.
    SizeLf {
        size: u64,
    },
    /// Inside a chunk's data.
    Data {
        left: u64,
    },
    /// Expecting the CR after a chunk's data.
    DataCr,
    /// Expecting the LF after a chunk's data.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    /// Expecting the LF that ends a trailer line; `last` when the line was empty.
    TrailerLf {
        last: bool,
    },
    Done,
}

/// Tracks where a chunked body ends.
#[derive(Debug)]
pub(crate) struct Chunked {
    state: State,
    line: usize,
    trailers: usize,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked { state: State::Size { size: 0, digits: 0 }, line: 0, trailers: 0 }
    }
}

impl Chunked {
    /// Consumes the next bytes of the body. Returns `Some(n)` when the body ends after the
    /// first `n` of them (bytes after that belong to the next message), `None` when all of
    /// them belong to the body and more are needed.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<Option<usize>, ChunkError> {
        let mut at = 0;
        while at < bytes.len() {
            if let State::Data { left } = self.state {
                // Chunk data is skipped in bulk, not byte by byte.
                let take = left.min((bytes.len() - at) as u64);
                at += take as usize;
                self.state = if take == left { State::DataCr } else { State::Data { left: left - take } };
                continue;
            }
            let byte = bytes[at];
            at += 1;
            self.state = self.step(byte)?;
            if self.state == State::Done {
                return Ok(Some(at));
            }
        }
        Ok(None)
    }

    fn step(&mut self, byte: u8) -> Result<State, ChunkError> {
        Ok(match self.state {
            State::Size { size, digits } => {
                self.count_line()?;
                match byte {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let digit = (byte as char).to_digit(16).unwrap_or(0) as u64;
                        if digits >= 16 {
                            return Err(ChunkError::SizeOverflow);
                        }
                        State::Size { size: size << 4 | digit, digits: digits + 1 }
                    }
                    _ if digits == 0 => return Err(ChunkError::BadSize),
                    b'\r' => State::SizeLf { size },
                    b';' | b' ' | b'\t' => State::Extension { size },
                    _ => return Err(ChunkError::BadSize),
                }
            }
            State::Extension { size } => {
                self.count_line()?;
                match byte {
                    b'\r' => State::SizeLf { size },
                    // A bare LF inside an extension could end the line for one parser and
                    // not another: the classic request-smuggling ambiguity.
                    b'\n' => return Err(ChunkError::BadSize),
                    _ => State::Extension { size },
                }
            }
            State::SizeLf { size } => {
                if byte != b'\n' {
                    return Err(ChunkError::MissingCrlf);
                }
                self.line = 0;
                if size == 0 { State::TrailerStart } else { State::Data { left: size } }
            }
            State::Data { .. } => unreachable!("data is consumed in bulk by `feed`"),
            State::DataCr => match byte {
                b'\r' => State::DataLf,
                _ => return Err(ChunkError::MissingCrlf),
            },
            State::DataLf => match byte {
                b'\n' => State::Size { size: 0, digits: 0 },
                _ => return Err(ChunkError::MissingCrlf),
            },
            State::TrailerStart => {
                self.count_trailer()?;
                match byte {
                    b'\r' => State::TrailerLf { last: true },
                    b'\n' => return Err(ChunkError::MissingCrlf),
                    _ => State::Trailer,
                }
            }
            State::Trailer => {
                self.count_trailer()?;
                match byte {
                    b'\r' => State::TrailerLf { last: false },
                    b'\n' => return Err(ChunkError::MissingCrlf),
                    _ => State::Trailer,
                }
            }
            State::TrailerLf { last } => match byte {
                b'\n' if last => State::Done,
                b'\n' => State::TrailerStart,
                _ => return Err(ChunkError::MissingCrlf),
            },
            State::Done => State::Done,
        })
    }

    fn count_line(&mut self) -> Result<(), ChunkError> {
        self.line += 1;
        if self.line > MAX_LINE { Err(ChunkError::LineTooLong) } else { Ok(()) }
    }

    fn count_trailer(&mut self) -> Result<(), ChunkError> {
        self.trailers += 1;
        if self.trailers > MAX_TRAILERS { Err(ChunkError::TrailersTooLong) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `body` split at every possible point and checks each split finds the same end.
    fn end_of(body: &[u8]) -> Result<Option<usize>, ChunkError> {
        let mut whole = Chunked::default();
        let expected = whole.feed(body);
        for split in 0..body.len() {
            let mut parts = Chunked::default();
            let got = match parts.feed(&body[..split]) {
                Ok(Some(n)) => Ok(Some(n)),
                Ok(None) => parts.feed(&body[split..]).map(|end| end.map(|n| n + split)),
                Err(err) => Err(err),
            };
            assert_eq!(got, expected, "split at {split}");
        }
        expected
    }

    #[test]
    fn finds_the_end_of_well_formed_bodies_wherever_reads_split_them() {
        let body = b"5\r\nhello\r\n6;name=value\r\n world\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        assert_eq!(end_of(body), Ok(Some(body.len() - "GET / HTTP/1.1\r\n".len())));
        let with_trailers = b"A\r\n0123456789\r\n0\r\nChecksum: abc\r\nX-T: 1\r\n\r\n";
        assert_eq!(end_of(with_trailers), Ok(Some(with_trailers.len())));
        assert_eq!(end_of(b"0\r\n\r\n"), Ok(Some(5)));
        assert_eq!(end_of(b"ff\r\n"), Ok(None));
        let mut big = Chunked::default();
        assert_eq!(big.feed(b"FFFFFFFF\r\n"), Ok(None));
        assert_eq!(big.feed(&[0u8; 1000]), Ok(None));
    }

    #[test]
    fn refuses_ambiguous_or_malformed_framing() {
        assert_eq!(end_of(b"x\r\n"), Err(ChunkError::BadSize));
        assert_eq!(end_of(b"\r\n"), Err(ChunkError::BadSize));
        assert_eq!(end_of(b"-1\r\n"), Err(ChunkError::BadSize));
        assert_eq!(end_of(b"5\nhello\r\n"), Err(ChunkError::BadSize));
        assert_eq!(end_of(b"5;ext\nhello\r\n"), Err(ChunkError::BadSize));
        assert_eq!(end_of(b"5\r\nhelloX\r\n"), Err(ChunkError::MissingCrlf));
        assert_eq!(end_of(b"5\r\nhello\n0\r\n\r\n"), Err(ChunkError::MissingCrlf));
        assert_eq!(end_of(b"0\r\n\n"), Err(ChunkError::MissingCrlf));
        assert_eq!(end_of(b"10000000000000000\r\n"), Err(ChunkError::SizeOverflow));
        let mut long = b"1;".to_vec();
        long.extend(std::iter::repeat_n(b'x', MAX_LINE));
        assert_eq!(Chunked::default().feed(&long), Err(ChunkError::LineTooLong));
        let mut trailers = b"0\r\n".to_vec();
        trailers.extend(std::iter::repeat_n(b'x', MAX_TRAILERS + 1));
        assert_eq!(Chunked::default().feed(&trailers), Err(ChunkError::TrailersTooLong));
    }
}
