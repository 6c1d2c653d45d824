//! [`ChunkedDecoder`]: HTTP/1.1's chunked transfer coding (RFC 9112 §7.1),
//! sans-IO. The one decoder behind the server's request bodies, the
//! client's responses and the load generator's: fed whatever bytes have
//! arrived, it walks an explicit [`ChunkedState`] one byte at a time (as
//! hyper's `ChunkedState` does), so that a chunk-size or trailer line
//! split anywhere needs no buffering, and it hands back the chunk data as
//! slices of the input.
//!
//! The grammar is httparse's `parse_chunk_size` made strict where that is
//! lax: at least one hex digit, at most 16 (a `u64`); blanks may follow
//! the size; after `;` an extension runs to CR, with no bare LF; every
//! line ends in CRLF; a trailer line is a header field (it has a `:`).
//! The chunk-size line and the trailer section are bounded
//! ([`ChunkedLimits`]); the body's size is the caller's to bound, from
//! [`Step::ChunkSize`] and [`Step::Data`].

use std::fmt;

/// A chunk-size line (size and extensions, without its CRLF) longer than
/// this is refused: the bound of the server's and the client's decoders.
pub const MAX_CHUNK_LINE_BYTES: usize = 4096;

/// Where the decoder is, byte by byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkedState {
    /// A chunk-size line starts: its first hex digit.
    Start,
    /// Inside the hex digits of a size.
    Size,
    /// Blanks after the size, before `;` or the CR.
    SizeLws,
    /// Inside a chunk extension, up to the CR.
    Extension,
    /// The LF that ends a chunk-size line.
    SizeLf,
    /// Inside a chunk's data.
    Body,
    /// The CR after a chunk's data.
    BodyCr,
    /// The LF after a chunk's data.
    BodyLf,
    /// After the last chunk, a line starts: CR for the end, else a trailer.
    EndCr,
    /// Inside a trailer line, up to its CR.
    Trailer,
    /// The LF that ends a trailer line.
    TrailerLf,
    /// The LF of the empty line that ends the body.
    EndLf,
    /// The body is over.
    End,
}

/// The decoder's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkedLimits {
    /// A chunk-size line, size and extensions, without its CRLF.
    pub max_line: usize,
    /// The trailer section, from after the last chunk's size line to the
    /// end of the body.
    pub max_trailer: usize,
}

/// Why a chunked body is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkedError {
    /// This byte cannot stand where it was in a chunk-size line.
    BadSizeLine {
        /// The byte.
        byte: u8,
    },
    /// A size of more than 16 hex digits.
    SizeOverflow,
    /// A chunk-size line over [`ChunkedLimits::max_line`].
    SizeLineTooLong {
        /// The bound.
        max: usize,
    },
    /// A chunk's data not followed by CRLF: this byte came instead.
    NoCrlfAfterData {
        /// The byte.
        byte: u8,
    },
    /// A trailer line that is not a header field ending in CRLF.
    BadTrailer,
    /// A trailer section over [`ChunkedLimits::max_trailer`].
    TrailersTooLarge {
        /// The bound.
        max: usize,
    },
}

impl fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChunkedError::BadSizeLine { byte } => {
                write!(f, "bad chunk size line (byte {byte:#04x})")
            }
            ChunkedError::SizeOverflow => f.write_str("bad chunk size: over 16 hex digits"),
            ChunkedError::SizeLineTooLong { max } => {
                write!(f, "chunk-size line over {max} bytes")
            }
            ChunkedError::NoCrlfAfterData { byte } => {
                write!(f, "a chunk does not end with CRLF (byte {byte:#04x})")
            }
            ChunkedError::BadTrailer => f.write_str("malformed trailer line"),
            ChunkedError::TrailersTooLarge { max } => {
                write!(f, "trailer section over {max} bytes")
            }
        }
    }
}

impl std::error::Error for ChunkedError {}

/// What one call of [`ChunkedDecoder::decode`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step<'a> {
    /// Chunk data: the last bytes of what the call consumed.
    Data(&'a [u8]),
    /// A chunk-size line ended: the chunk that follows has this many bytes
    /// (0: the last chunk; trailers follow).
    ChunkSize(u64),
    /// The input ran out inside the body: feed more.
    NeedMore,
    /// The body ended, trailers and all; what follows is not the body's.
    Done,
}

