//! A stop-gap line splitter for chat and answer until `framing::line`
//! lands: `\r\n` or `\n` ends a line, at most `MAX` bytes per line.

pub(crate) const MAX: usize = 16384;

#[derive(Debug, Default)]
pub(crate) struct Lines {
    buf: Vec<u8>,
}

/// What one piece of a buffer turned out to be.
pub(crate) enum Piece {
    Line(Vec<u8>),
    TooLong,
}

impl Lines {
    pub(crate) fn push(&mut self, data: &[u8]) -> Vec<Piece> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        while let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=i).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.len() > MAX {
                out.push(Piece::TooLong);
                return out;
            }
            out.push(Piece::Line(line));
        }
        if self.buf.len() > MAX + 1 {
            out.push(Piece::TooLong);
        }
        out
    }
}
