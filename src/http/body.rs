//! [`BodyReader`]: reads a request body and throws it away, so that the
//! next request on the connection starts at the right byte. An explicit
//! state machine, fed whatever bytes have arrived: it consumes what it can
//! and leaves a partial chunk-size or trailer line for the next call.

use super::config::MAX_CHUNK_LINE_BYTES;
use super::request::Refused;
use super::response::Status;

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one; this many
    /// trailer bytes so far.
    Trailers(usize),
}

/// Reads one body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyReader {
    /// `Content-Length`: this many bytes left.
    Length(u64),
    /// Chunked, with the body bytes seen so far.
    Chunked { state: Chunk, total: u64 },
}

/// The outcome of [`BodyReader::advance`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// The body is not over: feed more bytes.
    NeedMore,
    /// The body ended.
    Done,
}

impl BodyReader {
    /// A reader for a chunked body.
    pub fn chunked() -> BodyReader {
        BodyReader::Chunked {
            state: Chunk::Size,
            total: 0,
        }
    }

    /// Consumes body bytes from the front of `buf`. Returns how many were
    /// consumed and whether the body is over, or why it is refused.
    /// `max_body` caps the decoded size of a chunked body;
    /// `max_trailer` caps its trailer section.
    pub fn advance(
        &mut self,
        buf: &[u8],
        max_body: u64,
        max_trailer: usize,
    ) -> Result<(usize, Progress), Refused> {
        match self {
            BodyReader::Length(left) => {
                let take = (*left).min(buf.len() as u64);
                *left -= take;
                let progress = if *left == 0 {
                    Progress::Done
                } else {
                    Progress::NeedMore
                };
                Ok((take as usize, progress))
            }
            BodyReader::Chunked { state, total } => {
                advance_chunked(state, total, buf, max_body, max_trailer)
            }
        }
    }
}

fn bad(why: &str) -> Refused {
    Refused::new(Status::BAD_REQUEST, format!("bad chunked encoding: {why}"))
}

fn advance_chunked(
    state: &mut Chunk,
    total: &mut u64,
    buf: &[u8],
    max_body: u64,
    max_trailer: usize,
) -> Result<(usize, Progress), Refused> {
    let mut pos = 0;
    loop {
        let rest = &buf[pos..];
        match *state {
            Chunk::Size => match httparse::parse_chunk_size(rest) {
                Ok(httparse::Status::Complete((used, size))) => {
                    pos += used;
                    *total = total.saturating_add(size);
                    if *total > max_body {
                        return Err(Refused::new(
                            Status::PAYLOAD_TOO_LARGE,
                            format!(
                                "chunked body over the limit of {max_body} bytes (--max-body-bytes)"
                            ),
                        ));
                    }
                    *state = if size == 0 {
                        Chunk::Trailers(0)
                    } else {
                        Chunk::Data(size)
                    };
                }
                Ok(httparse::Status::Partial) if rest.len() > MAX_CHUNK_LINE_BYTES => {
                    return Err(bad("chunk-size line too long"));
                }
                Ok(httparse::Status::Partial) => return Ok((pos, Progress::NeedMore)),
                Err(httparse::InvalidChunkSize) => return Err(bad("invalid chunk size")),
            },
            Chunk::Data(left) => {
                let take = left.min(rest.len() as u64);
                pos += take as usize;
                if take < left {
                    *state = Chunk::Data(left - take);
                    return Ok((pos, Progress::NeedMore));
                }
                *state = Chunk::DataEnd;
            }
            Chunk::DataEnd => match rest {
                [b'\r', b'\n', ..] => {
                    pos += 2;
                    *state = Chunk::Size;
                }
                [] | [b'\r'] => return Ok((pos, Progress::NeedMore)),
                _ => return Err(bad("chunk data not followed by CRLF")),
            },
            Chunk::Trailers(seen) => {
                let Some(nl) = memchr::memchr(b'\n', rest) else {
                    if seen + rest.len() > max_trailer {
                        return Err(trailers_too_large(max_trailer));
                    }
                    return Ok((pos, Progress::NeedMore));
                };
                let line = &rest[..=nl];
                let seen = seen + line.len();
                if seen > max_trailer {
                    return Err(trailers_too_large(max_trailer));
                }
                pos += line.len();
                if line == b"\r\n" {
                    return Ok((pos, Progress::Done));
                }
                if !line.ends_with(b"\r\n") || !line.contains(&b':') {
                    return Err(bad("malformed trailer line"));
                }
                *state = Chunk::Trailers(seen);
            }
        }
    }
}

