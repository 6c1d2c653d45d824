//! [`Fields`]: an endpoint string cut into Twisted's fields, the one
//! tokenizer behind server endpoints (`serverFromString`), client endpoints
//! (`clientFromString`) and TLS endpoints.
//!
//! Fields are separated by `:`; inside one, `\:` is a literal colon and
//! `\\` a backslash. The first field is the kind (`tcp`, `unix`, ...); then
//! come positional arguments, then `key=value` ones, in that order.

/// An endpoint string's kind and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fields {
    /// The first field: `tcp`, `unix`, `ssl`, ...
    pub kind: String,
    /// The arguments without `=`, in order.
    pub positional: Vec<String>,
    /// The `key=value` arguments, in order.
    pub keywords: Vec<(String, String)>,
}

impl Fields {
    /// Cuts an endpoint string into fields; the error says what is wrong.
    pub fn parse(s: &str) -> Result<Fields, String> {
        let mut fields = split(s).into_iter();
        let kind = fields.next().unwrap_or_default();
        Fields::new(kind, fields)
    }

    /// Sorts unescaped arguments (the fields after the kind) into
    /// positional and keyword ones; a positional one after a keyword one is
    /// refused.
    pub fn new(kind: String, args: impl IntoIterator<Item = String>) -> Result<Fields, String> {
        let mut fields = Fields {
            kind,
            positional: Vec::new(),
            keywords: Vec::new(),
        };
        for arg in args {
            match arg.split_once('=') {
                Some((k, v)) => fields.keywords.push((k.to_string(), v.to_string())),
                None if fields.keywords.is_empty() => fields.positional.push(arg),
                None => {
                    return Err(format!(
                        "positional argument {arg:?} after keyword arguments"
                    ));
                }
            }
        }
        Ok(fields)
    }

    /// The string was one field, with no colon at all (`""`, `1234`).
    pub fn is_bare(&self) -> bool {
        self.positional.is_empty() && self.keywords.is_empty()
    }
}

/// Splits on unescaped colons; `\:` becomes `:` and `\\` becomes `\`. A
/// lone trailing `\` stays. Never empty: `""` is one empty field.
pub(crate) fn split(s: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => field.push(chars.next().unwrap_or('\\')),
            ':' => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// Escapes colons and backslashes so that a value survives [`split`].
pub(crate) fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace(':', "\\:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_unescaped_colons() {
        assert_eq!(split(""), [""]);
        assert_eq!(split("tcp:"), ["tcp", ""]);
        assert_eq!(split("tcp:\\:\\:1:80"), ["tcp", "::1", "80"]);
        assert_eq!(split("a\\\\:b"), ["a\\", "b"]);
        assert_eq!(split("a\\"), ["a\\"]);
        assert_eq!(split("a\\x"), ["ax"]);
    }

    #[test]
    fn sorts_positional_and_keyword_arguments() {
        let f = Fields::parse("tcp:h:80:timeout=5:x=a=b").unwrap();
        assert_eq!(f.kind, "tcp");
        assert_eq!(f.positional, ["h", "80"]);
        assert_eq!(
            f.keywords,
            [
                ("timeout".to_string(), "5".to_string()),
                ("x".to_string(), "a=b".to_string())
            ]
        );
        assert!(!f.is_bare());
        assert!(Fields::parse("1234").unwrap().is_bare());
        assert!(!Fields::parse("tcp:").unwrap().is_bare());
        assert_eq!(
            Fields::parse("tcp:port=1:h").unwrap_err(),
            "positional argument \"h\" after keyword arguments"
        );
        // An escaped `=` is still a separator: `=` has no escape.
        assert_eq!(Fields::parse("unix:a\\=b").unwrap().keywords.len(), 1);
    }

    #[test]
    fn escape_survives_split() {
        for v in ["::1", "C:\\k.pem", "a\\:b", ""] {
            assert_eq!(split(&format!("k:{}", escape(v))), ["k", v]);
        }
    }
}
