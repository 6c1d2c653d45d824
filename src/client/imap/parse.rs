//! The IMAP4rev1 response parser (RFC 3501, section 7 and 9), sans-IO.
//!
//! [`ResponseParser::feed`] takes bytes cut anywhere; [`ResponseParser::next_response`]
//! hands out whole responses. A response is a line, or several lines joined
//! by literals (`{n}` at a line's end announces `n` raw bytes that follow
//! the CRLF). Literals are bounded before a byte of them is buffered; so
//! are lines.

use std::fmt;

/// Default bound on one literal, in bytes.
pub const DEFAULT_MAX_LITERAL: usize = 16 * 1024 * 1024;
/// Default bound on one line (between literals), in bytes.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// A parsed value in a response's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `NIL`.
    Nil,
    /// A number.
    Number(u64),
    /// An atom (`FLAGS`, `\Seen`, `BODY[HEADER]`).
    Atom(String),
    /// A quoted string or a literal.
    Str(Vec<u8>),
    /// A parenthesized list.
    List(Vec<Value>),
}

impl Value {
    /// The bytes of a string, `None` for NIL or anything else.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Str(b) => Some(b),
            Value::Atom(a) => Some(a.as_bytes()),
            _ => None,
        }
    }

    /// The items of a list (NIL is an empty list).
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            Value::Nil => Some(&[]),
            _ => None,
        }
    }
}

/// The status word of a status response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Success.
    Ok,
    /// Failure of the command (bad password, no such mailbox).
    No,
    /// A protocol error (our command was malformed).
    Bad,
    /// The server is closing the connection.
    Bye,
    /// Greeting: already authenticated.
    Preauth,
}

impl Status {
    fn from_word(w: &str) -> Option<Status> {
        Some(match w.to_ascii_uppercase().as_str() {
            "OK" => Status::Ok,
            "NO" => Status::No,
            "BAD" => Status::Bad,
            "BYE" => Status::Bye,
            "PREAUTH" => Status::Preauth,
            _ => return None,
        })
    }
}

/// A status response's text: an optional `[CODE ...]` and human text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusText {
    /// The status word.
    pub status: Status,
    /// The response code inside the brackets, without them.
    pub code: Option<String>,
    /// The rest, for humans.
    pub text: String,
}

/// One server response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `+ text`: go on sending (after a literal's announcement).
    Continue(String),
    /// `* OK|NO|BAD|BYE|PREAUTH ...`.
    Status(StatusText),
    /// `* CAPABILITY ...`.
    Capability(Vec<String>),
    /// `* n EXISTS`, `* n RECENT`, `* n EXPUNGE`, and other `* n WORD`
    /// without data.
    Count {
        /// The number.
        n: u32,
        /// The word, upper-case.
        what: String,
    },
    /// `* n FETCH (name value ...)`.
    Fetch {
        /// The message sequence number.
        seq: u32,
        /// Item names (upper-case) and values.
        items: Vec<(String, Value)>,
    },
    /// Any other untagged data (`* FLAGS (...)`, `* LIST ...`), as values.
    Data {
        /// The keyword, upper-case.
        keyword: String,
        /// What followed it.
        values: Vec<Value>,
    },
    /// `TAG OK|NO|BAD ...`: the end of a command.
    Tagged {
        /// The command's tag.
        tag: String,
        /// Its outcome.
        status: StatusText,
    },
}

/// Why the server's bytes could not be parsed. The connection cannot be
/// trusted after one: the caller closes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// A literal announced more bytes than allowed.
    LiteralTooLarge {
        /// Announced size.
        size: u64,
        /// The bound.
        max: usize,
    },
    /// A line longer than allowed.
    LineTooLong(usize),
    /// Not IMAP; the text says what and where.
    Malformed(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::LiteralTooLarge { size, max } => {
                write!(
                    f,
                    "the server announced a literal of {size} bytes (the bound is {max})"
                )
            }
            ParseError::LineTooLong(max) => write!(f, "a response line exceeds {max} bytes"),
            ParseError::Malformed(why) => write!(f, "malformed IMAP response: {why}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Cuts the byte stream into responses and parses them.
#[derive(Debug)]
pub struct ResponseParser {
    buf: Vec<u8>,
    /// Where the unscanned part of the current response starts.
    scan: usize,
    /// Where the current line (after the last literal) starts.
    line_start: usize,
    max_literal: usize,
    max_line: usize,
    failed: bool,
}

impl Default for ResponseParser {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LITERAL, DEFAULT_MAX_LINE)
    }
}

