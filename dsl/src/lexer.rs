//! Tokens of Parseltongue. Line breaks are tokens (a statement ends at the end of its
//! line or at `;`); comments run from `#` to the end of the line.

use crate::diagnostics::{Code, Diagnostic};
use crate::span::Span;

/// What a token is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// A word: keyword, name or unit.
    Ident(String),
    /// An unsigned integer (decimal, or hex with `0x`; `_` separates digits).
    Int(u64),
    /// A malformed number (already reported by the lexer).
    Invalid,
    /// A double-quoted string with `\"` and `\\` escapes.
    Str(String),
    LBrace,
    RBrace,
    Comma,
    /// `-` in inclusive ranges (`cores 2-3`).
    Dash,
    /// `..` in half-open spans (`window a 0..4 ms`).
    DotDot,
    /// End of a statement: a line break or `;`.
    Newline,
    Eof,
}

impl TokenKind {
    /// How the token is named in "expected ..." messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Ident(s) => format!("`{s}`"),
            Self::Int(n) => format!("number `{n}`"),
            Self::Str(_) => "a string".into(),
            Self::Invalid => "an invalid number".into(),
            Self::LBrace => "`{`".into(),
            Self::RBrace => "`}`".into(),
            Self::Comma => "`,`".into(),
            Self::Dash => "`-`".into(),
            Self::DotDot => "`..`".into(),
            Self::Newline => "end of line".into(),
            Self::Eof => "end of file".into(),
        }
    }
}

/// A token and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

/// A comment, kept for `fmt`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comment {
    /// The text after `#`, without the line break.
    pub text: String,
    pub span: Span,
}

