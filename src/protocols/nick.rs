//! What a chat nick may be, and when two nicks are the same.
//!
//! A nick is what other people read to know who spoke, so the rules are
//! about what a reader *sees*:
//!
//! * **Letters in any script** (`émile`, `Вера`, `太郎`): the first
//!   character is a letter (`char::is_alphabetic`), the rest letters, ASCII
//!   digits, `_` or `-`. So a nick never looks like an address (those have
//!   `.` and `:`), and nothing invisible or layout-changing gets in:
//!   controls, spaces of every kind, zero-width characters (U+200B–U+200D,
//!   U+2060, U+FEFF), bidi overrides and isolates (U+202A–U+202E,
//!   U+2066–U+2069), soft hyphens and variation selectors are neither
//!   letters nor digits, so they are refused. Other digits (`²`, `٣`, `Ⅻ`)
//!   are refused too.
//! * **Precomposed letters only.** `é` typed on a keyboard is one character
//!   (U+00E9); `e` followed by a combining accent (U+0301) looks the same
//!   and would be a different nick. Combining marks are not letters, so
//!   the decomposed spelling is refused (marks that *are* letters, such as
//!   Devanagari vowel signs, stay allowed).
//! * **Styled look-alikes are refused:** fullwidth forms (`ａｌｉｃｅ`),
//!   mathematical letters (`𝐚𝐥𝐢𝐜𝐞`), letterlike symbols (`ℌ`, `ℓ`) and
//!   enclosed letters (`ⓐ`) are letters to Unicode but only dress up
//!   others.
//! * **One script per nick.** `аlice` with a Cyrillic `а` looks like `alice`.
//!   The letters of a nick all come from one script, except that
//!   Han, Hiragana, Katakana, Hangul and Bopomofo (written together in
//!   Japanese, Chinese and Korean) go together and with Latin, as
//!   Unicode's "highly restrictive" profile (UTS #39) allows. The script
//!   table here is a coarse one by code-point range (Latin, Greek,
//!   Cyrillic, Armenian, Hebrew, Arabic, the CJK group; any other letter
//!   counts by its 128-code-point block), which is enough for mixing to be
//!   seen.
//! * **Length in characters** (`--max-nick`), not bytes.
//! * **Unique as seen**: two nicks are the same if their [`skeleton`]s are
//!   equal: Unicode lowercase, then letters that look like Latin ones in
//!   Cyrillic and Greek mapped to them (`Вера` ~ `bepa`, `асе` ~ `ace`),
//!   and `0` ~ `o`, `1` ~ `l`. So `ALICE` is taken when `alice` is, and so
//!   is the all-Cyrillic `асе` when `ace` is.
//!
//! Not covered: look-alikes beyond that small table (UTS #39's confusables
//! list has thousands), and multi-letter ones (`rn` ~ `m`).

use std::fmt;

/// Why a nick was refused. The `Display` text is told to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NickError {
    /// No nick given.
    Empty,
    /// More characters than the room allows.
    TooLong {
        /// The room's limit.
        max: usize,
    },
    /// The first character is not a letter.
    BadStart,
    /// A character that is not a letter, an ASCII digit, `_` or `-` (or is
    /// a styled look-alike of a letter).
    BadChar(char),
    /// Letters from two scripts that do not go together.
    MixedScripts(Script, Script),
    /// Another member has it, or one that looks the same.
    Taken(String),
    /// The asker is no longer in the room.
    Gone,
}

impl fmt::Display for NickError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NickError::Empty => f.write_str("usage: /nick NAME"),
            NickError::TooLong { max } => write!(f, "a nick has at most {max} characters"),
            NickError::BadStart => f.write_str("a nick starts with a letter"),
            NickError::BadChar(c) => write!(
                f,
                "a nick is made of letters, digits, '_' and '-', not {:?} (U+{:04X})",
                c, *c as u32
            ),
            NickError::MixedScripts(a, b) => {
                write!(f, "a nick is written in one script, not {a} and {b}")
            }
            NickError::Taken(nick) => write!(f, "{nick} is taken"),
            NickError::Gone => f.write_str("you are no longer in the room"),
        }
    }
}

impl std::error::Error for NickError {}

/// The writing system of a letter, as coarsely as mixing needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// Latin letters, ASCII and accented.
    Latin,
    /// Greek and Coptic.
    Greek,
    /// Cyrillic.
    Cyrillic,
    /// Armenian.
    Armenian,
    /// Hebrew.
    Hebrew,
    /// Arabic.
    Arabic,
    /// Han, Hiragana, Katakana, Hangul, Bopomofo.
    Cjk,
    /// Any other letter: counted by its 128-code-point block (the value is
    /// the block's first code point).
    Block(u32),
}

impl fmt::Display for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Script::Latin => f.write_str("Latin"),
            Script::Greek => f.write_str("Greek"),
            Script::Cyrillic => f.write_str("Cyrillic"),
            Script::Armenian => f.write_str("Armenian"),
            Script::Hebrew => f.write_str("Hebrew"),
            Script::Arabic => f.write_str("Arabic"),
            Script::Cjk => f.write_str("Chinese/Japanese/Korean"),
            Script::Block(start) => write!(f, "the script at U+{start:04X}"),
        }
    }
}

