//! Recursive-descent parser with error recovery: a bad statement is reported and skipped
//! up to the end of its line, so one run reports every syntax error of a file.

use hallows_abi::health::{Action, EventClass};
use hallows_abi::table::{
    LOG_DEBUG, LOG_ERROR, LOG_INFO, LOG_TRACE, LOG_WARN, PRIV_HALT_SYSTEM, PRIV_MANAGE, PRIV_QUERY,
    PRIV_RESTART,
};

use crate::ast::*;
use crate::diagnostics::{did_you_mean, Code, Diagnostic};
use crate::lexer::{lex, Comment, Token, TokenKind};
use crate::span::{Span, Spanned};

/// The outcome of parsing: a tree (possibly partial), comments and diagnostics.
pub struct Parsed {
    pub file: File,
    pub comments: Vec<Comment>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses `source`. Never fails and never panics; problems are diagnostics.
pub fn parse(source: &str) -> Parsed {
    let lexed = lex(source);
    let mut p = Parser {
        source,
        tokens: lexed.tokens,
        pos: 0,
        prev_end: 0,
        diags: lexed.diagnostics,
        statement: None,
    };
    let file = p.file();
    Parsed { file, comments: lexed.comments, diagnostics: p.diags }
}

/// Keywords that start a top-level block.
pub const ITEM_KEYWORDS: &[&str] = &["platform", "hypervisor", "partition", "channel", "schedule"];
/// Settings of `platform`.
pub const PLATFORM_SETTINGS: &[&str] =
    &["cores", "ram", "llc_ways", "cat_min_ways", "console", "require_cat", "cdp"];
/// Settings of `hypervisor`.
pub const HYPERVISOR_SETTINGS: &[&str] = &["reserve", "log_level", "llc_ways"];
/// Settings of `partition`.
pub const PARTITION_SETTINGS: &[&str] = &[
    "kind",
    "image",
    "kernel",
    "initramfs",
    "cmdline",
    "cores",
    "memory",
    "llc_ways",
    "llc_code_ways",
    "memory_bandwidth",
    "io",
    "mmio",
    "pci",
    "privileges",
    "on",
    "restarts",
    "persistent",
    "args",
];
/// Settings of `channel`.
pub const CHANNEL_SETTINGS: &[&str] = &["kind", "from", "to", "message", "depth", "linux"];
/// Settings of `schedule`.
pub const SCHEDULE_SETTINGS: &[&str] = &["major_frame", "window"];

const SIZE_UNITS: &[(&str, u64)] =
    &[("B", 1), ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40)];
const TIME_UNITS: &[(&str, u64)] = &[("ns", 1), ("us", 1_000), ("ms", 1_000_000), ("s", 1_000_000_000)];
/// Words that look like a size unit but are not one of ours.
const SIZE_LOOKALIKES: &[&str] = &[
    "K", "M", "G", "T", "KB", "MB", "GB", "TB", "kB", "kb", "mb", "gb", "kib", "mib", "gib", "tib", "Kib",
    "Mib", "Gib", "b", "bytes",
];

const LOG_LEVELS: &[(&str, u8)] = &[
    ("error", LOG_ERROR),
    ("warn", LOG_WARN),
    ("info", LOG_INFO),
    ("debug", LOG_DEBUG),
    ("trace", LOG_TRACE),
];
const KINDS: &[(&str, Kind)] = &[("rt", Kind::Rt), ("linux", Kind::Linux)];
const CHANNEL_KINDS: &[(&str, ChannelKind)] =
    &[("sampling", ChannelKind::Sampling), ("queuing", ChannelKind::Queuing)];
const LINUX_VIEWS: &[(&str, LinuxView)] = &[("shm", LinuxView::Shm), ("tty", LinuxView::Tty)];
/// The words of `privileges` and their `PRIV_*` bits, in the order `fmt` and `show` print
/// them. The one list the parser, the formatter and `show` share, so a new privilege
/// cannot be parsed yet printed as another.
pub const PRIVILEGES: &[(&str, u32)] = &[
    ("query", PRIV_QUERY),
    ("restart", PRIV_RESTART),
    ("halt_system", PRIV_HALT_SYSTEM),
    ("manage", PRIV_MANAGE),
];

/// The word of one `PRIV_*` bit, `None` for a bit the language does not know.
pub fn privilege_word(bit: u32) -> Option<&'static str> {
    PRIVILEGES.iter().find(|(_, b)| *b == bit).map(|(word, _)| *word)
}

