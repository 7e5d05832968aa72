//! Diagnostics: stable codes, messages with source spans and hints, their order, and
//! their rendering (source excerpts for people, see [`crate::render`]; JSON for editors
//! and CI).

use std::fmt;

use serde::Serialize;

use crate::span::{LineIndex, Span};

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

macro_rules! codes {
    ($($name:ident = $id:literal, $sev:ident, $title:literal;)*) => {
        /// Every diagnostic Parseltongue can report. The id (`PT0101`) never changes meaning.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code { $($name,)* }

        impl Code {
            /// Every code, in id order.
            pub const ALL: &'static [Code] = &[$(Code::$name,)*];

            /// The stable id, e.g. `PT0302`.
            pub const fn id(self) -> &'static str {
                match self { $(Code::$name => $id,)* }
            }

            /// Error or warning.
            pub const fn severity(self) -> Severity {
                match self { $(Code::$name => Severity::$sev,)* }
            }

            /// One line saying what the rule is.
            pub const fn title(self) -> &'static str {
                match self { $(Code::$name => $title,)* }
            }
        }
    };
}

codes! {
    // Syntax.
    BadCharacter = "PT0101", Error, "a character that cannot start any token";
    BadString = "PT0102", Error, "an unterminated string or an unknown escape";
    BadNumber = "PT0103", Error, "a malformed or too large number";
    UnexpectedToken = "PT0104", Error, "the grammar expected something else here";
    UnknownUnit = "PT0105", Error, "a missing or unknown unit";
    UnknownSetting = "PT0106", Error, "a setting or block this place does not have";
    UnknownValue = "PT0107", Error, "a value outside the allowed words (kind, log level, event, action, privilege...)";
    DuplicateSetting = "PT0108", Error, "a setting given twice in one block";
    MissingSetting = "PT0109", Error, "a required setting is missing";
    BadRange = "PT0110", Error, "a range whose end is before its start";
    DuplicateBlock = "PT0111", Error, "a second `platform` or `hypervisor` block";
    BadPciAddress = "PT0112", Error, "a PCI address that is not `[segment:]bus:device.function`";
    ValueOutOfRange = "PT0113", Error, "a number too large for its field";
    UnclosedBlock = "PT0114", Error, "a block whose closing `}` is missing";
    NotUtf8 = "PT0115", Error, "a file that is not UTF-8 text";
    // Names.
    UnknownName = "PT0201", Error, "a partition name that is not declared";
    DuplicatePartition = "PT0202", Error, "two partitions with the same name";
    DuplicateChannel = "PT0203", Error, "two channels with the same name";
    NoPartitions = "PT0204", Error, "a table without any partition";
    NameTooLong = "PT0205", Error, "a partition or channel name longer than the 32 bytes the boot info holds";
    // Cores and schedules.
    CoreOutOfRange = "PT0301", Error, "a core the platform (or the table format) does not have";
    CoreShared = "PT0302", Error, "a core given to two partitions outside a schedule";
    ScheduleOverlap = "PT0303", Error, "a core covered by two schedules";
    WindowOutsideFrame = "PT0304", Error, "a window that ends after the major frame";
    WindowOverlap = "PT0305", Error, "two windows of one schedule that overlap";
    WindowWrongCore = "PT0306", Error, "a window for a partition that does not run on the schedule's cores";
    PartitionStarved = "PT0307", Error, "a partition on a scheduled core that never gets a window";
    ZeroFrame = "PT0308", Error, "a major frame of zero length";
    ZeroWindow = "PT0309", Error, "a window of zero length";
    NoWindows = "PT0310", Error, "a schedule without windows";
    TooManyWindows = "PT0311", Error, "a schedule with more windows than the table format holds";
    LinuxOnScheduledCore = "PT0312", Error, "a Linux partition on a scheduled core (Linux runs on dedicated cores only)";
    // Memory.
    RamMisaligned = "PT0401", Error, "partition memory that is not a multiple of 2 MiB";
    RamTooSmall = "PT0402", Error, "a real-time partition with less than 2 MiB";
    RamTooLarge = "PT0403", Error, "a real-time partition with more than 3 GiB (its RAM must end below the channel window), or a Linux partition with more than 2^48 bytes";
    PinnedMisaligned = "PT0404", Error, "a pinned base that is not 2 MiB aligned, or pinned RAM that wraps around or ends past 2^52";
    PinnedOverlap = "PT0405", Error, "two pinned memory ranges that overlap";
    RamExhausted = "PT0406", Error, "partitions, channels and the hypervisor need more RAM than the platform has";
    ReserveMisaligned = "PT0407", Error, "a hypervisor reservation that is zero or not a multiple of 2 MiB";
    PinnedOverlapsMmio = "PT0408", Error, "pinned partition memory that overlaps a passed-through MMIO range";
    StacksLeaveNoRoom = "PT0409", Error, "a real-time partition whose vCPU stacks leave less than 256 KiB for its image and heap";
    PersistentBad = "PT0410", Error, "a persistent region that is zero, not a multiple of 4 KiB, or larger than 64 MiB";
    // Cache.
    WaysOutOfRange = "PT0501", Error, "cache ways the platform's LLC does not have";
    WaysTooNarrow = "PT0502", Error, "fewer cache ways than the platform's minimum CAT mask";
    WaysOverlap = "PT0503", Error, "cache ways shared by partitions that can run at the same time";
    WaysNotContiguous = "PT0504", Error, "cache ways that are not one contiguous block (CAT masks must be)";
    CodeWaysWithoutCdp = "PT0505", Error, "`llc_code_ways` without the platform's `cdp`, or without `llc_ways` for the data";
    BandwidthOutOfRange = "PT0506", Error, "a memory bandwidth share outside 1-100 percent";
    // Devices.
    IoOverlap = "PT0601", Error, "an I/O port range given twice";
    MmioOverlap = "PT0602", Error, "an MMIO range given twice";
    PciDuplicate = "PT0603", Error, "a PCI function given twice";
    IoBad = "PT0604", Error, "an I/O port range outside 0x0-0xffff";
    MmioBad = "PT0605", Error, "an MMIO range that is empty, not page aligned or wraps around";
    PciBad = "PT0606", Error, "a PCI device above 31 or function above 7";
    IoConsole = "PT0607", Error, "an I/O port range holding any of the hypervisor's console UART registers";
    IoHypervisor = "PT0608", Error, "an I/O port range holding ports the hypervisor drives (PICs, PCI configuration, power-off)";
    MmioUnmappable = "PT0609", Error, "an MMIO range inside the partition's own RAM or channel window, or beyond 2^48";
    PciUnsupported = "PT0610", Error, "a PCI function to pass through (not supported by this hypervisor version)";
    MmioHypervisor = "PT0611", Error, "an MMIO range holding the hypervisor's own devices (local APICs and MSI range, I/O APIC)";
    // Channels.
    ChannelEndpointMissing = "PT0701", Error, "a channel without a writer (`from`) or reader (`to`)";
    ChannelZeroSize = "PT0702", Error, "a channel whose message size or depth is zero";
    ChannelSelfLoop = "PT0703", Error, "a channel from a partition to itself";
    ChannelLinuxView = "PT0704", Error, "a `linux` view on a channel without a Linux endpoint";
    ChannelWindowFull = "PT0705", Error, "channels that need more than the 256 MiB channel window";
    LinuxBridgeUnmappable = "PT0706", Error, "a Linux partition whose channels it cannot see: its RAM reaches its bridge window (above 3.5 GiB), or their PCI BARs do not fit that 256 MiB window";
    TooManyChannels = "PT0707", Error, "a partition with more than 16 channels (its boot info describes 16)";
    ChannelLinuxTty = "PT0708", Error, "a `linux tty` channel view (removed from the language: use `linux shm` and rhlink)";
    // Partition kinds.
    LinuxNoKernel = "PT0801", Error, "a Linux partition without a kernel";
    LinuxTooLittleRam = "PT0802", Error, "a Linux partition with less than 64 MiB";
    RtNoImage = "PT0803", Error, "a real-time partition without an image";
    WrongKindSetting = "PT0804", Error, "a setting that does not apply to the partition's kind";
    LinuxCmdlineBad = "PT0805", Error, "a Linux command line too long for the hypervisor's suffix, or holding control characters";
    FileNameBad = "PT0806", Error, "an image, kernel or initramfs name that is not a UEFI file name inside `\\rusthallows\\`";
    RestartBudgetBad = "PT0807", Error, "a restart budget outside 1-16 restarts per 1 ms to 1 hour";
    ArgsBad = "PT0808", Error, "partition arguments longer than 512 bytes or holding characters other than printable ASCII";
    // Platform.
    PlatformBad = "PT0901", Error, "a platform value that cannot be right (zero cores, minimum CAT width above the ways, a console UART past port 0xffff)";
    // Warnings.
    ChannelRedundant = "PT1001", Warning, "an unused channel: same writer, reader and kind as an earlier one";
    WindowShort = "PT1002", Warning, "a window shorter than 50 us (switch overhead dominates)";
    SamplingDepth = "PT1003", Warning, "a depth on a sampling channel (it always holds one message)";
    PartitionIdle = "PT1004", Warning, "a partition that gets less than 1% of its core's major frame";
    SeveralManagers = "PT1005", Warning, "more than one RT partition with `privileges manage` (two operators can undo each other's actions)";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// One problem found in a source file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: Code,
    pub message: String,
    /// Where the problem is, and what to say there.
    pub span: Span,
    pub label: String,
    /// Other places that explain it ("first defined here").
    pub related: Vec<(Span, String)>,
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A diagnostic at `span` with `message`; the label defaults to the code's title.
    pub fn new(code: Code, span: Span, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), span, label: String::new(), related: Vec::new(), hint: None }
    }

    /// Sets the label printed under the span.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// Adds a secondary span.
    pub fn related(mut self, span: Span, label: impl Into<String>) -> Self {
        self.related.push((span, label.into()));
        self
    }

    /// Sets the hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn severity(&self) -> Severity {
        self.code.severity()
    }

    pub fn is_error(&self) -> bool {
        self.severity() == Severity::Error
    }
}