/// The result of lexing a file.
pub struct Lexed {
    pub tokens: Vec<Token>,
    pub comments: Vec<Comment>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Splits `source` into tokens. Never fails: bad characters become diagnostics and are
/// skipped. The last token is always [`TokenKind::Eof`].
pub fn lex(source: &str) -> Lexed {
    let mut lexer = Lexer {
        src: source,
        bytes: source.as_bytes(),
        pos: 0,
        out: Vec::new(),
        comments: Vec::new(),
        diags: Vec::new(),
    };
    lexer.run();
    Lexed { tokens: lexer.out, comments: lexer.comments, diagnostics: lexer.diags }
}

struct Lexer<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
    out: Vec<Token>,
    comments: Vec<Comment>,
    diags: Vec<Diagnostic>,
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_continue(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl Lexer<'_> {
    fn peek(&self, ahead: usize) -> Option<u8> {
        self.bytes.get(self.pos + ahead).copied()
    }

    fn push(&mut self, kind: TokenKind, start: usize) {
        self.out.push(Token { kind, span: Span::new(start, self.pos) });
    }

    fn run(&mut self) {
        while let Some(b) = self.peek(0) {
            let start = self.pos;
            match b {
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b'\n' | b';' => {
                    self.pos += 1;
                    self.push(TokenKind::Newline, start);
                }
                b'#' => self.comment(),
                b'{' => self.single(TokenKind::LBrace),
                b'}' => self.single(TokenKind::RBrace),
                b',' => self.single(TokenKind::Comma),
                b'-' => self.single(TokenKind::Dash),
                b'.' if self.peek(1) == Some(b'.') => {
                    self.pos += 2;
                    self.push(TokenKind::DotDot, start);
                }
                b'"' => self.string(),
                b'0'..=b'9' => self.number(),
                b if is_ident_start(b) => {
                    while self.peek(0).is_some_and(is_ident_continue) {
                        self.pos += 1;
                    }
                    self.push(TokenKind::Ident(self.src[start..self.pos].to_string()), start);
                }
                _ => self.bad_character(),
            }
        }
        let end = self.src.len();
        self.out.push(Token { kind: TokenKind::Eof, span: Span::new(end, end) });
    }

    fn single(&mut self, kind: TokenKind) {
        let start = self.pos;
        self.pos += 1;
        self.push(kind, start);
    }

    fn comment(&mut self) {
        let start = self.pos;
        while self.peek(0).is_some_and(|b| b != b'\n') {
            self.pos += 1;
        }
        let text = self.src[start + 1..self.pos].trim_end_matches('\r').to_string();
        self.comments.push(Comment { text, span: Span::new(start, self.pos) });
    }

    fn bad_character(&mut self) {
        let start = self.pos;
        let ch = self.src[start..].chars().next().unwrap_or('?');
        self.pos += ch.len_utf8();
        let hint = match ch {
            '.' => "numbers are whole: write `1500 us` instead of `1.5 ms`; spans are written `a..b`",
            '=' | ':' => "settings are written `name value`, without `=` or `:`",
            '\'' => "strings use double quotes",
            _ => "remove it",
        };
        self.diags.push(
            Diagnostic::new(
                Code::BadCharacter,
                Span::new(start, self.pos),
                format!("unexpected character `{}`", ch.escape_default()),
            )
            .label("not part of the language")
            .hint(hint),
        );
    }

    fn string(&mut self) {
        let start = self.pos;
        self.pos += 1;
        let mut text = String::new();
        loop {
            let Some(ch) = self.src[self.pos..].chars().next() else {
                return self.unterminated(start);
            };
            match ch {
                '"' => {
                    self.pos += 1;
                    break;
                }
                '\n' => return self.unterminated(start),
                '\\' => {
                    let esc_start = self.pos;
                    self.pos += 1;
                    match self.peek(0) {
                        Some(b'"') => text.push('"'),
                        Some(b'\\') => text.push('\\'),
                        _ => {
                            let len = self.src[self.pos..].chars().next().map_or(0, char::len_utf8);
                            self.pos += len;
                            self.diags.push(
                                Diagnostic::new(
                                    Code::BadString,
                                    Span::new(esc_start, self.pos),
                                    "unknown escape in string",
                                )
                                .label("only \\\" and \\\\ are escapes")
                                .hint("write a backslash as \\\\"),
                            );
                            continue;
                        }
                    }
                    self.pos += 1;
                }
                c => {
                    text.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
        self.push(TokenKind::Str(text), start);
    }

    fn unterminated(&mut self, start: usize) {
        self.diags.push(
            Diagnostic::new(Code::BadString, Span::new(start, self.pos), "unterminated string")
                .label("this string has no closing quote")
                .hint("close the string with `\"` on the same line"),
        );
        let text = self.src[start + 1..self.pos].to_string();
        self.push(TokenKind::Str(text), start);
    }

    fn number(&mut self) {
        let start = self.pos;
        let hex = self.peek(0) == Some(b'0') && matches!(self.peek(1), Some(b'x' | b'X'));
        let (radix, digits_start) = if hex { (16, start + 2) } else { (10, start) };
        self.pos = digits_start;
        while self.peek(0).is_some_and(|b| b.is_ascii_digit() || b == b'_' || (hex && b.is_ascii_hexdigit()))
        {
            self.pos += 1;
        }
        let digits: String = self.src[digits_start..self.pos].chars().filter(|c| *c != '_').collect();
        let value = u64::from_str_radix(&digits, radix).ok();
        match value {
            Some(v) => self.push(TokenKind::Int(v), start),
            None => {
                let why = if digits.is_empty() {
                    "a hex number needs digits after `0x`"
                } else {
                    "too large: numbers must fit in 64 bits"
                };
                self.diags.push(
                    Diagnostic::new(Code::BadNumber, Span::new(start, self.pos), "invalid number")
                        .label(why)
                        .hint("write a decimal number, or hex as `0x1f`"),
                );
                self.push(TokenKind::Invalid, start);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<TokenKind> {
        lex(src).tokens.into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn lexes_numbers_units_and_ranges() {
        use TokenKind::*;
        assert_eq!(
            kinds("cores 2-3\nram 0x1_000 MiB 0..4ms"),
            vec![
                Ident("cores".into()),
                Int(2),
                Dash,
                Int(3),
                Newline,
                Ident("ram".into()),
                Int(0x1000),
                Ident("MiB".into()),
                Int(0),
                DotDot,
                Int(4),
                Ident("ms".into()),
                Eof
            ]
        );
    }

    #[test]
    fn strings_and_comments() {
        let l = lex("image \"a\\\\b.elf\" # the image\n");
        assert_eq!(l.tokens[1].kind, TokenKind::Str("a\\b.elf".into()));
        assert_eq!(l.comments[0].text, " the image");
        assert!(l.diagnostics.is_empty());
    }

    #[test]
    fn bad_input_is_reported_not_fatal() {
        let l = lex("a = \"open\n0x 99999999999999999999 é");
        let codes: Vec<_> = l.diagnostics.iter().map(|d| d.code).collect();
        assert_eq!(
            codes,
            vec![Code::BadCharacter, Code::BadString, Code::BadNumber, Code::BadNumber, Code::BadCharacter]
        );
        assert_eq!(l.tokens.last().unwrap().kind, TokenKind::Eof);
    }
}