/// How every statement is written, as `(block, keyword, syntax, example)`: the hint of a
/// syntax error inside a statement. Block headers are listed under the block `file`.
pub const STATEMENT_SYNTAX: &[(&str, &str, &str, &str)] = &[
    ("file", "platform", "platform {", "platform {"),
    ("file", "hypervisor", "hypervisor {", "hypervisor {"),
    ("file", "partition", "partition NAME {", "partition sensor {"),
    ("file", "channel", "channel NAME {", "channel readings {"),
    ("file", "schedule", "schedule cores LIST {", "schedule cores 1 {"),
    ("platform", "cores", "cores COUNT | auto", "cores 4"),
    ("platform", "ram", "ram SIZE | auto", "ram 8 GiB"),
    ("platform", "llc_ways", "llc_ways COUNT | auto", "llc_ways 12"),
    ("platform", "cat_min_ways", "cat_min_ways COUNT | auto", "cat_min_ways 2"),
    ("platform", "console", "console PORT", "console 0x3f8"),
    ("platform", "require_cat", "require_cat", "require_cat"),
    ("platform", "cdp", "cdp", "cdp"),
    ("hypervisor", "reserve", "reserve SIZE", "reserve 32 MiB"),
    ("hypervisor", "log_level", "log_level error | warn | info | debug | trace", "log_level info"),
    ("hypervisor", "llc_ways", "llc_ways FIRST-LAST", "llc_ways 10-11"),
    ("partition", "kind", "kind rt | linux", "kind rt"),
    ("partition", "image", "image \"FILE\"", "image \"hello.elf\""),
    ("partition", "kernel", "kernel \"FILE\"", "kernel \"vmlinux\""),
    ("partition", "initramfs", "initramfs \"FILE\"", "initramfs \"initramfs.cpio\""),
    ("partition", "cmdline", "cmdline \"TEXT\"", "cmdline \"console=ttyS0\""),
    ("partition", "cores", "cores LIST", "cores 0, 2-3"),
    ("partition", "memory", "memory SIZE [at ADDRESS]", "memory 64 MiB"),
    ("partition", "llc_ways", "llc_ways FIRST-LAST", "llc_ways 0-3"),
    ("partition", "llc_code_ways", "llc_code_ways FIRST-LAST", "llc_code_ways 4-5"),
    ("partition", "memory_bandwidth", "memory_bandwidth PERCENT percent", "memory_bandwidth 50 percent"),
    ("partition", "io", "io PORTS", "io 0x2f8-0x2ff"),
    ("partition", "mmio", "mmio ADDRESS size SIZE", "mmio 0xfe000000 size 4 KiB"),
    ("partition", "pci", "pci \"[SEGMENT:]BUS:DEVICE.FUNCTION\", ...", "pci \"0000:3b:00.0\""),
    (
        "partition",
        "privileges",
        "privileges query | restart | halt_system | manage, ...",
        "privileges query, restart",
    ),
    ("partition", "on", "on EVENT ACTION", "on panic restart"),
    ("partition", "restarts", "restarts COUNT per DURATION", "restarts 3 per 10 s"),
    ("partition", "persistent", "persistent SIZE", "persistent 2 MiB"),
    ("partition", "args", "args \"TEXT\"", "args \"topics=orders:4\""),
    ("channel", "kind", "kind sampling | queuing", "kind queuing"),
    ("channel", "from", "from PARTITION", "from sensor"),
    ("channel", "to", "to PARTITION", "to logger"),
    ("channel", "message", "message SIZE", "message 64 B"),
    ("channel", "depth", "depth COUNT", "depth 16"),
    ("channel", "linux", "linux shm", "linux shm"),
    ("schedule", "major_frame", "major_frame DURATION", "major_frame 10 ms"),
    ("schedule", "window", "window PARTITION START..END UNIT", "window sensor 0..4 ms"),
];

/// `(syntax, example)` of the statement `keyword` in `block` (see [`STATEMENT_SYNTAX`]).
pub fn statement_syntax(block: &str, keyword: &str) -> Option<(&'static str, &'static str)> {
    STATEMENT_SYNTAX.iter().find(|(b, k, _, _)| *b == block && *k == keyword).map(|(_, _, s, e)| (*s, *e))
}

/// `Err(())` means a diagnostic was recorded and the statement must be skipped.
type PResult<T> = Result<T, ()>;

struct Parser<'a> {
    /// The text, to quote a token as it was written (`0x3e8`, not `1000`).
    source: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    prev_end: usize,
    diags: Vec<Diagnostic>,
    /// The statement being parsed, as `(syntax, example)`: the hint of a syntax error.
    statement: Option<(&'static str, &'static str)>,
}