/// Sorts diagnostics by position, then code, so output is stable.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| (a.span.start, a.code, &a.message).cmp(&(b.span.start, b.code, &b.message)));
}

/// Where a problem comes from; a cause is reported before its consequences.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    /// The text could not be read as the language (lexer, parser).
    Syntax,
    /// Names that are undeclared or declared twice (PT02xx): every rule that follows a
    /// name is judged on a guess until these are fixed.
    Names,
    /// Every other whole-system rule.
    Rules,
    /// Warnings, after every error.
    Warnings,
}

fn stage(d: &Diagnostic, syntax: bool) -> Stage {
    match d.severity() {
        Severity::Warning => Stage::Warnings,
        Severity::Error if syntax => Stage::Syntax,
        Severity::Error if d.code.id().starts_with("PT02") => Stage::Names,
        Severity::Error => Stage::Rules,
    }
}

/// Orders the diagnostics of one file by cause: syntax errors first, then name errors,
/// then the other rules' errors, then warnings; by position within each. An error that
/// follows from another (a partition starved because its window's name is misspelt) so
/// comes after the error that causes it, wherever the two are in the file.
pub fn order_by_cause(syntax: Vec<Diagnostic>, checks: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let mut staged: Vec<(Stage, Diagnostic)> = syntax
        .into_iter()
        .map(|d| (stage(&d, true), d))
        .chain(checks.into_iter().map(|d| (stage(&d, false), d)))
        .collect();
    staged.sort_by(|(sa, a), (sb, b)| {
        (sa, a.span.start, a.code, &a.message).cmp(&(sb, b.span.start, b.code, &b.message))
    });
    staged.into_iter().map(|(_, d)| d).collect()
}