fn trailers_too_large(max: usize) -> Refused {
    Refused::new(
        Status::HEADERS_TOO_LARGE,
        format!("trailer section over {max} bytes (--max-header-bytes)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in `chunk`-byte pieces the way the channel does
    /// (unconsumed bytes stay buffered); returns the bytes left after the
    /// body, or the refusal.
    fn run(reader: BodyReader, input: &[u8], chunk: usize) -> Result<Vec<u8>, Status> {
        let mut reader = reader;
        let mut pending = Vec::new();
        // Absolute offset in `input` of pending[0].
        let mut base = 0;
        for piece in input.chunks(chunk) {
            pending.extend_from_slice(piece);
            let (used, progress) = reader.advance(&pending, 100, 64).map_err(|r| r.status)?;
            pending.drain(..used);
            base += used;
            if progress == Progress::Done {
                return Ok(input[base..].to_vec());
            }
        }
        Err(Status::CONTINUE)
    }

    fn every_chunking(reader: BodyReader, input: &[u8]) -> Result<Vec<u8>, Status> {
        let whole = run(reader, input, input.len().max(1));
        for chunk in 1..=input.len() {
            assert_eq!(run(reader, input, chunk), whole, "chunk size {chunk}");
        }
        whole
    }

    #[test]
    fn content_length_bodies() {
        assert_eq!(
            every_chunking(BodyReader::Length(5), b"helloGET"),
            Ok(b"GET".to_vec())
        );
        assert_eq!(
            run(BodyReader::Length(5), b"hell", 1),
            Err(Status::CONTINUE)
        );
    }

    #[test]
    fn chunked_bodies() {
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\nNEXT";
        assert_eq!(
            every_chunking(BodyReader::chunked(), body),
            Ok(b"NEXT".to_vec())
        );
        let with_trailer = b"1\r\na\r\n0\r\nX-Sum: 1\r\n\r\nNEXT";
        assert_eq!(
            every_chunking(BodyReader::chunked(), with_trailer),
            Ok(b"NEXT".to_vec())
        );
    }

    #[test]
    fn bad_chunked_bodies() {
        for bad in [
            &b"x\r\n"[..],
            b"4\r\nWikiXX",
            b"1\r\na\r\n0\r\nnocolon\r\n\r\n",
            b"12345678901234567\r\n",
        ] {
            assert_eq!(
                every_chunking(BodyReader::chunked(), bad),
                Err(Status::BAD_REQUEST),
                "{bad:?}"
            );
        }
        let too_big = b"65\r\n";
        assert_eq!(
            every_chunking(BodyReader::chunked(), too_big),
            Err(Status::PAYLOAD_TOO_LARGE)
        );
        let long_trailer = [&b"0\r\nX: "[..], &[b'a'; 80], b"\r\n\r\n"].concat();
        assert_eq!(
            every_chunking(BodyReader::chunked(), &long_trailer),
            Err(Status::HEADERS_TOO_LARGE)
        );
        let long_line = [&b"1;"[..], &[b'a'; MAX_CHUNK_LINE_BYTES]].concat();
        assert_eq!(
            run(BodyReader::chunked(), &long_line, long_line.len()),
            Err(Status::BAD_REQUEST)
        );
    }
}