impl ResponseParser {
    /// A parser with these bounds.
    pub fn new(max_literal: usize, max_line: usize) -> Self {
        ResponseParser {
            buf: Vec::new(),
            scan: 0,
            line_start: 0,
            max_literal,
            max_line,
            failed: false,
        }
    }

    /// Appends bytes from the server.
    pub fn feed(&mut self, data: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(data);
        }
    }

    /// Whether part of a response is buffered (a close now cuts it short).
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The next complete response, `Ok(None)` if more bytes are needed.
    /// After an error, every call returns `Ok(None)`.
    pub fn next_response(&mut self) -> Result<Option<Response>, ParseError> {
        if self.failed {
            return Ok(None);
        }
        match self.frame() {
            Ok(Some(end)) => {
                let bytes: Vec<u8> = self.buf.drain(..end).collect();
                self.scan = 0;
                self.line_start = 0;
                parse_response(&bytes)
                    .map(Some)
                    .inspect_err(|_| self.fail())
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.fail();
                Err(e)
            }
        }
    }

    fn fail(&mut self) {
        self.failed = true;
        self.buf.clear();
    }

    /// Finds the end of the first complete response, if it is buffered.
    fn frame(&mut self) -> Result<Option<usize>, ParseError> {
        loop {
            let from = self.scan;
            let Some(rel) = memchr::memmem::find(&self.buf[from..], b"\r\n") else {
                if self.buf.len() - self.line_start > self.max_line {
                    return Err(ParseError::LineTooLong(self.max_line));
                }
                self.scan = self.buf.len().saturating_sub(1).max(from);
                return Ok(None);
            };
            let eol = from + rel;
            if eol - self.line_start > self.max_line {
                return Err(ParseError::LineTooLong(self.max_line));
            }
            match literal_size(&self.buf[self.line_start..eol])? {
                None => return Ok(Some(eol + 2)),
                Some(size) => {
                    if size > self.max_literal as u64 {
                        return Err(ParseError::LiteralTooLarge {
                            size,
                            max: self.max_literal,
                        });
                    }
                    let end = eol + 2 + size as usize;
                    if self.buf.len() < end {
                        // Wait for the literal; rescan from its start.
                        self.scan = eol;
                        return Ok(None);
                    }
                    self.scan = end;
                    self.line_start = end;
                }
            }
        }
    }
}

/// The `n` of a line ending in `{n}` or `{n+}` (or `~{n}`), if it does.
fn literal_size(line: &[u8]) -> Result<Option<u64>, ParseError> {
    let Some(body) = line.strip_suffix(b"}") else {
        return Ok(None);
    };
    let Some(open) = body.iter().rposition(|&b| b == b'{') else {
        return Ok(None);
    };
    let digits = body[open + 1..]
        .strip_suffix(b"+")
        .unwrap_or(&body[open + 1..]);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        // `{abc}` at a line's end is text (e.g. in a status response).
        return Ok(None);
    }
    if digits.len() > 19 {
        return Err(ParseError::LiteralTooLarge {
            size: u64::MAX,
            max: 0,
        });
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| ParseError::Malformed("bad literal size".into()))
}

fn malformed(why: impl Into<String>) -> ParseError {
    ParseError::Malformed(why.into())
}

/// Parses one framed response (ending in CRLF).
pub fn parse_response(bytes: &[u8]) -> Result<Response, ParseError> {
    let line = bytes
        .strip_suffix(b"\r\n")
        .ok_or_else(|| malformed("a response must end with CRLF"))?;
    let mut c = Cursor { buf: line, pos: 0 };
    if c.eat(b"+") {
        c.eat(b" ");
        return Ok(Response::Continue(c.rest_text()));
    }
    let tag = c.word();
    if tag.is_empty() {
        return Err(malformed(format!("no tag in {:?}", preview(line))));
    }
    if !c.eat(b" ") {
        return Err(malformed(format!(
            "nothing after the tag in {:?}",
            preview(line)
        )));
    }
    if tag == "*" {
        return parse_untagged(&mut c, line);
    }
    let word = c.word();
    let status = Status::from_word(&word)
        .filter(|s| matches!(s, Status::Ok | Status::No | Status::Bad))
        .ok_or_else(|| malformed(format!("tagged response with status {word:?}")))?;
    Ok(Response::Tagged {
        tag,
        status: status_text(status, &mut c),
    })
}