/// Levenshtein distance, for did-you-mean suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// The closest of `candidates` to `word`, if close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

/// Most diagnostics [`Report::render`] shows; the rest are counted (JSON carries all).
pub const RENDER_LIMIT: usize = 200;

/// A source file and the diagnostics about it, ready to render.
pub struct Report<'a> {
    pub file_name: &'a str,
    pub source: &'a str,
    pub diagnostics: &'a [Diagnostic],
}

impl Report<'_> {
    /// Renders the diagnostics for a person: each with its source excerpt, at most
    /// [`RENDER_LIMIT`] of them, then the summary line. `color` adds ANSI colours; `width`
    /// is the widest source excerpt in columns (longer lines are elided around the span).
    pub fn render(&self, color: bool, width: usize) -> String {
        let index = LineIndex::new(self.source);
        let style = crate::render::Style { color, width, limit: RENDER_LIMIT };
        let mut out = crate::render::render(self.file_name, self.source, &index, self.diagnostics, style);
        out.push_str(&self.summary());
        out
    }

    /// "2 errors, 1 warning" (or "ok").
    pub fn summary(&self) -> String {
        let errors = self.diagnostics.iter().filter(|d| d.is_error()).count();
        let warnings = self.diagnostics.len() - errors;
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        match (errors, warnings) {
            (0, 0) => format!("{}: ok\n", self.file_name),
            _ => {
                format!("{}: {}, {}\n", self.file_name, plural(errors, "error"), plural(warnings, "warning"))
            }
        }
    }

    /// Renders the diagnostics as a JSON document for editors and CI.
    pub fn to_json(&self) -> String {
        let index = LineIndex::new(self.source);
        let pos = |offset: usize| index.position(self.source, offset);
        let items: Vec<JsonDiagnostic<'_>> = self
            .diagnostics
            .iter()
            .map(|d| {
                let (line, column) = pos(d.span.start);
                let (end_line, end_column) = pos(d.span.end);
                JsonDiagnostic {
                    code: d.code.id(),
                    severity: d.severity(),
                    message: &d.message,
                    file: self.file_name,
                    line,
                    column,
                    end_line,
                    end_column,
                    offset: d.span.start,
                    length: d.span.len(),
                    label: &d.label,
                    hint: d.hint.as_deref(),
                    related: d
                        .related
                        .iter()
                        .map(|(s, l)| {
                            let (line, column) = pos(s.start);
                            JsonRelated { line, column, offset: s.start, length: s.len(), label: l }
                        })
                        .collect(),
                }
            })
            .collect();
        let errors = self.diagnostics.iter().filter(|d| d.is_error()).count();
        let doc = JsonDocument {
            file: self.file_name,
            errors,
            warnings: self.diagnostics.len() - errors,
            diagnostics: items,
        };
        serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".to_string())
    }
}