/// The script of letter `c` (see the [module docs](self)).
pub fn script_of(c: char) -> Script {
    match c as u32 {
        0x41..=0x5a
        | 0x61..=0x7a
        | 0xaa
        | 0xba
        | 0xc0..=0x24f
        | 0x250..=0x2af
        | 0x1d00..=0x1dbf
        | 0x1e00..=0x1eff
        | 0x2c60..=0x2c7f
        | 0xa720..=0xa7ff
        | 0xab30..=0xab6f => Script::Latin,
        0x370..=0x3ff | 0x1f00..=0x1fff => Script::Greek,
        0x400..=0x52f | 0x1c80..=0x1c8f | 0x2de0..=0x2dff | 0xa640..=0xa69f => Script::Cyrillic,
        0x530..=0x58f | 0xfb13..=0xfb17 => Script::Armenian,
        0x590..=0x5ff | 0xfb1d..=0xfb4f => Script::Hebrew,
        0x600..=0x6ff | 0x750..=0x77f | 0x8a0..=0x8ff | 0xfb50..=0xfdff | 0xfe70..=0xfeff => {
            Script::Arabic
        }
        0x1100..=0x11ff
        | 0x2e80..=0x2fdf
        | 0x3005..=0x3007
        | 0x3021..=0x3029
        | 0x3031..=0x3035
        | 0x3038..=0x303c
        | 0x3040..=0x31ff
        | 0x3400..=0x4dbf
        | 0x4e00..=0x9fff
        | 0xa960..=0xa97f
        | 0xac00..=0xd7ff
        | 0xf900..=0xfaff
        | 0x20000..=0x3ffff => Script::Cjk,
        other => Script::Block(other & !0x7f),
    }
}

/// Whether two scripts may share a nick: the same one, or the CJK group
/// with Latin (UTS #39's "highly restrictive").
fn go_together(a: Script, b: Script) -> bool {
    a == b
        || matches!(
            (a, b),
            (Script::Cjk, Script::Latin) | (Script::Latin, Script::Cjk)
        )
}

/// Letters to Unicode that only restyle other letters (see the [module
/// docs](self)).
fn is_styled_look_alike(c: char) -> bool {
    matches!(c as u32,
        0xff00..=0xffef        // fullwidth and halfwidth forms
        | 0x1d400..=0x1d7ff    // mathematical alphanumeric symbols
        | 0x2100..=0x214f      // letterlike symbols
        | 0x2460..=0x24ff      // enclosed alphanumerics
        | 0x1f130..=0x1f189    // squared and negative enclosed letters
    )
}

/// Checks a nick's spelling against the rules of the [module docs](self):
/// 1 to `max` characters, a letter first, letters, ASCII digits, `_` and
/// `-` after it, no styled look-alikes, one script.
pub fn check_nick(nick: &str, max: usize) -> Result<(), NickError> {
    let first = nick.chars().next().ok_or(NickError::Empty)?;
    if !first.is_alphabetic() || is_styled_look_alike(first) {
        return Err(if first.is_alphabetic() {
            NickError::BadChar(first)
        } else {
            NickError::BadStart
        });
    }
    let mut script: Option<Script> = None;
    let mut count = 0;
    for c in nick.chars() {
        count += 1;
        if c.is_ascii_digit() || c == '_' || c == '-' {
            continue;
        }
        if !c.is_alphabetic() || is_styled_look_alike(c) {
            return Err(NickError::BadChar(c));
        }
        let this = script_of(c);
        match script {
            None => script = Some(this),
            Some(seen) if go_together(seen, this) => {
                // CJK with Latin: remember CJK, so a third script is
                // still measured against what came first.
                if this == Script::Cjk {
                    script = Some(this);
                }
            }
            Some(seen) => return Err(NickError::MixedScripts(seen, this)),
        }
    }
    if count > max {
        return Err(NickError::TooLong { max });
    }
    Ok(())
}