fn parse_untagged(c: &mut Cursor<'_>, line: &[u8]) -> Result<Response, ParseError> {
    let first = c.word();
    if let Ok(n) = first.parse::<u32>() {
        if !c.eat(b" ") {
            return Err(malformed(format!(
                "a number with no keyword in {:?}",
                preview(line)
            )));
        }
        let what = c.word().to_ascii_uppercase();
        if what == "FETCH" {
            if !c.eat(b" ") {
                return Err(malformed("FETCH without data"));
            }
            let items = c.fetch_items()?;
            return Ok(Response::Fetch { seq: n, items });
        }
        return Ok(Response::Count { n, what });
    }
    let keyword = first.to_ascii_uppercase();
    if let Some(status) = Status::from_word(&keyword) {
        return Ok(Response::Status(status_text(status, c)));
    }
    if keyword == "CAPABILITY" {
        let text = c.rest_text();
        return Ok(Response::Capability(
            text.split_ascii_whitespace().map(str::to_string).collect(),
        ));
    }
    let mut values = Vec::new();
    while c.eat(b" ") {
        values.push(c.value(0)?);
    }
    if !c.at_end() {
        return Err(malformed(format!("junk after {keyword} data")));
    }
    Ok(Response::Data { keyword, values })
}

/// `[CODE] text` after a status word.
fn status_text(status: Status, c: &mut Cursor<'_>) -> StatusText {
    c.eat(b" ");
    let rest = c.rest_text();
    let (code, text) = match rest.strip_prefix('[').and_then(|r| r.split_once(']')) {
        Some((code, text)) => (Some(code.to_string()), text.trim_start().to_string()),
        None => (None, rest),
    };
    StatusText { status, code, text }
}

fn preview(line: &[u8]) -> String {
    String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned()
}