/// Decodes one chunked body; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkedDecoder {
    state: ChunkedState,
    limits: ChunkedLimits,
    /// The size being read, then the data left in the chunk.
    size: u64,
    /// Hex digits of the size so far.
    digits: u8,
    /// Bytes of the chunk-size line so far.
    line: usize,
    /// Bytes of the trailer section so far.
    trailer: usize,
    /// The trailer line being read has a `:`.
    colon: bool,
    /// The error that stopped it: every later call returns it again.
    failed: Option<ChunkedError>,
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new(limits: ChunkedLimits) -> Self {
        ChunkedDecoder {
            state: ChunkedState::Start,
            limits,
            size: 0,
            digits: 0,
            line: 0,
            trailer: 0,
            colon: false,
            failed: None,
        }
    }

    /// Where the decoder is.
    #[cfg(test)]
    pub fn state(&self) -> ChunkedState {
        self.state
    }

    /// Consumes bytes from the front of `buf` up to the next thing to
    /// report; returns how many it consumed and what it found. A caller
    /// loops, feeding the rest, until [`Step::NeedMore`] or [`Step::Done`].
    /// An error is final: fed again, the decoder returns it again.
    pub fn decode<'a>(&mut self, buf: &'a [u8]) -> Result<(usize, Step<'a>), ChunkedError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let decoded = self.advance(buf);
        if let Err(e) = decoded {
            self.failed = Some(e);
        }
        decoded
    }

    fn advance<'a>(&mut self, buf: &'a [u8]) -> Result<(usize, Step<'a>), ChunkedError> {
        if self.state == ChunkedState::End {
            return Ok((0, Step::Done));
        }
        let mut pos = 0;
        while pos < buf.len() {
            if self.state == ChunkedState::Body {
                let take = self.size.min((buf.len() - pos) as u64) as usize;
                self.size -= take as u64;
                if self.size == 0 {
                    self.state = ChunkedState::BodyCr;
                }
                return Ok((pos + take, Step::Data(&buf[pos..pos + take])));
            }
            let byte = buf[pos];
            pos += 1;
            if let Some(step) = self.step(byte)? {
                return Ok((pos, step));
            }
        }
        Ok((pos, Step::NeedMore))
    }

    /// One byte of framing; `Some` when it completes something to report.
    fn step(&mut self, byte: u8) -> Result<Option<Step<'static>>, ChunkedError> {
        use ChunkedState::*;
        if matches!(self.state, Start | Size | SizeLws | Extension) && byte != b'\r' {
            self.line += 1;
            if self.line > self.limits.max_line {
                return Err(ChunkedError::SizeLineTooLong {
                    max: self.limits.max_line,
                });
            }
        }
        if matches!(self.state, EndCr | Trailer | TrailerLf | EndLf) {
            self.trailer += 1;
            if self.trailer > self.limits.max_trailer {
                return Err(ChunkedError::TrailersTooLarge {
                    max: self.limits.max_trailer,
                });
            }
        }
        self.state = match (self.state, byte) {
            (Start, _) | (Size, _) if byte.is_ascii_hexdigit() => {
                if self.digits == 16 {
                    return Err(ChunkedError::SizeOverflow);
                }
                self.digits += 1;
                let digit = (byte as char).to_digit(16).unwrap_or(0);
                self.size = (self.size << 4) | u64::from(digit);
                Size
            }
            (Size | SizeLws, b' ' | b'\t') => SizeLws,
            (Size | SizeLws, b';') => Extension,
            (Size | SizeLws | Extension, b'\r') => SizeLf,
            (Extension, b'\n') => return Err(ChunkedError::BadSizeLine { byte }),
            (Extension, _) => Extension,
            (SizeLf, b'\n') => {
                let size = self.size;
                self.line = 0;
                self.digits = 0;
                self.state = if size == 0 { EndCr } else { Body };
                return Ok(Some(Step::ChunkSize(size)));
            }
            (Start | Size | SizeLws | SizeLf, _) => {
                return Err(ChunkedError::BadSizeLine { byte });
            }
            (BodyCr, b'\r') => BodyLf,
            (BodyLf, b'\n') => {
                self.size = 0;
                Start
            }
            (BodyCr | BodyLf, _) => return Err(ChunkedError::NoCrlfAfterData { byte }),
            (EndCr, b'\r') => EndLf,
            (EndLf, b'\n') => {
                self.state = End;
                return Ok(Some(Step::Done));
            }
            (Trailer, b'\r') if self.colon => TrailerLf,
            (EndCr | Trailer, b'\r' | b'\n') => return Err(ChunkedError::BadTrailer),
            (EndCr | Trailer, _) => {
                self.colon |= byte == b':';
                Trailer
            }
            (TrailerLf, b'\n') => {
                self.colon = false;
                EndCr
            }
            (TrailerLf | EndLf, _) => return Err(ChunkedError::BadTrailer),
            // `decode` hands the data out itself and stops at the end.
            (Body, _) => Body,
            (End, _) => End,
        };
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ChunkedLimits = ChunkedLimits {
        max_line: 32,
        max_trailer: 64,
    };

    /// What a run saw: the data, the chunk sizes, the bytes consumed up to
    /// the end of the body, or the error.
    type Outcome = Result<(Vec<u8>, Vec<u64>, usize), ChunkedError>;

    /// Feeds `pieces` one after the other, the way a connection delivers
    /// them; `None` if the body did not end.
    fn run<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Option<Outcome> {
        let mut decoder = ChunkedDecoder::new(LIMITS);
        let (mut data, mut sizes, mut used) = (Vec::new(), Vec::new(), 0);
        for piece in pieces {
            let mut pos = 0;
            // Each call consumes at least one byte or reports NeedMore.
            for _ in 0..=piece.len() {
                let (n, step) = match decoder.decode(&piece[pos..]) {
                    Ok(s) => s,
                    Err(e) => return Some(Err(e)),
                };
                pos += n;
                used += n;
                match step {
                    Step::Data(d) => data.extend_from_slice(d),
                    Step::ChunkSize(s) => sizes.push(s),
                    Step::NeedMore => break,
                    Step::Done => return Some(Ok((data, sizes, used))),
                }
            }
            assert_eq!(pos, piece.len(), "NeedMore consumed all of the input");
        }
        None
    }

    /// One outcome for `input` whole, in every chunk size, and stalled at
    /// every offset (an empty read between the two halves).
    fn every_way(input: &[u8]) -> Option<Outcome> {
        let whole = run([input]);
        for size in 1..=input.len() {
            assert_eq!(run(input.chunks(size)), whole, "chunk size {size}");
        }
        for at in 0..=input.len() {
            let (a, b) = input.split_at(at);
            assert_eq!(run([a, &[][..], b]), whole, "stalled at {at}");
        }
        whole
    }

    fn ok(data: &[u8], sizes: &[u64], used: usize) -> Option<Outcome> {
        Some(Ok((data.to_vec(), sizes.to_vec(), used)))
    }

    #[test]
    fn decodes_chunks_extensions_and_trailers() {
        let body =
            b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE \t;a=\"b\"\r\n in\r\n\r\nchunks.\r\n0\r\n\r\n";
        assert_eq!(
            every_way(body),
            ok(b"Wikipedia in\r\n\r\nchunks.", &[4, 5, 14, 0], body.len())
        );
        let trailers = b"1\r\na\r\n0\r\nX-Sum: 1\r\nY:\r\n\r\nNEXT";
        assert_eq!(every_way(trailers), ok(b"a", &[1, 0], trailers.len() - 4));
        let big = b"fFfFfFfFfFfFfFfF\r\n";
        assert_eq!(every_way(big), None);
        assert_eq!(run([&big[..]]), None);
    }

    #[test]
    fn stops_at_the_end_of_the_body() {
        let mut d = ChunkedDecoder::new(LIMITS);
        assert_eq!(d.decode(b"0\r\n"), Ok((3, Step::ChunkSize(0))));
        assert_eq!(d.decode(b"\r\nGET"), Ok((2, Step::Done)));
        assert_eq!(d.state(), ChunkedState::End);
        assert_eq!(d.decode(b"GET"), Ok((0, Step::Done)));
    }

    #[test]
    fn an_error_is_final() {
        let mut d = ChunkedDecoder::new(LIMITS);
        let bad = Err(ChunkedError::BadSizeLine { byte: b'x' });
        assert_eq!(d.decode(b"1x"), bad);
        assert_eq!(d.decode(b"\r\na\r\n0\r\n\r\n"), bad);
    }

    #[test]
    fn data_comes_as_slices_of_the_input() {
        let mut d = ChunkedDecoder::new(LIMITS);
        assert_eq!(d.decode(b"a\r\n01234"), Ok((3, Step::ChunkSize(10))));
        assert_eq!(d.decode(b"01234"), Ok((5, Step::Data(b"01234"))));
        assert_eq!(d.state(), ChunkedState::Body);
        assert_eq!(d.decode(b""), Ok((0, Step::NeedMore)));
        assert_eq!(d.decode(b"56789\r"), Ok((5, Step::Data(b"56789"))));
        assert_eq!(d.decode(b"\r"), Ok((1, Step::NeedMore)));
        assert_eq!(d.state(), ChunkedState::BodyLf);
    }

    #[test]
    fn refuses_bad_framing() {
        use ChunkedError::*;
        let cases: [(&[u8], ChunkedError); 13] = [
            (b"x\r\n", BadSizeLine { byte: b'x' }),
            (b"\r\n", BadSizeLine { byte: b'\r' }),
            (b";ext\r\n", BadSizeLine { byte: b';' }),
            (b"1 2\r\n", BadSizeLine { byte: b'2' }),
            (b"1\n", BadSizeLine { byte: b'\n' }),
            (b"1\rx", BadSizeLine { byte: b'x' }),
            (b"1;a\nb\r\n", BadSizeLine { byte: b'\n' }),
            (b"12345678901234567\r\n", SizeOverflow),
            (b"4\r\nWikiXX", NoCrlfAfterData { byte: b'X' }),
            (b"4\r\nWiki\rX", NoCrlfAfterData { byte: b'X' }),
            (b"1\r\na\r\n0\r\nnocolon\r\n\r\n", BadTrailer),
            (b"0\r\nX: 1\n\r\n", BadTrailer),
            (b"0\r\n\rX", BadTrailer),
        ];
        for (input, error) in cases {
            assert_eq!(
                every_way(input),
                Some(Err(error)),
                "{}",
                input.escape_ascii()
            );
        }
    }

    #[test]
    fn bounds_the_size_line_and_the_trailers() {
        let line = [&b"1;"[..], &[b'e'; 30], b"\r\na\r\n0\r\n\r\n"].concat();
        assert_eq!(every_way(&line), ok(b"a", &[1, 0], line.len()));
        let long = [&b"1;"[..], &[b'e'; 31], b"\r\n"].concat();
        assert_eq!(
            every_way(&long),
            Some(Err(ChunkedError::SizeLineTooLong { max: 32 }))
        );
        // 64 bytes of trailer section, the final CRLF included.
        let trailer = [&b"0\r\nX: "[..], &[b'a'; 57], b"\r\n\r\n"].concat();
        assert_eq!(every_way(&trailer), ok(b"", &[0], trailer.len()));
        let over = [&b"0\r\nX: "[..], &[b'a'; 58], b"\r\n\r\n"].concat();
        assert_eq!(
            every_way(&over),
            Some(Err(ChunkedError::TrailersTooLarge { max: 64 }))
        );
    }

    proptest::proptest! {
        /// Any body, chunked any way, split at any point, decodes back.
        #[test]
        fn round_trips(
            chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 1..40), 0..8),
            split in 0usize..400,
        ) {
            let mut encoded = Vec::new();
            for chunk in &chunks {
                encoded.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                encoded.extend_from_slice(chunk);
                encoded.extend_from_slice(b"\r\n");
            }
            encoded.extend_from_slice(b"0\r\n\r\n");
            let (a, b) = encoded.split_at(split.min(encoded.len()));
            let sizes: Vec<u64> = chunks.iter().map(|c| c.len() as u64).chain([0]).collect();
            proptest::prop_assert_eq!(
                run([a, b]),
                Some(Ok((chunks.concat(), sizes, encoded.len())))
            );
        }
    }
}
