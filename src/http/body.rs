//! [`BodyReader`]: reads a request body and throws it away, so that the
//! next request on the connection starts at the right byte. Fed whatever
//! bytes have arrived, it consumes what it can; a chunked body goes
//! through the shared [`ChunkedDecoder`], which needs nothing buffered.

use super::chunked::{ChunkedDecoder, ChunkedError, ChunkedLimits, MAX_CHUNK_LINE_BYTES, Step};
use super::request::Refused;
use super::response::Status;

/// Reads one body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyReader {
    /// `Content-Length`: this many bytes left.
    Length(u64),
    /// Chunked, with the bytes consumed so far (data and chunk framing;
    /// the trailer section has its own cap, in the decoder).
    Chunked {
        decoder: ChunkedDecoder,
        consumed: u64,
    },
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
    /// A reader for a chunked body whose trailer section may take
    /// `max_trailer` bytes.
    pub fn chunked(max_trailer: usize) -> BodyReader {
        BodyReader::Chunked {
            decoder: ChunkedDecoder::new(ChunkedLimits {
                max_line: MAX_CHUNK_LINE_BYTES,
                max_trailer,
            }),
            consumed: 0,
        }
    }

    /// Consumes body bytes from the front of `buf`. Returns how many were
    /// consumed and whether the body is over, or why it is refused.
    /// `max_body` caps a chunked body as sent, chunk framing included.
    pub fn advance(&mut self, buf: &[u8], max_body: u64) -> Result<(usize, Progress), Refused> {
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
            BodyReader::Chunked { decoder, consumed } => {
                advance_chunked(decoder, consumed, buf, max_body)
            }
        }
    }
}

fn advance_chunked(
    decoder: &mut ChunkedDecoder,
    consumed: &mut u64,
    buf: &[u8],
    max_body: u64,
) -> Result<(usize, Progress), Refused> {
    let mut pos = 0;
    loop {
        let (used, step) = decoder.decode(&buf[pos..]).map_err(refusal)?;
        pos += used;
        *consumed += used as u64;
        match step {
            Step::Data(_) => {}
            Step::ChunkSize(size) => {
                // Counted as sent, chunk framing included, so that a
                // stream of tiny chunks with long extensions cannot run
                // on far past the limit; a chunk counts in full, with
                // its CRLF, as soon as its size is known.
                let framing = if size > 0 { 2 } else { 0 };
                let total = consumed.saturating_add(size).saturating_add(framing);
                if total > max_body {
                    return Err(Refused::new(
                        Status::PAYLOAD_TOO_LARGE,
                        format!(
                            "chunked body over the limit of {max_body} bytes (--max-body-bytes)"
                        ),
                    ));
                }
            }
            Step::NeedMore => return Ok((pos, Progress::NeedMore)),
            Step::Done => return Ok((pos, Progress::Done)),
        }
    }
}

/// The server's answer to a decoding error.
fn refusal(e: ChunkedError) -> Refused {
    let why = match e {
        ChunkedError::BadSizeLine { .. } | ChunkedError::SizeOverflow => "invalid chunk size",
        ChunkedError::SizeLineTooLong { .. } => "chunk-size line too long",
        ChunkedError::NoCrlfAfterData { .. } => "chunk data not followed by CRLF",
        ChunkedError::BadTrailer => "malformed trailer line",
        ChunkedError::TrailersTooLarge { max } => {
            return Refused::new(
                Status::HEADERS_TOO_LARGE,
                format!("trailer section over {max} bytes (--max-header-bytes)"),
            );
        }
    };
    Refused::new(Status::BAD_REQUEST, format!("bad chunked encoding: {why}"))
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
            let (used, progress) = reader.advance(&pending, 100).map_err(|r| r.status)?;
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
            every_chunking(BodyReader::chunked(64), body),
            Ok(b"NEXT".to_vec())
        );
        let with_trailer = b"1\r\na\r\n0\r\nX-Sum: 1\r\n\r\nNEXT";
        assert_eq!(
            every_chunking(BodyReader::chunked(64), with_trailer),
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
                every_chunking(BodyReader::chunked(64), bad),
                Err(Status::BAD_REQUEST),
                "{bad:?}"
            );
        }
        let too_big = b"65\r\n";
        assert_eq!(
            every_chunking(BodyReader::chunked(64), too_big),
            Err(Status::PAYLOAD_TOO_LARGE)
        );
        let long_trailer = [&b"0\r\nX: "[..], &[b'a'; 80], b"\r\n\r\n"].concat();
        assert_eq!(
            every_chunking(BodyReader::chunked(64), &long_trailer),
            Err(Status::HEADERS_TOO_LARGE)
        );
        // Two bytes of data, but framed in 130: the framing counts.
        let one = [&b"1;"[..], &[b'e'; 60], b"\r\na\r\n"].concat();
        let padded = [&one[..], &one, b"0\r\n\r\n"].concat();
        assert_eq!(
            every_chunking(BodyReader::chunked(64), &padded),
            Err(Status::PAYLOAD_TOO_LARGE)
        );
        let long_line = [&b"1;"[..], &[b'a'; MAX_CHUNK_LINE_BYTES]].concat();
        assert_eq!(
            run(BodyReader::chunked(64), &long_line, long_line.len()),
            Err(Status::BAD_REQUEST)
        );
    }
}