/// What a nick looks like, for telling whether two nicks would be
/// mistaken for each other: Unicode lowercase, then each character that
/// looks like a Latin letter (in Cyrillic and Greek, and the digits `0`,
/// `1`) replaced by that letter. Two nicks with equal skeletons are "the
/// same" to the room.
pub fn skeleton(nick: &str) -> String {
    nick.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            '0' | 'о' | 'ο' => 'o',
            '1' | 'ӏ' => 'l',
            'і' | 'ι' => 'i',
            'а' | 'α' => 'a',
            'в' | 'β' => 'b',
            'с' | 'ϲ' => 'c',
            'ԁ' => 'd',
            'е' | 'ε' => 'e',
            'һ' | 'н' => 'h',
            'ј' => 'j',
            'к' | 'κ' => 'k',
            'м' | 'μ' => 'm',
            'η' => 'n',
            'р' | 'ρ' => 'p',
            'ԛ' => 'q',
            'ѕ' => 's',
            'т' | 'τ' => 't',
            'у' | 'γ' => 'y',
            'υ' | 'ν' => 'v',
            'ԝ' | 'ω' => 'w',
            'х' | 'χ' => 'x',
            'ζ' => 'z',
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 16;

    #[test]
    fn letters_of_any_script_digits_underscore_and_dash() {
        for nick in [
            "alice",
            "a-b_9",
            "émile",
            "Zoë",
            "Вера",
            "太郎",
            "すずき",
            "김민준",
            "Ωμέγα",
        ] {
            assert_eq!(check_nick(nick, MAX), Ok(()), "{nick}");
        }
        // Japanese mixes Han and kana, and Latin with them.
        assert_eq!(check_nick("山田さんTaro", MAX), Ok(()));
        assert_eq!(check_nick("", MAX), Err(NickError::Empty));
        assert_eq!(check_nick("9lives", MAX), Err(NickError::BadStart));
        assert_eq!(check_nick("_x", MAX), Err(NickError::BadStart));
        assert_eq!(check_nick("a:b", MAX), Err(NickError::BadChar(':')));
        assert_eq!(check_nick("a.b", MAX), Err(NickError::BadChar('.')));
        // Digits other than ASCII's.
        for c in ['²', '٣', 'Ⅻ', '５'] {
            assert!(check_nick(&format!("a{c}"), MAX).is_err(), "{c}");
        }
    }

    #[test]
    fn controls_whitespace_and_invisible_characters_are_refused() {
        for c in [
            ' ', '\t', '\u{a0}', '\u{3000}', '\u{2028}', '\u{7f}', '\u{1b}', '\u{85}',
            // zero-width space, non-joiner, joiner, word joiner, BOM
            '\u{200b}', '\u{200c}', '\u{200d}', '\u{2060}', '\u{feff}',
            // bidi embeddings, overrides, isolates, marks
            '\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}', '\u{200f}',
            // soft hyphen, variation selector, combining acute
            '\u{ad}', '\u{fe0f}', '\u{301}',
        ] {
            assert_eq!(
                check_nick(&format!("ab{c}cd"), MAX),
                Err(NickError::BadChar(c)),
                "{c:?}"
            );
        }
        // Decomposed é (e + U+0301) is not the precomposed one.
        assert_eq!(
            check_nick("e\u{301}mile", MAX),
            Err(NickError::BadChar('\u{301}'))
        );
    }

    #[test]
    fn styled_look_alikes_are_refused() {
        for nick in ["ａlice", "𝐚lice", "aℓice", "ⓐlice", "alicｅ"] {
            assert!(
                matches!(check_nick(nick, MAX), Err(NickError::BadChar(_))),
                "{nick}"
            );
        }
    }

    #[test]
    fn one_script_per_nick() {
        // A Cyrillic а in a Latin nick.
        assert_eq!(
            check_nick("\u{430}lice", MAX),
            Err(NickError::MixedScripts(Script::Cyrillic, Script::Latin))
        );
        assert_eq!(
            check_nick("pаypal", MAX),
            Err(NickError::MixedScripts(Script::Latin, Script::Cyrillic))
        );
        assert_eq!(
            check_nick("Bοb", MAX),
            Err(NickError::MixedScripts(Script::Latin, Script::Greek))
        );
        assert!(check_nick("太郎Вера", MAX).is_err());
        assert_eq!(
            NickError::MixedScripts(Script::Latin, Script::Cyrillic).to_string(),
            "a nick is written in one script, not Latin and Cyrillic"
        );
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert_eq!(check_nick(&"é".repeat(MAX), MAX), Ok(()));
        assert_eq!(
            check_nick(&"é".repeat(MAX + 1), MAX),
            Err(NickError::TooLong { max: MAX })
        );
        assert_eq!(check_nick(&"日".repeat(MAX), MAX), Ok(()));
    }

    #[test]
    fn skeletons_make_look_alikes_equal_and_keep_others_apart() {
        assert_eq!(skeleton("ALICE"), skeleton("alice"));
        assert_eq!(skeleton("ÉMILE"), skeleton("émile"));
        assert_eq!(skeleton("Вера"), skeleton("bepa"));
        assert_eq!(skeleton("асе"), skeleton("ace"));
        assert_eq!(skeleton("b0b"), skeleton("bob"));
        assert_eq!(skeleton("Ivan"), skeleton("ivan"));
        assert_eq!(
            skeleton("al1ce"),
            skeleton("alice".replace('i', "l").as_str())
        );
        assert_eq!(skeleton("аlісе"), skeleton("alice"));
        assert_ne!(skeleton("émile"), skeleton("emile"));
        assert_ne!(skeleton("Вера"), skeleton("Вира"));
        assert_ne!(skeleton("alice"), skeleton("alicia"));
    }

    #[test]
    fn error_texts_name_the_character() {
        assert_eq!(
            NickError::BadChar('\u{200b}').to_string(),
            "a nick is made of letters, digits, '_' and '-', not '\\u{200b}' (U+200B)"
        );
    }
}