/// Deepest nesting of lists accepted (a bound against hostile input).
const MAX_DEPTH: usize = 64;

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn eat(&mut self, s: &[u8]) -> bool {
        if self.buf[self.pos..].starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    /// Up to the next space (or the end).
    fn word(&mut self) -> String {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b == b' ' {
                break;
            }
            self.pos += 1;
        }
        String::from_utf8_lossy(&self.buf[start..self.pos]).into_owned()
    }

    fn rest_text(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.buf[self.pos..]).into_owned();
        self.pos = self.buf.len();
        text
    }

    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        match self.peek() {
            None => Err(malformed("a value was expected, the line ended")),
            Some(b'(') => {
                if depth >= MAX_DEPTH {
                    return Err(malformed(format!("lists nested deeper than {MAX_DEPTH}")));
                }
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    match self.peek() {
                        Some(b')') => {
                            self.pos += 1;
                            return Ok(Value::List(items));
                        }
                        None => return Err(malformed("an unclosed list")),
                        Some(b' ') if !items.is_empty() => self.pos += 1,
                        _ => {}
                    }
                    if self.peek() == Some(b')') {
                        continue;
                    }
                    items.push(self.value(depth + 1)?);
                }
            }
            Some(b'"') => self.quoted(),
            Some(b'{') | Some(b'~') => self.literal(),
            Some(_) => {
                let atom = self.atom()?;
                if atom.eq_ignore_ascii_case("NIL") {
                    Ok(Value::Nil)
                } else if !atom.is_empty()
                    && atom.len() < 20
                    && atom.bytes().all(|b| b.is_ascii_digit())
                {
                    Ok(atom.parse().map(Value::Number).unwrap_or(Value::Atom(atom)))
                } else {
                    Ok(Value::Atom(atom))
                }
            }
        }
    }

    fn quoted(&mut self) -> Result<Value, ParseError> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(malformed("an unterminated quoted string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Value::Str(out));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(c);
                            self.pos += 1;
                        }
                        _ => return Err(malformed("a bad escape in a quoted string")),
                    }
                }
                Some(b'\r') | Some(b'\n') => return Err(malformed("CR or LF in a quoted string")),
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// `{n}\r\n` and `n` bytes (the framer made sure they are here).
    fn literal(&mut self) -> Result<Value, ParseError> {
        self.eat(b"~");
        if !self.eat(b"{") {
            return Err(malformed("a bad literal"));
        }
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        let size: usize = std::str::from_utf8(&self.buf[start..self.pos])
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| malformed("a bad literal size"))?;
        self.eat(b"+");
        if !self.eat(b"}\r\n") {
            return Err(malformed("a literal announcement not at a line's end"));
        }
        let end = self
            .pos
            .checked_add(size)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| malformed("a literal longer than the response"))?;
        let bytes = self.buf[self.pos..end].to_vec();
        self.pos = end;
        Ok(Value::Str(bytes))
    }

    /// An atom; `[...]` inside it may hold spaces and parentheses
    /// (`BODY[HEADER.FIELDS (SUBJECT)]`), and `<n>` may follow.
    fn atom(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        let mut brackets = 0usize;
        while let Some(b) = self.peek() {
            match b {
                b'[' => brackets += 1,
                b']' if brackets > 0 => brackets -= 1,
                b' ' | b'(' | b')' if brackets == 0 => break,
                b'"' | b'{' if brackets == 0 => break,
                b'\r' | b'\n' => break,
                0..=0x1f | 0x7f => return Err(malformed("a control character in an atom")),
                _ => {}
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err(malformed(format!(
                "unexpected {:?}",
                self.peek().map(char::from).unwrap_or(' ')
            )));
        }
        Ok(String::from_utf8_lossy(&self.buf[start..self.pos]).into_owned())
    }

    /// `(NAME value NAME value ...)` of a FETCH response.
    fn fetch_items(&mut self) -> Result<Vec<(String, Value)>, ParseError> {
        if !self.eat(b"(") {
            return Err(malformed("FETCH data must be a list"));
        }
        let mut items = Vec::new();
        loop {
            if self.eat(b")") {
                break;
            }
            if !items.is_empty() && !self.eat(b" ") {
                return Err(malformed("FETCH items must be separated by spaces"));
            }
            let name = self.atom()?.to_ascii_uppercase();
            if !self.eat(b" ") {
                return Err(malformed(format!("FETCH item {name} has no value")));
            }
            let value = self.value(0)?;
            items.push((name, value));
        }
        if !self.at_end() {
            return Err(malformed("junk after FETCH data"));
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in every chunk size; all must give the same responses.
    fn parse_all(input: &[u8]) -> Result<Vec<Response>, ParseError> {
        let mut first: Option<Result<Vec<Response>, ParseError>> = None;
        for size in 1..=input.len() {
            let mut p = ResponseParser::new(1000, 200);
            let mut got = Vec::new();
            let mut outcome = None;
            for chunk in input.chunks(size) {
                p.feed(chunk);
                loop {
                    match p.next_response() {
                        Ok(Some(r)) => got.push(r),
                        Ok(None) => break,
                        Err(e) => {
                            outcome = Some(Err(e));
                            break;
                        }
                    }
                }
                if outcome.is_some() {
                    break;
                }
            }
            let outcome = outcome.unwrap_or(Ok(got));
            match &first {
                None => first = Some(outcome),
                Some(f) => assert_eq!(&outcome, f, "chunk size {size}"),
            }
        }
        first.expect("non-empty input")
    }

    #[test]
    fn greeting_capability_select_and_tagged() {
        let input = b"* OK [CAPABILITY IMAP4rev1 LITERAL+] Dovecot ready.\r\n\
* CAPABILITY IMAP4rev1 IDLE LITERAL+\r\n\
* FLAGS (\\Answered \\Seen)\r\n\
* 3 EXISTS\r\n\
* OK [UIDVALIDITY 1700000000] UIDs valid\r\n\
A1 OK [READ-WRITE] Select completed (0.001 + 0.000 secs).\r\n\
A2 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n\
+ go ahead\r\n";
        let r = parse_all(input).unwrap();
        assert_eq!(r.len(), 8);
        assert_eq!(
            r[0],
            Response::Status(StatusText {
                status: Status::Ok,
                code: Some("CAPABILITY IMAP4rev1 LITERAL+".into()),
                text: "Dovecot ready.".into()
            })
        );
        assert_eq!(
            r[1],
            Response::Capability(vec!["IMAP4rev1".into(), "IDLE".into(), "LITERAL+".into()])
        );
        assert_eq!(
            r[2],
            Response::Data {
                keyword: "FLAGS".into(),
                values: vec![Value::List(vec![
                    Value::Atom("\\Answered".into()),
                    Value::Atom("\\Seen".into())
                ])]
            }
        );
        assert_eq!(
            r[3],
            Response::Count {
                n: 3,
                what: "EXISTS".into()
            }
        );
        match &r[6] {
            Response::Tagged { tag, status } => {
                assert_eq!(tag, "A2");
                assert_eq!(status.status, Status::No);
                assert_eq!(status.code.as_deref(), Some("AUTHENTICATIONFAILED"));
                assert_eq!(status.text, "Authentication failed.");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r[7], Response::Continue("go ahead".into()));
    }

    #[test]
    fn fetch_with_envelope_quoted_literal_and_nil() {
        let input = b"* 1 FETCH (UID 7 ENVELOPE (\"Mon, 1 Jan 2024 10:00:00 +0000\" {12}\r\n\
Hi \"there\"\r\n ((\"A \\\"B\\\"\" NIL \"a\" \"example.com\")) NIL NIL NIL NIL NIL NIL \"<id@x>\") BODY[HEADER.FIELDS (SUBJECT)] {5}\r\nS: x\n)\r\n";
        let r = parse_all(input).unwrap();
        let Response::Fetch { seq, items } = &r[0] else {
            panic!("{r:?}")
        };
        assert_eq!(*seq, 1);
        assert_eq!(items[0], ("UID".into(), Value::Number(7)));
        assert_eq!(items[1].0, "ENVELOPE");
        let env = items[1].1.as_list().unwrap();
        assert_eq!(env.len(), 10);
        assert_eq!(env[1], Value::Str(b"Hi \"there\"\r\n".to_vec()));
        let from = env[2].as_list().unwrap()[0].as_list().unwrap();
        assert_eq!(from[0], Value::Str(b"A \"B\"".to_vec()));
        assert_eq!(from[1], Value::Nil);
        assert_eq!(env[9], Value::Str(b"<id@x>".to_vec()));
        assert_eq!(
            items[2],
            (
                "BODY[HEADER.FIELDS (SUBJECT)]".into(),
                Value::Str(b"S: x\n".to_vec())
            )
        );
    }

    #[test]
    fn bounds_and_malformed_input() {
        let e = parse_all(b"* 1 FETCH (BODY[] {1001}\r\n").unwrap_err();
        assert_eq!(
            e,
            ParseError::LiteralTooLarge {
                size: 1001,
                max: 1000
            }
        );
        // Exactly at the bound is fine.
        let mut ok = b"* 1 FETCH (BODY[] {1000}\r\n".to_vec();
        ok.extend(std::iter::repeat_n(b'x', 1000));
        ok.extend_from_slice(b")\r\n");
        let r = parse_all(&ok).unwrap();
        assert!(matches!(&r[0], Response::Fetch { .. }));
        let e = parse_all(&[b'x'; 300]).unwrap_err();
        assert_eq!(e, ParseError::LineTooLong(200));
        for (bad, needle) in [
            (&b"A1 MAYBE done\r\n"[..], "status \"MAYBE\""),
            (b"* 1 FETCH (SUBJECT \"open)\r\n", "unterminated"),
            (b"* 1 FETCH (X (a (b)\r\n", "unclosed"),
            (b"* 1 FETCH X\r\n", "must be a list"),
            (b"*\r\n", "nothing after the tag"),
            (b"* 1\r\n", "no keyword"),
            (b"* 1 FETCH (X \"a\\qb\")\r\n", "bad escape"),
        ] {
            let e = parse_all(bad).unwrap_err().to_string();
            assert!(
                e.contains(needle),
                "{:?}: {e}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = format!("* LIST {}\r\n", "(".repeat(100));
        assert!(
            parse_all(deep.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("nested deeper")
        );
    }

    #[test]
    fn after_an_error_nothing_more_is_parsed() {
        let mut p = ResponseParser::new(10, 100);
        p.feed(b"* 1 FETCH (BODY[] {99}\r\n* OK fine\r\n");
        assert!(p.next_response().is_err());
        assert_eq!(p.next_response(), Ok(None));
        p.feed(b"* OK more\r\n");
        assert_eq!(p.next_response(), Ok(None));
    }
}
