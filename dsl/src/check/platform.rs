//! The `platform` and `hypervisor` blocks.

use hallows_abi::table::{LOG_INFO, MAX_CORES};

use crate::ast::*;
use crate::diagnostics::{Code, Diagnostic};
use crate::span::{Span, Spanned};

/// Default hypervisor reservation when the file gives none.
pub const DEFAULT_RESERVE: u64 = 32 << 20;
/// Default console port (COM1), which `console 0` keeps too.
pub const DEFAULT_CONSOLE: u16 = hallows_abi::limits::DEFAULT_CONSOLE_PORT;

/// What the file says about the machine, with `auto` as `None`.
#[derive(Clone, Debug, Default)]
pub struct PlatformFacts {
    pub cores: Option<u32>,
    pub cores_span: Option<Span>,
    pub ram: Option<u64>,
    pub ram_span: Option<Span>,
    pub llc_ways: Option<u8>,
    pub llc_span: Option<Span>,
    pub cat_min_ways: Option<u8>,
    pub console: u16,
    pub require_cat: bool,
    /// `cdp`: L3 code and data prioritisation (separate code ways).
    pub cdp: bool,
    /// The hypervisor block's `llc_ways`: class of service 0's ways.
    pub hv_llc_ways: Option<Spanned<IndexList>>,
    pub reserve: u64,
    pub log_level: u8,
}

fn duplicate(diags: &mut Vec<Diagnostic>, what: &str, first: Span, second: Span) {
    diags.push(
        Diagnostic::new(Code::DuplicateBlock, second, format!("a second `{what}` block"))
            .label("second block")
            .related(first, "first block")
            .hint(format!("merge the settings into one `{what}` block")),
    );
}

fn out_of_range(diags: &mut Vec<Diagnostic>, span: Span, what: &str, max: u64) {
    diags.push(
        Diagnostic::new(Code::ValueOutOfRange, span, format!("{what} is too large"))
            .label(format!("at most {max}"))
            .hint(format!("the table format holds {what} up to {max}")),
    );
}

impl PlatformFacts {
    /// Reads the platform and hypervisor blocks (first of each; more are errors).
    pub fn from_file(file: &File, diags: &mut Vec<Diagnostic>) -> Self {
        let mut facts = Self {
            console: DEFAULT_CONSOLE,
            reserve: DEFAULT_RESERVE,
            log_level: LOG_INFO,
            ..Self::default()
        };
        let mut platform: Option<&Platform> = None;
        let mut hypervisor: Option<&Hypervisor> = None;
        for item in &file.items {
            match item {
                Item::Platform(p) => match platform {
                    Some(first) => duplicate(diags, "platform", first.span, p.span),
                    None => platform = Some(p),
                },
                Item::Hypervisor(h) => match hypervisor {
                    Some(first) => duplicate(diags, "hypervisor", first.span, h.span),
                    None => hypervisor = Some(h),
                },
                _ => {}
            }
        }
        if let Some(p) = platform {
            facts.read_platform(p, diags);
        }
        if let Some(h) = hypervisor {
            if let Some(r) = &h.reserve {
                facts.reserve = r.value;
                if r.value == 0 || !r.value.is_multiple_of(hallows_abi::layout::LARGE_PAGE_SIZE) {
                    diags.push(
                        Diagnostic::new(
                            Code::ReserveMisaligned,
                            r.span,
                            "the hypervisor reservation must be a non-zero multiple of 2 MiB",
                        )
                        .label("not a multiple of 2 MiB")
                        .hint("the hypervisor maps its memory with 2 MiB pages; 32 MiB is a good start"),
                    );
                }
            }
            if let Some(l) = &h.log_level {
                facts.log_level = l.value;
            }
            facts.hv_llc_ways = h.llc_ways.clone();
        }
        facts
    }

    fn read_platform(&mut self, p: &Platform, diags: &mut Vec<Diagnostic>) {
        if let Some(c) = &p.cores {
            self.cores_span = Some(c.span);
            match c.value {
                Auto::Value(0) => diags.push(
                    Diagnostic::new(Code::PlatformBad, c.span, "a platform with zero cores")
                        .label("zero")
                        .hint("give the number of logical processors, or `auto`"),
                ),
                Auto::Value(n) if n > MAX_CORES as u64 => {
                    out_of_range(diags, c.span, "the number of cores", MAX_CORES as u64)
                }
                Auto::Value(n) => self.cores = Some(n as u32),
                Auto::Auto => {}
            }
        }
        if let Some(r) = &p.ram {
            self.ram_span = Some(r.span);
            self.ram = r.value.value();
        }
        if let Some(w) = &p.llc_ways {
            self.llc_span = Some(w.span);
            match w.value {
                Auto::Value(0) => diags.push(
                    Diagnostic::new(Code::PlatformBad, w.span, "an LLC with zero ways")
                        .label("zero")
                        .hint("give the LLC's ways (CPUID leaf 4), or `auto`"),
                ),
                Auto::Value(n) if n > 255 => out_of_range(diags, w.span, "the number of LLC ways", 255),
                Auto::Value(n) => self.llc_ways = Some(n as u8),
                Auto::Auto => {}
            }
        }
        if let Some(m) = &p.cat_min_ways {
            match m.value {
                Auto::Value(n) if n > 255 => out_of_range(diags, m.span, "the minimum CAT width", 255),
                Auto::Value(0) => diags.push(
                    Diagnostic::new(Code::PlatformBad, m.span, "a minimum CAT mask width of zero")
                        .label("zero")
                        .hint(
                            "CAT masks hold at least one way: write 1 (or 2 on CPUs that need it), or `auto`",
                        ),
                ),
                Auto::Value(n) => {
                    if let (Some(ways), Some(span)) = (self.llc_ways, self.llc_span) {
                        if n > ways as u64 {
                            diags.push(
                                Diagnostic::new(
                                    Code::PlatformBad,
                                    m.span,
                                    "the minimum CAT width exceeds the LLC's ways",
                                )
                                .label(format!("{n} ways minimum"))
                                .related(span, format!("only {ways} ways"))
                                .hint("check CPUID leaf 0x10 for the real values"),
                            );
                        }
                    }
                    self.cat_min_ways = Some(n as u8);
                }
                Auto::Auto => {}
            }
        }
        if let Some(c) = &p.console {
            match u16::try_from(c.value) {
                Ok(port) if !hallows_abi::limits::console_port_fits(port) => diags.push(
                    Diagnostic::new(
                        Code::PlatformBad,
                        c.span,
                        format!("the console UART at {port:#x} would reach past port 0xffff"),
                    )
                    .label("its 8 registers do not fit")
                    .hint("a 16550 UART takes 8 ports from its base: COM1 is 0x3f8, COM2 0x2f8"),
                ),
                Ok(port) => self.console = port,
                Err(_) => out_of_range(diags, c.span, "the console port", 0xffff),
            }
        }
        self.require_cat = p.require_cat.is_some();
        self.cdp = p.cdp.is_some();
    }
}