fn set<T>(
    diags: &mut Vec<Diagnostic>,
    slot: &mut Option<Spanned<T>>,
    value: Spanned<T>,
    keyword: &Spanned<String>,
) {
    if let Some(first) = slot {
        diags.push(
            Diagnostic::new(
                Code::DuplicateSetting,
                keyword.span,
                format!("`{}` is given twice", keyword.value),
            )
            .label("second time")
            .related(first.span, "first given here")
            .hint("keep one of them"),
        );
    } else {
        *slot = Some(value);
    }
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // The token list always ends with Eof and `pos` never passes it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if t.kind != TokenKind::Eof {
            self.pos += 1;
        }
        self.prev_end = t.span.end;
        t
    }

    fn at_ident(&self, word: &str) -> bool {
        matches!(&self.peek().kind, TokenKind::Ident(w) if w == word)
    }

    fn at_statement_end(&self) -> bool {
        matches!(self.peek().kind, TokenKind::Newline | TokenKind::RBrace | TokenKind::Eof)
    }

    fn skip_newlines(&mut self) {
        while self.peek().kind == TokenKind::Newline {
            self.bump();
        }
    }

    /// Reports that `expected` was wanted here; the hint shows how the statement being
    /// parsed is written.
    fn unexpected<T>(&mut self, expected: &str) -> PResult<T> {
        let ends_early = matches!(self.peek().kind, TokenKind::Newline | TokenKind::Eof);
        let hint = match (self.statement, ends_early) {
            (Some((syntax, example)), true) => {
                format!(
                    "the statement ends too early: it is written `{syntax}` on one line, e.g. `{example}`"
                )
            }
            (Some((syntax, example)), false) => format!("it is written `{syntax}`, e.g. `{example}`"),
            (None, true) => format!("the statement ends too early: write {expected} on the same line"),
            (None, false) => format!("write {expected} here"),
        };
        self.unexpected_with(expected, hint)
    }

    /// Reports that `expected` was wanted here, with `hint`.
    fn unexpected_with<T>(&mut self, expected: &str, hint: impl Into<String>) -> PResult<T> {
        let t = self.peek().clone();
        if t.kind == TokenKind::Invalid {
            // The lexer reported it already.
            return Err(());
        }
        let found = match t.kind {
            TokenKind::Int(_) => {
                format!("number `{}`", self.source.get(t.span.start..t.span.end).unwrap_or_default())
            }
            _ => t.kind.describe(),
        };
        self.diags.push(
            Diagnostic::new(Code::UnexpectedToken, t.span, format!("expected {expected}, found {found}"))
                .label(format!("expected {expected}"))
                .hint(hint),
        );
        Err(())
    }

    /// Whether the statement starting with `word` inside a block with `settings` is the
    /// start of the next top-level block (so the current one lacks its `}`): a block
    /// keyword, or a likely typo of one, on a line that opens a `{`. Another unknown word
    /// before a `{` stays an unknown setting (a nested block the language does not have).
    fn starts_next_block(&self, word: &str, settings: &[&str]) -> bool {
        let block_keyword = ITEM_KEYWORDS.contains(&word)
            || (!settings.contains(&word) && did_you_mean(word, ITEM_KEYWORDS.iter().copied()).is_some());
        block_keyword && self.line_opens_block()
    }

    /// Whether the current line (up to its end or `;`) holds a `{`: it starts a block.
    fn line_opens_block(&self) -> bool {
        self.tokens[self.pos..]
            .iter()
            .take_while(|t| !matches!(t.kind, TokenKind::Newline | TokenKind::Eof))
            .any(|t| t.kind == TokenKind::LBrace)
    }

    /// Skips to the end of the current statement: its line, or a closing `}` that is not
    /// part of the statement (a statement never spans lines, so a stray `{` does not make
    /// the recovery swallow the block's own closing brace).
    fn recover_statement(&mut self) {
        let mut depth = 0usize;
        loop {
            match self.peek().kind {
                TokenKind::Eof | TokenKind::Newline => return,
                TokenKind::RBrace if depth == 0 => return,
                TokenKind::LBrace => depth += 1,
                TokenKind::RBrace => depth -= 1,
                _ => {}
            }
            self.bump();
        }
    }

    fn ident(&mut self, expected: &str) -> PResult<Spanned<String>> {
        match self.peek().kind.clone() {
            TokenKind::Ident(w) => {
                let t = self.bump();
                Ok(Spanned::new(w, t.span))
            }
            _ => self.unexpected(expected),
        }
    }

    fn int(&mut self, expected: &str) -> PResult<Spanned<u64>> {
        match self.peek().kind {
            TokenKind::Int(v) => {
                let t = self.bump();
                Ok(Spanned::new(v, t.span))
            }
            _ => self.unexpected(expected),
        }
    }

    fn string(&mut self, expected: &str) -> PResult<Spanned<String>> {
        match self.peek().kind.clone() {
            TokenKind::Str(s) => {
                let t = self.bump();
                Ok(Spanned::new(s, t.span))
            }
            _ => self.unexpected(expected),
        }
    }

    fn choice<T: Copy>(&mut self, what: &str, choices: &[(&str, T)]) -> PResult<Spanned<T>> {
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        let list = names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
        let word = self.ident(&format!("{what} ({list})"))?;
        if let Some((_, v)) = choices.iter().find(|(n, _)| *n == word.value) {
            return Ok(Spanned::new(*v, word.span));
        }
        let hint = match did_you_mean(&word.value, names.iter().copied()) {
            Some(s) => format!("did you mean `{s}`? (one of {list})"),
            None => format!("use one of {list}"),
        };
        self.diags.push(
            Diagnostic::new(Code::UnknownValue, word.span, format!("unknown {what} `{}`", word.value))
                .label(format!("not a {what}"))
                .hint(hint),
        );
        Err(())
    }

    fn auto_or(
        &mut self,
        parse: impl FnOnce(&mut Self) -> PResult<Spanned<u64>>,
    ) -> PResult<Spanned<Auto<u64>>> {
        if self.at_ident("auto") {
            let t = self.bump();
            return Ok(Spanned::new(Auto::Auto, t.span));
        }
        let v = parse(self)?;
        Ok(Spanned::new(Auto::Value(v.value), v.span))
    }

    /// `NUMBER [UNIT]`, in bytes.
    fn size(&mut self) -> PResult<Spanned<u64>> {
        let n = self.int("a size such as `4 MiB`")?;
        let TokenKind::Ident(word) = self.peek().kind.clone() else {
            return Ok(n);
        };
        let multiplier = if let Some((_, m)) = SIZE_UNITS.iter().find(|(u, _)| *u == word) {
            *m
        } else if SIZE_LOOKALIKES.contains(&word.as_str()) {
            let t = self.peek().span;
            let suggestion = match word.chars().next().map(|c| c.to_ascii_lowercase()) {
                Some('k') => "did you mean `KiB`? ",
                Some('m') => "did you mean `MiB`? ",
                Some('g') => "did you mean `GiB`? ",
                Some('t') => "did you mean `TiB`? ",
                _ => "did you mean `B`? ",
            };
            self.diags.push(
                Diagnostic::new(Code::UnknownUnit, t, format!("unknown size unit `{word}`"))
                    .label("not a size unit")
                    .hint(format!("{suggestion}sizes use B, KiB, MiB, GiB or TiB (powers of 1024)")),
            );
            return Err(());
        } else {
            return Ok(n);
        };
        let unit = self.bump();
        let span = n.span.to(unit.span);
        match n.value.checked_mul(multiplier) {
            Some(v) => Ok(Spanned::new(v, span)),
            None => {
                self.diags.push(
                    Diagnostic::new(Code::ValueOutOfRange, span, "size too large")
                        .label("does not fit in 64 bits")
                        .hint("sizes must be below 16 EiB"),
                );
                Err(())
            }
        }
    }

    fn time_unit(&mut self) -> Option<Spanned<u64>> {
        let TokenKind::Ident(word) = self.peek().kind.clone() else { return None };
        let (_, m) = TIME_UNITS.iter().find(|(u, _)| *u == word)?;
        let t = self.bump();
        Some(Spanned::new(*m, t.span))
    }

    fn unit_error<T>(&mut self, at: Span) -> PResult<T> {
        let found = match &self.peek().kind {
            TokenKind::Ident(w) => format!("unknown time unit `{w}`"),
            _ => "a duration needs a unit".to_string(),
        };
        let span = if matches!(self.peek().kind, TokenKind::Ident(_)) { self.peek().span } else { at };
        self.diags.push(
            Diagnostic::new(Code::UnknownUnit, span, found)
                .label("expected ns, us, ms or s")
                .hint("write durations with a unit, e.g. `10 ms` or `500 us`"),
        );
        Err(())
    }

    fn scaled(&mut self, n: Spanned<u64>, unit: u64, span: Span) -> PResult<Spanned<u64>> {
        match n.value.checked_mul(unit) {
            Some(v) => Ok(Spanned::new(v, span)),
            None => {
                self.diags.push(
                    Diagnostic::new(Code::ValueOutOfRange, span, "duration too large")
                        .label("does not fit in 64 bits of nanoseconds")
                        .hint("durations must be below 584 years"),
                );
                Err(())
            }
        }
    }

    /// `NUMBER UNIT`, in nanoseconds.
    fn duration(&mut self) -> PResult<Spanned<u64>> {
        let n = self.int("a duration such as `10 ms`")?;
        match self.time_unit() {
            Some(u) => self.scaled(n.clone(), u.value, n.span.to(u.span)),
            None => self.unit_error(n.span),
        }
    }

    /// `START..END UNIT` or `START UNIT..END UNIT`; a unit-less start takes the end's unit.
    fn time_span(&mut self) -> PResult<(Spanned<u64>, Spanned<u64>)> {
        let start = self.int("the window's start, e.g. `0..4 ms`")?;
        let start_unit = self.time_unit();
        if self.peek().kind != TokenKind::DotDot {
            return self.unexpected("`..` between the window's start and end");
        }
        self.bump();
        let end = self.int("the window's end")?;
        let Some(end_unit) = self.time_unit() else {
            return self.unit_error(end.span);
        };
        let unit = start_unit.as_ref().map_or(end_unit.value, |u| u.value);
        let start_span = start_unit.map_or(start.span, |u| start.span.to(u.span));
        let start = self.scaled(start, unit, start_span)?;
        let end = self.scaled(end.clone(), end_unit.value, end.span.to(end_unit.span))?;
        Ok((start, end))
    }

    /// `N` or `A-B`, comma separated; ranges are inclusive.
    fn index_list(&mut self, what: &str) -> PResult<Spanned<IndexList>> {
        let mut items = Vec::new();
        loop {
            let first = self.int(what)?;
            let item = if self.peek().kind == TokenKind::Dash {
                self.bump();
                let last = self.int("the last number of the range")?;
                let span = first.span.to(last.span);
                if last.value < first.value {
                    self.diags.push(
                        Diagnostic::new(Code::BadRange, span, "range ends before it starts")
                            .label(format!("{} is below {}", last.value, first.value))
                            .hint(format!("write it as `{}-{}`", last.value, first.value)),
                    );
                    return Err(());
                }
                Spanned::new((first.value, last.value), span)
            } else {
                Spanned::new((first.value, first.value), first.span)
            };
            items.push(item);
            if self.peek().kind != TokenKind::Comma {
                break;
            }
            self.bump();
        }
        let span = items[0].span.to(items[items.len() - 1].span);
        Ok(Spanned::new(items, span))
    }

    fn pci_address(&mut self) -> PResult<Spanned<PciAddress>> {
        let s = self.string("a PCI address such as \"0000:3b:00.0\"")?;
        match parse_pci(&s.value) {
            Some(a) => Ok(Spanned::new(a, s.span)),
            None => {
                self.diags.push(
                    Diagnostic::new(
                        Code::BadPciAddress,
                        s.span,
                        format!("`{}` is not a PCI address", s.value),
                    )
                    .label("expected [segment:]bus:device.function in hex")
                    .hint("write it as lspci shows it, e.g. \"0000:3b:00.0\" or \"3b:00.0\""),
                );
                Err(())
            }
        }
    }

    fn file(&mut self) -> File {
        let mut file = File::default();
        loop {
            self.skip_newlines();
            let t = self.peek().clone();
            self.statement = match &t.kind {
                TokenKind::Ident(w) => statement_syntax("file", w),
                _ => None,
            };
            let item = match &t.kind {
                TokenKind::Eof => break,
                TokenKind::RBrace => self.unexpected_with(
                    "a block",
                    "this `}` closes no block: remove it, or look for a block above that was closed twice",
                ),
                TokenKind::Ident(w) => match w.as_str() {
                    "platform" => self.platform().map(Item::Platform),
                    "hypervisor" => self.hypervisor().map(Item::Hypervisor),
                    "partition" => self.partition().map(|p| Item::Partition(Box::new(p))),
                    "channel" => self.channel().map(Item::Channel),
                    "schedule" => self.schedule().map(Item::Schedule),
                    other => {
                        let hint = match did_you_mean(other, ITEM_KEYWORDS.iter().copied()) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => {
                                "a file holds platform, hypervisor, partition, channel and schedule blocks"
                                    .into()
                            }
                        };
                        self.diags.push(
                            Diagnostic::new(Code::UnknownSetting, t.span, format!("unknown block `{other}`"))
                                .label("not a block keyword")
                                .hint(hint),
                        );
                        Err(())
                    }
                },
                _ => self.unexpected_with(
                    "a block (`platform`, `hypervisor`, `partition`, `channel` or `schedule`)",
                    "a file holds blocks such as `partition sensor { ... }`, one after the other",
                ),
            };
            self.statement = None;
            match item {
                Ok(i) => file.items.push(i),
                Err(()) => self.recover_item(),
            }
        }
        file
    }

    /// Skips the rest of a broken top-level item, including a following `{ ... }` block.
    fn recover_item(&mut self) {
        loop {
            match self.peek().kind {
                TokenKind::Eof | TokenKind::Newline => return,
                TokenKind::RBrace => {
                    self.bump();
                    return;
                }
                TokenKind::LBrace => {
                    self.bump();
                    let mut depth = 1usize;
                    while depth > 0 {
                        match self.bump().kind {
                            TokenKind::LBrace => depth += 1,
                            TokenKind::RBrace => depth -= 1,
                            TokenKind::Eof => return,
                            _ => {}
                        }
                    }
                    return;
                }
                _ => {
                    self.bump();
                }
            }
        }
    }

    /// Parses `{ statement* }`, calling `statement` with each statement's keyword. `what`
    /// is the block's kind (`partition`), `title` names it in messages (`partition sensor`).
    /// Returns whether the block had syntax errors.
    ///
    /// A block whose `}` is missing ends where the next block starts (see
    /// [`Self::starts_next_block`]) or at the end of the file; that is one
    /// error at the opening brace, instead of the next blocks' settings reported one by one
    /// as settings this block does not have.
    fn block(
        &mut self,
        settings: &[&str],
        what: &str,
        title: &str,
        mut statement: impl FnMut(&mut Self, Spanned<String>) -> PResult<()>,
    ) -> PResult<bool> {
        let before = self.diags.len();
        if self.peek().kind != TokenKind::LBrace {
            return self.unexpected("`{` on the same line");
        }
        let open = self.bump().span;
        let unclosed = |open: Span| {
            Diagnostic::new(Code::UnclosedBlock, open, format!("block `{title}` opened here is not closed"))
                .label("opened here")
        };
        loop {
            self.skip_newlines();
            match self.peek().kind.clone() {
                TokenKind::RBrace => {
                    self.bump();
                    return Ok(self.diags.len() > before);
                }
                TokenKind::Eof => {
                    self.diags
                        .push(unclosed(open).hint(format!("add `}}` after the last setting of `{title}`")));
                    return Ok(true);
                }
                TokenKind::Ident(word) if self.starts_next_block(&word, settings) => {
                    let next = self.peek().span;
                    self.diags.push(
                        unclosed(open)
                            .related(next, "the next block starts here")
                            .hint(format!("add `}}` after the last setting of `{title}`, before this block")),
                    );
                    return Ok(true);
                }
                TokenKind::Ident(word) if settings.contains(&word.as_str()) => {
                    let t = self.bump();
                    self.statement = statement_syntax(what, &word);
                    let ok = statement(self, Spanned::new(word, t.span)).is_ok();
                    if ok && !self.at_statement_end() {
                        let _ = self.unexpected_with::<()>(
                            "end of line",
                            "one setting per line: end it with a line break or `;` before the next",
                        );
                        self.recover_statement();
                    } else if !ok {
                        self.recover_statement();
                    }
                    self.statement = None;
                }
                TokenKind::Ident(word) => {
                    let t = self.peek().span;
                    let hint = match did_you_mean(&word, settings.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("a {what} has: {}", settings.join(", ")),
                    };
                    self.diags.push(
                        Diagnostic::new(Code::UnknownSetting, t, format!("unknown {what} setting `{word}`"))
                            .label(format!("not a {what} setting"))
                            .hint(hint),
                    );
                    self.recover_statement();
                }
                _ => {
                    let _ = self.unexpected_with::<()>(
                        &format!("a {what} setting"),
                        format!("a {what} has: {}", settings.join(", ")),
                    );
                    self.recover_statement();
                    if self.peek().kind == TokenKind::LBrace {
                        self.recover_item();
                    }
                }
            }
        }
    }

    fn platform(&mut self) -> PResult<Platform> {
        let mut p = Platform { span: self.bump().span, ..Default::default() };
        self.block(PLATFORM_SETTINGS, "platform", "platform", |s, kw| {
            match kw.value.as_str() {
                "cores" => {
                    let v = s.auto_or(|s| s.int("a core count or `auto`"))?;
                    set(&mut s.diags, &mut p.cores, v, &kw);
                }
                "ram" => {
                    let v = s.auto_or(Self::size)?;
                    set(&mut s.diags, &mut p.ram, v, &kw);
                }
                "llc_ways" => {
                    let v = s.auto_or(|s| s.int("a number of LLC ways or `auto`"))?;
                    set(&mut s.diags, &mut p.llc_ways, v, &kw);
                }
                "cat_min_ways" => {
                    let v = s.auto_or(|s| s.int("the minimum CAT mask width or `auto`"))?;
                    set(&mut s.diags, &mut p.cat_min_ways, v, &kw);
                }
                "console" => {
                    let v = s.int("the console's I/O port, e.g. `0x3f8`")?;
                    set(&mut s.diags, &mut p.console, v, &kw);
                }
                _ => {
                    let flag = if kw.value == "cdp" { &mut p.cdp } else { &mut p.require_cat };
                    let mut slot = flag.map(|span| Spanned::new((), span));
                    set(&mut s.diags, &mut slot, Spanned::new((), kw.span), &kw);
                    *flag = slot.map(|flag| flag.span);
                }
            }
            Ok(())
        })?;
        Ok(p)
    }

    fn hypervisor(&mut self) -> PResult<Hypervisor> {
        let mut h = Hypervisor { span: self.bump().span, ..Default::default() };
        self.block(HYPERVISOR_SETTINGS, "hypervisor", "hypervisor", |s, kw| {
            if kw.value == "reserve" {
                let v = s.size()?;
                set(&mut s.diags, &mut h.reserve, v, &kw);
            } else if kw.value == "llc_ways" {
                let v = s.index_list("a cache way or range, e.g. `10-11`")?;
                set(&mut s.diags, &mut h.llc_ways, v, &kw);
            } else {
                let v = s.choice("log level", LOG_LEVELS)?;
                set(&mut s.diags, &mut h.log_level, v, &kw);
            }
            Ok(())
        })?;
        Ok(h)
    }

    fn partition(&mut self) -> PResult<Partition> {
        self.bump();
        let name = self.ident("the partition's name")?;
        let mut p = Partition {
            name,
            kind: None,
            image: None,
            kernel: None,
            initramfs: None,
            cmdline: None,
            cores: None,
            memory: None,
            pinned: None,
            llc_ways: None,
            llc_code_ways: None,
            memory_bandwidth: None,
            io: Vec::new(),
            mmio: Vec::new(),
            pci: Vec::new(),
            privileges: Vec::new(),
            health: Vec::new(),
            restarts: None,
            persistent: None,
            args: None,
            broken: false,
        };
        let mut privileges_kw: Option<Spanned<()>> = None;
        let title = format!("partition {}", p.name.value);
        let broken = self.block(PARTITION_SETTINGS, "partition", &title, |s, kw| {
            match kw.value.as_str() {
                "kind" => {
                    let v = s.choice("partition kind", KINDS)?;
                    set(&mut s.diags, &mut p.kind, v, &kw);
                }
                "image" | "kernel" | "initramfs" | "cmdline" | "args" => {
                    let v = s.string(&format!("the {} as a quoted string", kw.value))?;
                    let slot = match kw.value.as_str() {
                        "image" => &mut p.image,
                        "kernel" => &mut p.kernel,
                        "initramfs" => &mut p.initramfs,
                        "args" => &mut p.args,
                        _ => &mut p.cmdline,
                    };
                    set(&mut s.diags, slot, v, &kw);
                }
                "cores" => {
                    let v = s.index_list("a core id or range, e.g. `2-3`")?;
                    set(&mut s.diags, &mut p.cores, v, &kw);
                }
                "memory" => {
                    let v = s.size()?;
                    let pinned = if s.at_ident("at") {
                        s.bump();
                        Some(s.int("the pinned host-physical base, e.g. `0x1_0000_0000`")?)
                    } else {
                        None
                    };
                    if p.memory.is_none() {
                        p.pinned = pinned;
                    }
                    set(&mut s.diags, &mut p.memory, v, &kw);
                }
                "llc_ways" => {
                    let v = s.index_list("a cache way or range, e.g. `0-3`")?;
                    set(&mut s.diags, &mut p.llc_ways, v, &kw);
                }
                "persistent" => {
                    let v = s.size()?;
                    set(&mut s.diags, &mut p.persistent, v, &kw);
                }
                "llc_code_ways" => {
                    let v = s.index_list("a cache way or range for code, e.g. `4-5`")?;
                    set(&mut s.diags, &mut p.llc_code_ways, v, &kw);
                }
                "memory_bandwidth" => {
                    let v = s.int("the share of the memory bandwidth in percent, e.g. `50 percent`")?;
                    if !s.at_ident("percent") {
                        return s.unexpected("`percent` after the share, e.g. `memory_bandwidth 50 percent`");
                    }
                    let unit = s.bump().span;
                    let v = Spanned::new(v.value, v.span.to(unit));
                    set(&mut s.diags, &mut p.memory_bandwidth, v, &kw);
                }
                "io" => {
                    let v = s.index_list("an I/O port or inclusive range, e.g. `0x2f8-0x2ff`")?;
                    p.io.extend(v.value);
                }
                "mmio" => {
                    let base = s.int("the MMIO base address")?;
                    if !s.at_ident("size") {
                        return s.unexpected("`size` after the MMIO base, e.g. `mmio 0xfe000000 size 4 KiB`");
                    }
                    s.bump();
                    let size = s.size()?;
                    let span = base.span.to(size.span);
                    p.mmio.push(Mmio { base, size, span });
                }
                "pci" => loop {
                    let a = s.pci_address()?;
                    p.pci.push(a);
                    if s.peek().kind != TokenKind::Comma {
                        break;
                    }
                    s.bump();
                },
                "restarts" => {
                    let count = s.int("the number of restarts allowed")?;
                    if !s.at_ident("per") {
                        return s.unexpected("`per` and the window the restarts are counted in");
                    }
                    s.bump();
                    let window_ns = s.duration()?;
                    let span = count.span.to(window_ns.span);
                    set(
                        &mut s.diags,
                        &mut p.restarts,
                        Spanned::new(RestartBudget { count, window_ns }, span),
                        &kw,
                    );
                }
                "privileges" => {
                    set(&mut s.diags, &mut privileges_kw, Spanned::new((), kw.span), &kw);
                    loop {
                        let v = s.choice("privilege", PRIVILEGES)?;
                        p.privileges.push(v);
                        if s.peek().kind != TokenKind::Comma {
                            break;
                        }
                        s.bump();
                    }
                }
                _ => {
                    let classes: Vec<(&str, EventClass)> =
                        EventClass::ALL.iter().map(|c| (c.name(), *c)).collect();
                    let actions: Vec<(&str, Action)> =
                        [Action::Log, Action::HaltPartition, Action::RestartPartition, Action::HaltSystem]
                            .iter()
                            .map(|a| (a.name(), *a))
                            .collect();
                    let event = s.choice("health event", &classes)?;
                    let action = s.choice("health action", &actions)?;
                    if let Some(first) = p.health.iter().find(|r| r.event.value == event.value) {
                        s.diags.push(
                            Diagnostic::new(
                                Code::DuplicateSetting,
                                event.span,
                                format!("`on {}` is given twice", event.value.name()),
                            )
                            .label("second time")
                            .related(first.event.span, "first given here")
                            .hint("keep one of them"),
                        );
                    } else {
                        p.health.push(HealthRule { event, action });
                    }
                }
            }
            Ok(())
        })?;
        p.broken = broken;
        Ok(p)
    }

    fn channel(&mut self) -> PResult<Channel> {
        self.bump();
        let name = self.ident("the channel's name")?;
        let mut c = Channel {
            name,
            kind: None,
            from: None,
            to: None,
            message: None,
            depth: None,
            linux: None,
            broken: false,
        };
        let title = format!("channel {}", c.name.value);
        let broken = self.block(CHANNEL_SETTINGS, "channel", &title, |s, kw| {
            match kw.value.as_str() {
                "kind" => {
                    let v = s.choice("channel kind", CHANNEL_KINDS)?;
                    set(&mut s.diags, &mut c.kind, v, &kw);
                }
                "from" => {
                    let v = s.ident("the writing partition's name")?;
                    set(&mut s.diags, &mut c.from, v, &kw);
                }
                "to" => {
                    let v = s.ident("the reading partition's name")?;
                    set(&mut s.diags, &mut c.to, v, &kw);
                }
                "message" => {
                    let v = s.size()?;
                    set(&mut s.diags, &mut c.message, v, &kw);
                }
                "depth" => {
                    let v = s.int("the number of messages the queue holds")?;
                    set(&mut s.diags, &mut c.depth, v, &kw);
                }
                _ => {
                    let v = s.choice("Linux view", LINUX_VIEWS)?;
                    set(&mut s.diags, &mut c.linux, v, &kw);
                }
            }
            Ok(())
        })?;
        c.broken = broken;
        Ok(c)
    }

    fn schedule(&mut self) -> PResult<Schedule> {
        let span = self.bump().span;
        if !(self.at_ident("cores") || self.at_ident("core")) {
            return self.unexpected("`cores` and the cores the schedule runs on, e.g. `schedule cores 1 {`");
        }
        self.bump();
        let cores = self.index_list("a core id or range")?;
        let title = format!("schedule cores {}", describe_index_list(&cores.value));
        let mut sched = Schedule { span, cores, major_frame: None, windows: Vec::new(), broken: false };
        let broken = self.block(SCHEDULE_SETTINGS, "schedule", &title, |s, kw| {
            if kw.value == "major_frame" {
                let v = s.duration()?;
                set(&mut s.diags, &mut sched.major_frame, v, &kw);
            } else {
                let partition = s.ident("the name of the partition that owns the window")?;
                let (start, end) = s.time_span()?;
                let span = kw.span.to(end.span);
                if end.value < start.value {
                    s.diags.push(
                        Diagnostic::new(
                            Code::BadRange,
                            start.span.to(end.span),
                            "window ends before it starts",
                        )
                        .label("end is before start")
                        .hint("write `window NAME START..END UNIT` with START below END"),
                    );
                    return Err(());
                }
                sched.windows.push(Window { partition, start, end, span });
            }
            Ok(())
        })?;
        sched.broken = broken;
        Ok(sched)
    }
}

