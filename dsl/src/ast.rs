//! The syntax tree of a Parseltongue file. Every value keeps its span so the checker can
//! point at it.

use crate::span::{Span, Spanned};

/// A number, or `auto` (taken from the firmware at boot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auto<T> {
    Auto,
    Value(T),
}

impl<T: Copy> Auto<T> {
    /// The value, or `None` for `auto`.
    pub fn value(self) -> Option<T> {
        match self {
            Self::Auto => None,
            Self::Value(v) => Some(v),
        }
    }
}

/// Inclusive ranges of indexes (`0, 2-5`): cores or cache ways.
pub type IndexList = Vec<Spanned<(u64, u64)>>;

/// A whole file.
#[derive(Clone, Debug, Default)]
pub struct File {
    pub items: Vec<Item>,
}

/// A top-level block.
#[derive(Clone, Debug)]
pub enum Item {
    Platform(Platform),
    Hypervisor(Hypervisor),
    Partition(Box<Partition>),
    Channel(Channel),
    Schedule(Schedule),
}

/// `platform { ... }`: the machine.
#[derive(Clone, Debug, Default)]
pub struct Platform {
    /// The `platform` keyword.
    pub span: Span,
    pub cores: Option<Spanned<Auto<u64>>>,
    pub ram: Option<Spanned<Auto<u64>>>,
    pub llc_ways: Option<Spanned<Auto<u64>>>,
    pub cat_min_ways: Option<Spanned<Auto<u64>>>,
    pub console: Option<Spanned<u64>>,
    pub require_cat: Option<Span>,
    /// `cdp`: use L3 code and data prioritisation (partitions may give `llc_code_ways`).
    pub cdp: Option<Span>,
}

/// `hypervisor { ... }`: what the hypervisor keeps for itself.
#[derive(Clone, Debug, Default)]
pub struct Hypervisor {
    pub span: Span,
    pub reserve: Option<Spanned<u64>>,
    /// One of `hallows_abi::table::LOG_*`.
    pub log_level: Option<Spanned<u8>>,
    /// `llc_ways FIRST-LAST`: the ways of class of service 0 (the hypervisor and every
    /// partition without ways); absent: the ways no partition uses, chosen at boot.
    pub llc_ways: Option<Spanned<IndexList>>,
}

/// Kind of partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Rt,
    Linux,
}

/// `mmio BASE size SIZE`.
#[derive(Clone, Debug)]
pub struct Mmio {
    pub base: Spanned<u64>,
    pub size: Spanned<u64>,
    pub span: Span,
}

/// A PCI function address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PciAddress {
    pub segment: u16,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl std::fmt::Display for PciAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04x}:{:02x}:{:02x}.{:x}", self.segment, self.bus, self.device, self.function)
    }
}

/// `on EVENT ACTION`.
#[derive(Clone, Debug)]
pub struct HealthRule {
    pub event: Spanned<hallows_abi::health::EventClass>,
    pub action: Spanned<hallows_abi::health::Action>,
}

/// `partition NAME { ... }`.
#[derive(Clone, Debug)]
pub struct Partition {
    pub name: Spanned<String>,
    pub kind: Option<Spanned<Kind>>,
    pub image: Option<Spanned<String>>,
    pub kernel: Option<Spanned<String>>,
    pub initramfs: Option<Spanned<String>>,
    pub cmdline: Option<Spanned<String>>,
    pub cores: Option<Spanned<IndexList>>,
    pub memory: Option<Spanned<u64>>,
    /// `memory SIZE at BASE`: the pinned host-physical base.
    pub pinned: Option<Spanned<u64>>,
    pub llc_ways: Option<Spanned<IndexList>>,
    /// `llc_code_ways FIRST-LAST` (with the platform's `cdp`): ways for instruction fetches.
    pub llc_code_ways: Option<Spanned<IndexList>>,
    /// `memory_bandwidth N percent` (MBA).
    pub memory_bandwidth: Option<Spanned<u64>>,
    /// Inclusive port ranges.
    pub io: Vec<Spanned<(u64, u64)>>,
    pub mmio: Vec<Mmio>,
    pub pci: Vec<Spanned<PciAddress>>,
    /// `PRIV_*` bits, each with its word's span.
    pub privileges: Vec<Spanned<u32>>,
    pub health: Vec<HealthRule>,
    /// `restarts N per DURATION`: the health monitor's restart budget.
    pub restarts: Option<Spanned<RestartBudget>>,
    /// `persistent SIZE` (RT): memory the partition keeps across its own restarts.
    pub persistent: Option<Spanned<u64>>,
    /// `args "TEXT"` (RT): text the partition reads from its boot info.
    pub args: Option<Spanned<String>>,
    /// The block had syntax errors: missing settings are not reported again.
    pub broken: bool,
}

/// `restarts COUNT per WINDOW`: more restarts than `count` within `window_ns` turn the
/// next restart into a halt.
#[derive(Clone, Debug)]
pub struct RestartBudget {
    pub count: Spanned<u64>,
    /// The window, in nanoseconds.
    pub window_ns: Spanned<u64>,
}

/// Sampling or queuing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelKind {
    Sampling,
    Queuing,
}

/// How a Linux endpoint sees a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinuxView {
    Shm,
    Tty,
}

/// `channel NAME { ... }`.
#[derive(Clone, Debug)]
pub struct Channel {
    pub name: Spanned<String>,
    pub kind: Option<Spanned<ChannelKind>>,
    pub from: Option<Spanned<String>>,
    pub to: Option<Spanned<String>>,
    pub message: Option<Spanned<u64>>,
    pub depth: Option<Spanned<u64>>,
    pub linux: Option<Spanned<LinuxView>>,
    /// The block had syntax errors: missing settings are not reported again.
    pub broken: bool,
}

/// `window PARTITION START..END`.
#[derive(Clone, Debug)]
pub struct Window {
    pub partition: Spanned<String>,
    pub start: Spanned<u64>,
    pub end: Spanned<u64>,
    /// The whole statement.
    pub span: Span,
}

/// `schedule cores LIST { ... }`.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// The `schedule` keyword.
    pub span: Span,
    pub cores: Spanned<IndexList>,
    pub major_frame: Option<Spanned<u64>>,
    pub windows: Vec<Window>,
    /// The block had syntax errors: missing settings are not reported again.
    pub broken: bool,
}
