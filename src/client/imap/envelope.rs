//! [`Envelope`]: a message's `ENVELOPE` (RFC 3501, 7.4.2) with its
//! subject and names decoded (RFC 2047).

use std::fmt;

use super::encoded_word::decode_header;
use super::parse::{ParseError, Value};

/// One address of an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The display name, decoded.
    pub name: Option<String>,
    /// The local part.
    pub mailbox: Option<String>,
    /// The domain.
    pub host: Option<String>,
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr = format!(
            "{}@{}",
            self.mailbox.as_deref().unwrap_or(""),
            self.host.as_deref().unwrap_or("")
        );
        match &self.name {
            Some(n) if !n.is_empty() => write!(f, "{n} <{addr}>"),
            _ => f.write_str(&addr),
        }
    }
}

/// The parts of an envelope the tutorial (and a mail list) needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The Date header, as sent.
    pub date: Option<String>,
    /// The Subject, encoded words decoded.
    pub subject: Option<String>,
    /// From.
    pub from: Vec<Address>,
    /// To.
    pub to: Vec<Address>,
    /// Message-ID.
    pub message_id: Option<String>,
}

fn malformed(why: &str) -> ParseError {
    ParseError::Malformed(format!("bad ENVELOPE: {why}"))
}

fn nstring(v: &Value, what: &str) -> Result<Option<String>, ParseError> {
    match v {
        Value::Nil => Ok(None),
        Value::Str(b) => Ok(Some(decode_header(b))),
        Value::Atom(a) => Ok(Some(decode_header(a.as_bytes()))),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::List(_) => Err(malformed(&format!("{what} is a list"))),
    }
}

fn addresses(v: &Value, what: &str) -> Result<Vec<Address>, ParseError> {
    let list = v
        .as_list()
        .ok_or_else(|| malformed(&format!("{what} is not a list of addresses")))?;
    list.iter()
        .map(|a| match a.as_list() {
            Some([name, _adl, mailbox, host]) => Ok(Address {
                name: nstring(name, "a name")?,
                mailbox: nstring(mailbox, "a mailbox")?,
                host: nstring(host, "a host")?,
            }),
            _ => Err(malformed(&format!("an address in {what} is not 4 fields"))),
        })
        .collect()
}

impl Envelope {
    /// Reads the value of a FETCH response's `ENVELOPE` item.
    pub fn from_value(v: &Value) -> Result<Envelope, ParseError> {
        let fields = match v {
            Value::List(fields) if fields.len() == 10 => fields,
            Value::List(fields) => {
                return Err(malformed(&format!("{} fields, not 10", fields.len())));
            }
            _ => return Err(malformed("not a list")),
        };
        Ok(Envelope {
            date: nstring(&fields[0], "the date")?,
            subject: nstring(&fields[1], "the subject")?,
            from: addresses(&fields[2], "from")?,
            to: addresses(&fields[5], "to")?,
            message_id: nstring(&fields[9], "the message id")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::imap::parse::{Response, parse_response};

    #[test]
    fn reads_a_dovecot_envelope() {
        let line = b"* 1 FETCH (ENVELOPE (\"Mon, 1 Jan 2024 10:00:00 +0000\" \"=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\" ((\"=?ISO-8859-1?Q?Ren=E9?=\" NIL \"rene\" \"example.com\")) NIL NIL ((NIL NIL \"bob\" \"example.org\")) NIL NIL NIL \"<1@x>\"))\r\n";
        let Response::Fetch { items, .. } = parse_response(line).unwrap() else {
            panic!()
        };
        let env = Envelope::from_value(&items[0].1).unwrap();
        assert_eq!(env.subject.as_deref(), Some("Grüße"));
        assert_eq!(env.from[0].to_string(), "René <rene@example.com>");
        assert_eq!(env.to[0].to_string(), "bob@example.org");
        assert_eq!(env.message_id.as_deref(), Some("<1@x>"));
        assert_eq!(env.date.as_deref(), Some("Mon, 1 Jan 2024 10:00:00 +0000"));
    }

    #[test]
    fn refuses_the_wrong_shape() {
        assert!(Envelope::from_value(&Value::Nil).is_err());
        assert!(Envelope::from_value(&Value::List(vec![Value::Nil; 3])).is_err());
        let mut fields = vec![Value::Nil; 10];
        fields[2] = Value::List(vec![Value::List(vec![Value::Nil])]);
        let e = Envelope::from_value(&Value::List(fields)).unwrap_err();
        assert!(e.to_string().contains("not 4 fields"), "{e}");
    }
}