#[derive(Serialize)]
struct JsonDocument<'a> {
    file: &'a str,
    errors: usize,
    warnings: usize,
    diagnostics: Vec<JsonDiagnostic<'a>>,
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    code: &'static str,
    severity: Severity,
    message: &'a str,
    file: &'a str,
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
    offset: usize,
    length: usize,
    label: &'a str,
    hint: Option<&'a str>,
    related: Vec<JsonRelated<'a>>,
}

#[derive(Serialize)]
struct JsonRelated<'a> {
    line: usize,
    column: usize,
    offset: usize,
    length: usize,
    label: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_ids_are_unique_and_well_formed() {
        let mut ids: Vec<&str> = Code::ALL.iter().map(|c| c.id()).collect();
        assert!(ids.iter().all(|id| id.len() == 6 && id.starts_with("PT")));
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), Code::ALL.len());
    }

    #[test]
    fn suggestions_find_typos_only() {
        assert_eq!(did_you_mean("senor", ["sensor", "logger"]), Some("sensor"));
        assert_eq!(did_you_mean("zzz", ["sensor", "logger"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn causes_come_before_consequences() {
        let at = |code, start| Diagnostic::new(code, Span::new(start, start + 1), "x");
        let syntax = vec![at(Code::UnknownUnit, 50), at(Code::BadCharacter, 10)];
        let checks = vec![
            at(Code::SamplingDepth, 0),
            at(Code::PartitionStarved, 5),
            at(Code::UnknownName, 90),
            at(Code::CoreShared, 1),
        ];
        let order: Vec<(Code, usize)> =
            order_by_cause(syntax, checks).iter().map(|d| (d.code, d.span.start)).collect();
        assert_eq!(
            order,
            vec![
                (Code::BadCharacter, 10),
                (Code::UnknownUnit, 50),
                (Code::UnknownName, 90),
                (Code::CoreShared, 1),
                (Code::PartitionStarved, 5),
                (Code::SamplingDepth, 0),
            ]
        );
    }

    #[test]
    fn json_has_positions() {
        let src = "a\nbcd";
        let d = [Diagnostic::new(Code::UnknownName, Span::new(3, 5), "no")];
        let json = Report { file_name: "x.pt", source: src, diagnostics: &d }.to_json();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["diagnostics"][0]["line"], 2);
        assert_eq!(v["diagnostics"][0]["column"], 2);
        assert_eq!(v["diagnostics"][0]["code"], "PT0201");
        assert_eq!(v["errors"], 1);
    }
}