/// An index list as written, e.g. `0, 2-3`.
fn describe_index_list(list: &IndexList) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|i| match i.value {
            (a, b) if a == b => a.to_string(),
            (a, b) => format!("{a}-{b}"),
        })
        .collect();
    items.join(", ")
}

/// Parses `[segment:]bus:device.function` (hex).
pub fn parse_pci(text: &str) -> Option<PciAddress> {
    let (rest, function) = text.rsplit_once('.')?;
    let parts: Vec<&str> = rest.split(':').collect();
    let (segment, bus, device) = match parts.as_slice() {
        [b, d] => ("0", *b, *d),
        [s, b, d] => (*s, *b, *d),
        _ => return None,
    };
    let hex = |s: &str, max_len: usize| {
        if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            None
        } else {
            u32::from_str_radix(s, 16).ok()
        }
    };
    Some(PciAddress {
        segment: hex(segment, 4)? as u16,
        bus: hex(bus, 2)? as u8,
        device: hex(device, 2)? as u8,
        function: hex(function, 1)? as u8,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(src: &str) -> File {
        let p = parse(src);
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
        p.file
    }

    fn codes(src: &str) -> Vec<Code> {
        parse(src).diagnostics.iter().map(|d| d.code).collect()
    }

    #[test]
    fn parses_a_partition() {
        let f = ok("partition a {\n kind rt\n image \"a.elf\"\n cores 0, 2-3\n memory 4 MiB at 0x4000_0000\n llc_ways 0-1\n io 0x2f8-0x2ff\n mmio 0xfe000000 size 4 KiB\n pci \"3b:00.1\"\n privileges query, restart\n on panic halt\n}\n");
        let Item::Partition(p) = &f.items[0] else { panic!() };
        assert_eq!(p.name.value, "a");
        assert_eq!(
            p.cores.as_ref().unwrap().value.iter().map(|c| c.value).collect::<Vec<_>>(),
            vec![(0, 0), (2, 3)]
        );
        assert_eq!(p.memory.as_ref().unwrap().value, 4 << 20);
        assert_eq!(p.pinned.as_ref().unwrap().value, 0x4000_0000);
        assert_eq!(p.io[0].value, (0x2f8, 0x2ff));
        assert_eq!(p.mmio[0].size.value, 4096);
        assert_eq!(p.pci[0].value, PciAddress { segment: 0, bus: 0x3b, device: 0, function: 1 });
        assert_eq!(p.privileges.len(), 2);
        assert_eq!(p.health[0].action.value, Action::HaltPartition);
    }

    #[test]
    fn every_privilege_word_parses_to_its_bit() {
        use hallows_abi::table::PRIV_ALL;
        let f = ok("partition a { privileges manage, query, halt_system, restart }");
        let Item::Partition(p) = &f.items[0] else { panic!() };
        let bits: Vec<u32> = p.privileges.iter().map(|v| v.value).collect();
        assert_eq!(bits, vec![PRIV_MANAGE, PRIV_QUERY, PRIV_HALT_SYSTEM, PRIV_RESTART]);
        // The list names every bit the table format defines, each once.
        assert_eq!(PRIVILEGES.iter().fold(0, |acc, (_, bit)| acc | bit), PRIV_ALL);
        assert_eq!(privilege_word(PRIV_MANAGE), Some("manage"));
        assert_eq!(privilege_word(1 << 31), None);
    }

    #[test]
    fn a_misspelt_privilege_suggests_manage() {
        let d = parse("partition a { privileges manag }").diagnostics;
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].code, Code::UnknownValue);
        assert!(
            d[0].hint.as_deref().is_some_and(|h| h.starts_with("did you mean `manage`?")),
            "{:?}",
            d[0].hint
        );
    }

    #[test]
    fn parses_schedules_with_unit_propagation() {
        let f = ok("schedule cores 1 { major_frame 10 ms; window a 0..4 ms; window b 5 ms..9500 us }");
        let Item::Schedule(s) = &f.items[0] else { panic!() };
        assert_eq!(s.major_frame.as_ref().unwrap().value, 10_000_000);
        assert_eq!((s.windows[0].start.value, s.windows[0].end.value), (0, 4_000_000));
        assert_eq!((s.windows[1].start.value, s.windows[1].end.value), (5_000_000, 9_500_000));
    }

    #[test]
    fn reports_every_error_and_recovers() {
        let src = "partition a {\n kind rtt\n memory 4 MB\n cors 1\n}\nschedule cores 1 { major_frame 10\n window a 4..2 ms }\nfoo\n";
        assert_eq!(
            codes(src),
            vec![
                Code::UnknownValue,
                Code::UnknownUnit,
                Code::UnknownSetting,
                Code::UnknownUnit,
                Code::BadRange,
                Code::UnknownSetting
            ]
        );
    }

    #[test]
    fn duplicate_settings_point_at_both() {
        let p = parse("partition a { \n memory 4 MiB\n memory 8 MiB\n}");
        assert_eq!(p.diagnostics[0].code, Code::DuplicateSetting);
        assert_eq!(p.diagnostics[0].related.len(), 1);
    }

    #[test]
    fn unclosed_block_is_reported() {
        assert_eq!(codes("partition a {\n kind rt\n"), vec![Code::UnclosedBlock]);
    }

    #[test]
    fn an_unclosed_block_ends_where_the_next_block_starts() {
        let src = "partition a {\n kind rt\n cores 0\n\npartition b {\n kind rt\n cores 1\n}\nchannel c { kind sampling\nschedule cores 1 {\n major_frame 1 ms\n}\n";
        let p = parse(src);
        let found: Vec<(Code, &str)> =
            p.diagnostics.iter().map(|d| (d.code, &src[d.span.start..d.span.end])).collect();
        assert_eq!(found, vec![(Code::UnclosedBlock, "{"), (Code::UnclosedBlock, "{")]);
        assert!(p.diagnostics[0].message.contains("`partition a`"));
        assert_eq!(&src[p.diagnostics[0].related[0].0.start..][..9], "partition");
        assert!(p.diagnostics[1].message.contains("`channel c`"));
        // Both partitions, the channel and the schedule are still parsed.
        assert_eq!(p.file.items.len(), 4);
        // A misspelt block keyword also ends the block; any other word before a `{` is an
        // unknown setting of the block, which goes on after it.
        let typo = parse("partition a { kind rt\npartiton b { kind rt }\n");
        let codes: Vec<Code> = typo.diagnostics.iter().map(|d| d.code).collect();
        assert_eq!(codes, vec![Code::UnclosedBlock, Code::UnknownSetting]);
        let nested = parse("partition a {\n devices { io 1 }\n kind rt\n}\n");
        let codes: Vec<Code> = nested.diagnostics.iter().map(|d| d.code).collect();
        assert_eq!(codes, vec![Code::UnknownSetting]);
        let Item::Partition(a) = &nested.file.items[0] else { panic!() };
        assert!(a.kind.is_some(), "the setting after the nested block belongs to `a`");
    }

    #[test]
    fn every_statement_has_its_syntax_and_a_working_example() {
        for (block, settings) in [
            ("platform", PLATFORM_SETTINGS),
            ("hypervisor", HYPERVISOR_SETTINGS),
            ("partition", PARTITION_SETTINGS),
            ("channel", CHANNEL_SETTINGS),
            ("schedule", SCHEDULE_SETTINGS),
        ] {
            for setting in settings {
                let (_, example) = statement_syntax(block, setting).expect("syntax listed");
                let header = statement_syntax("file", block).unwrap().1;
                let src = format!("{header}\n{example}\n}}\n");
                assert!(parse(&src).diagnostics.is_empty(), "{src}: {:?}", parse(&src).diagnostics);
            }
        }
    }

    #[test]
    fn parser_errors_have_hints() {
        for src in [
            "partition {",
            "partition a { memory }",
            "partition a { memory 4 MiB at }",
            "partition a { mmio 0x1000 4 KiB }",
            "partition a { kind rt rt }",
            "partition a { 5 }",
            "partition a { restarts 3 10 s }",
            "partition a { restarts per 10 s }",
            "schedule 1 { }",
            "schedule cores 1 { window a 0 4 ms }",
            "}",
            "42",
            "platform",
        ] {
            let p = parse(src);
            assert!(!p.diagnostics.is_empty(), "{src}");
            for d in &p.diagnostics {
                assert!(d.hint.as_deref().is_some_and(|h| !h.is_empty()), "{src}: {d:?}");
            }
        }
    }

    #[test]
    fn parses_restarts() {
        let f = ok("partition a { restarts 5 per 2500 ms }");
        let Item::Partition(p) = &f.items[0] else { panic!() };
        let r = &p.restarts.as_ref().unwrap().value;
        assert_eq!((r.count.value, r.window_ns.value), (5, 2_500_000_000));
        assert_eq!(codes("partition a { restarts 5 per 2 }"), vec![Code::UnknownUnit]);
        assert_eq!(
            codes("partition a { restarts 1 per 1 s; restarts 2 per 1 s }"),
            vec![Code::DuplicateSetting]
        );
    }

    #[test]
    fn pci_addresses() {
        assert_eq!(
            parse_pci("0001:3b:1f.7"),
            Some(PciAddress { segment: 1, bus: 0x3b, device: 0x1f, function: 7 })
        );
        assert_eq!(parse_pci("3b:00"), None);
        assert_eq!(parse_pci("3b:00.10"), None);
        assert_eq!(parse_pci("x:00.0"), None);
    }
}
