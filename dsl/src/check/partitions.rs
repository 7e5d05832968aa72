//! Rules about one partition at a time, plus unique names.

use std::collections::HashMap;

use hallows_abi::layout::{LARGE_PAGE_SIZE, RT_MAX_RAM, RT_MIN_RAM};
use hallows_abi::limits::{self, LINUX_MIN_RAM, NAME_MAX};
use hallows_abi::table::{MAX_CORES, PRIV_MANAGE};

use super::{System, FILE_START};
use crate::ast::*;
use crate::diagnostics::{Code, Diagnostic};
use crate::span::{Span, Spanned};

pub fn check(sys: &System<'_>, diags: &mut Vec<Diagnostic>) {
    if sys.partitions.is_empty() {
        diags.push(
            Diagnostic::new(Code::NoPartitions, FILE_START, "the table has no partitions")
                .label("nothing to run")
                .hint("add at least one `partition NAME { ... }` block"),
        );
    }
    let mut seen: HashMap<&str, Span> = HashMap::with_capacity(sys.partitions.len());
    for (pi, p) in sys.partitions.iter().enumerate() {
        name_fits(&p.name, "partition", diags);
        if let Some(first) = seen.get(p.name.value.as_str()) {
            diags.push(
                Diagnostic::new(
                    Code::DuplicatePartition,
                    p.name.span,
                    format!("partition `{}` is declared twice", p.name.value),
                )
                .label("second declaration")
                .related(*first, "first declared here")
                .hint("rename one of them; names identify partitions in schedules, channels and logs"),
            );
        } else {
            seen.insert(&p.name.value, p.name.span);
        }
        check_one(sys, p, diags);
        check_files(p, diags);
        check_stacks(sys, pi, p, diags);
        check_restarts(p, diags);
        check_keep(p, diags);
    }
    check_managers(sys, diags);
}

/// `privileges manage` makes a partition an operator: it halts, starts and restarts the
/// others. The hybrid shape is Linux as the operator's console plus at most one RT
/// watchdog that acts when Linux is down (or restarts Linux itself). Two RT operators act
/// on the same partitions without seeing each other's requests (one halts a partition,
/// the other starts it again), so a second one is worth a warning, though the hypervisor
/// serves both.
fn check_managers(sys: &System<'_>, diags: &mut Vec<Diagnostic>) {
    let managers = sys.partitions.iter().filter_map(|p| {
        if matches!(p.kind.as_ref().map(|k| k.value), Some(Kind::Linux)) {
            return None;
        }
        let word = p.privileges.iter().find(|v| v.value == PRIV_MANAGE)?;
        Some((p, word.span))
    });
    let mut first: Option<(&Partition, Span)> = None;
    for (p, span) in managers {
        let Some((first_p, first_span)) = first else {
            first = Some((p, span));
            continue;
        };
        diags.push(
            Diagnostic::new(
                Code::SeveralManagers,
                span,
                format!(
                    "`{}` is a second RT partition with `manage`; `{}` has it too",
                    p.name.value, first_p.name.value
                ),
            )
            .label("a second operator")
            .related(first_span, "the first operator")
            .hint(format!(
                "two RT operators can undo each other's actions; grant manage to one RT partition \
                 (and Linux): keep it on `{}` and remove it here (`parseltongue explain manage` \
                 says what it allows)",
                first_p.name.value
            )),
        );
    }
}

/// `persistent SIZE` and `args "TEXT"`: whole pages up to the window's size, and text the
/// boot info can hold (`hallows_abi::limits`, which the re-validator and boot path call
/// too). Whether they belong to the partition's kind is [`check_one`]'s business.
fn check_keep(p: &Partition, diags: &mut Vec<Diagnostic>) {
    if let Some(size) = &p.persistent {
        if let Err(e) = limits::check_persistent(size.value) {
            let max_mib = limits::PERSISTENT_MAX_BYTES >> 20;
            let (label, hint) = match e {
                limits::PersistentError::Empty => (
                    "zero bytes".to_string(),
                    "leave `persistent` out when the partition keeps nothing across restarts".to_string(),
                ),
                limits::PersistentError::Misaligned => (
                    "not a multiple of 4 KiB".to_string(),
                    format!(
                        "the region is mapped in whole pages; try `persistent {} KiB`",
                        size.value.div_ceil(4096) * 4
                    ),
                ),
                limits::PersistentError::TooLarge { .. } => (
                    format!("more than {max_mib} MiB"),
                    format!("the persistent window holds {max_mib} MiB; keep the rest in a file on the Linux side or shrink it"),
                ),
            };
            diags.push(
                Diagnostic::new(
                    Code::PersistentBad,
                    size.span,
                    format!("`{}`'s persistent region cannot be mapped: {e}", p.name.value),
                )
                .label(label)
                .hint(hint),
            );
        }
    }
    if let Some(args) = &p.args {
        if let Err(e) = limits::check_args(&args.value) {
            let (label, hint) = match e {
                limits::ArgsError::TooLong { len, max } => (
                    format!("{len} bytes, at most {max}"),
                    format!("the boot info holds {max} bytes of arguments: shorten them"),
                ),
                limits::ArgsError::NotPrintable { offset } => (
                    format!("byte {offset} is not printable ASCII"),
                    "use printable ASCII only (spaces included); no tabs, newlines or non-ASCII characters"
                        .to_string(),
                ),
            };
            diags.push(
                Diagnostic::new(
                    Code::ArgsBad,
                    args.span,
                    format!("`{}`'s arguments cannot be given to it in its boot info", p.name.value),
                )
                .label(label)
                .hint(hint),
            );
        }
    }
}

/// `restarts COUNT per WINDOW` must fit the health monitor (it remembers at most
/// `MAX_RESTART_LIMIT` restart times) and the table's millisecond field.
fn check_restarts(p: &Partition, diags: &mut Vec<Diagnostic>) {
    use hallows_abi::table::{
        MAX_RESTART_LIMIT, MAX_RESTART_WINDOW_MS, MIN_RESTART_LIMIT, MIN_RESTART_WINDOW_MS,
    };
    const NS_PER_MS: u64 = 1_000_000;
    let Some(budget) = &p.restarts else { return };
    let count = &budget.value.count;
    if !(u64::from(MIN_RESTART_LIMIT)..=u64::from(MAX_RESTART_LIMIT)).contains(&count.value) {
        diags.push(
            Diagnostic::new(
                Code::RestartBudgetBad,
                count.span,
                format!("`restarts {}` is outside {MIN_RESTART_LIMIT}..={MAX_RESTART_LIMIT}", count.value),
            )
            .label(format!("allow {MIN_RESTART_LIMIT} to {MAX_RESTART_LIMIT} restarts"))
            .hint(format!(
                "the health monitor counts up to {MAX_RESTART_LIMIT} restarts per window; to never restart, use `on EVENT halt`"
            )),
        );
    }
    let window = &budget.value.window_ns;
    let (min, max) =
        (u64::from(MIN_RESTART_WINDOW_MS) * NS_PER_MS, u64::from(MAX_RESTART_WINDOW_MS) * NS_PER_MS);
    if !(min..=max).contains(&window.value) || !window.value.is_multiple_of(NS_PER_MS) {
        let why = if !window.value.is_multiple_of(NS_PER_MS) && (min..=max).contains(&window.value) {
            "not a whole number of milliseconds"
        } else {
            "outside 1 ms to 1 hour"
        };
        diags.push(
            Diagnostic::new(Code::RestartBudgetBad, window.span, format!("the restart window is {why}"))
                .label("between 1 ms and 1 hour, in whole milliseconds")
                .hint("write e.g. `restarts 3 per 10 s` or `restarts 5 per 500 ms`"),
        );
    }
}

/// A partition or channel name must fit the boot info's name field: the SDK finds its
/// channels by name, and a cut name would never match.
pub fn name_fits(name: &Spanned<String>, what: &str, diags: &mut Vec<Diagnostic>) {
    if let Err(limits::NameError::TooLong { len }) = limits::check_name(&name.value) {
        diags.push(
            Diagnostic::new(
                Code::NameTooLong,
                name.span,
                format!("this {what} name has {len} bytes; the boot info holds {NAME_MAX}"),
            )
            .label(format!("longer than {NAME_MAX} bytes"))
            .hint(format!("shorten it to {NAME_MAX} bytes at most: partitions learn their channels by name from the boot info")),
        );
    }
}

/// Image, kernel and initramfs names open as `\rusthallows\NAME`; a Linux command line
/// fits beside the hypervisor's suffix.
fn check_files(p: &Partition, diags: &mut Vec<Diagnostic>) {
    for (setting, value) in [("image", &p.image), ("kernel", &p.kernel), ("initramfs", &p.initramfs)] {
        let Some(v) = value else { continue };
        if v.value.is_empty() {
            continue; // reported as a missing image or kernel, or an empty initramfs means none
        }
        if let Err(e) = limits::check_file_name(&v.value) {
            diags.push(
                Diagnostic::new(Code::FileNameBad, v.span, format!("`{setting}` cannot be opened on the ESP: {e}"))
                    .label("not a file inside \\rusthallows\\")
                    .hint("give a relative FAT file name such as \"hello.elf\" or \"linux/vmlinux\": no `..`, no leading `/`, none of \"*:<>?|"),
            );
        }
    }
    if let Some(c) = &p.cmdline {
        if let Err(e) = limits::check_linux_cmdline(&c.value) {
            let (label, hint) = match e {
                limits::CmdlineError::TooLong { len, max } => (
                    format!("{len} bytes, at most {max}"),
                    format!(
                        "the kernel takes {} bytes and the hypervisor appends `{}`: shorten the command line",
                        limits::LINUX_CMDLINE_MAX,
                        limits::LINUX_CMDLINE_SUFFIX.trim_start()
                    ),
                ),
                limits::CmdlineError::ControlCharacter { offset } => (
                    format!("control character at byte {offset}"),
                    "separate kernel parameters with spaces; tabs, NULs and other control characters are refused".to_string(),
                ),
            };
            diags.push(
                Diagnostic::new(
                    Code::LinuxCmdlineBad,
                    c.span,
                    "this Linux command line cannot be passed to the kernel",
                )
                .label(label)
                .hint(hint),
            );
        }
    }
}

/// An RT partition's vCPU stacks sit at the top of its RAM; the image and heap need room
/// below them.
fn check_stacks(sys: &System<'_>, pi: usize, p: &Partition, diags: &mut Vec<Diagnostic>) {
    let (Some(kind), Some(m)) = (&p.kind, &p.memory) else { return };
    let vcpus = sys.cores[pi].iter().count() as u32;
    let ram = m.value;
    let sane = ram.is_multiple_of(LARGE_PAGE_SIZE) && (RT_MIN_RAM..=RT_MAX_RAM).contains(&ram);
    if kind.value != Kind::Rt || vcpus == 0 || !sane {
        return;
    }
    if limits::rt_image_room(ram, vcpus) < limits::RT_MIN_IMAGE_ROOM {
        let needed = limits::rt_min_ram_for(vcpus);
        diags.push(
            Diagnostic::new(
                Code::StacksLeaveNoRoom,
                m.span,
                format!("`{}`'s {vcpus} vCPU stacks leave no room for its image", p.name.value),
            )
            .label(format!("{vcpus} x 64 KiB stacks above the image at 1 MiB"))
            .hint(format!(
                "give it at least `memory {} MiB` (the image and heap need {} KiB at least), or fewer cores",
                needed >> 20,
                limits::RT_MIN_IMAGE_ROOM >> 10
            )),
        );
    }
}

fn missing(diags: &mut Vec<Diagnostic>, p: &Partition, setting: &str, example: &str) {
    if p.broken {
        return;
    }
    diags.push(
        Diagnostic::new(
            Code::MissingSetting,
            p.name.span,
            format!("partition `{}` has no `{setting}`", p.name.value),
        )
        .label(format!("needs `{setting}`"))
        .hint(format!("add e.g. `{example}`")),
    );
}

fn wrong_kind(
    diags: &mut Vec<Diagnostic>,
    setting: &str,
    value: &Option<Spanned<String>>,
    kind: &str,
    hint: &str,
) {
    if let Some(v) = value {
        diags.push(
            Diagnostic::new(
                Code::WrongKindSetting,
                v.span,
                format!("`{setting}` does not apply to a {kind} partition"),
            )
            .label(format!("not used by {kind} partitions"))
            .hint(hint.to_string()),
        );
    }
}

fn check_one(sys: &System<'_>, p: &Partition, diags: &mut Vec<Diagnostic>) {
    let kind = match &p.kind {
        Some(k) => Some(k.value),
        None => {
            missing(diags, p, "kind", "kind rt");
            None
        }
    };
    match kind {
        Some(Kind::Rt) => {
            if !p.broken && p.image.as_ref().is_none_or(|i| i.value.is_empty()) {
                diags.push(
                    Diagnostic::new(
                        Code::RtNoImage,
                        p.name.span,
                        format!("real-time partition `{}` has no image", p.name.value),
                    )
                    .label("needs `image`")
                    .hint("add e.g. `image \"hello.elf\"` (a file in \\rusthallows\\ on the ESP)"),
                );
            }
            let hint =
                "kernel, initramfs and cmdline are for `kind linux`; a real-time partition has `image`";
            wrong_kind(diags, "kernel", &p.kernel, "real-time", hint);
            wrong_kind(diags, "initramfs", &p.initramfs, "real-time", hint);
            wrong_kind(diags, "cmdline", &p.cmdline, "real-time", hint);
        }
        Some(Kind::Linux) => {
            if !p.broken && p.kernel.as_ref().is_none_or(|k| k.value.is_empty()) {
                diags.push(
                    Diagnostic::new(
                        Code::LinuxNoKernel,
                        p.name.span,
                        format!("Linux partition `{}` has no kernel", p.name.value),
                    )
                    .label("needs `kernel`")
                    .hint("add e.g. `kernel \"vmlinux\"` (a vmlinux ELF or a bzImage)"),
                );
            }
            wrong_kind(
                diags,
                "image",
                &p.image,
                "Linux",
                "a Linux partition boots a `kernel`; rename `image` to `kernel`",
            );
            wrong_kind(
                diags,
                "args",
                &p.args,
                "Linux",
                "a Linux partition takes its parameters in `cmdline`; `args` is for real-time partitions",
            );
            if let Some(size) = &p.persistent {
                diags.push(
                    Diagnostic::new(
                        Code::WrongKindSetting,
                        size.span,
                        "`persistent` does not apply to a Linux partition",
                    )
                    .label("not used by Linux partitions")
                    .hint("only real-time partitions keep a persistent region across restarts; a Linux partition keeps its data on its own disks or in a real-time partition's region"),
                );
            }
        }
        None => {}
    }
    match &p.cores {
        None => missing(diags, p, "cores", "cores 1"),
        Some(cores) => check_cores(sys, &cores.value, diags),
    }
    match &p.memory {
        None => missing(diags, p, "memory", "memory 4 MiB"),
        Some(m) => check_memory(p, kind, m, diags),
    }
    if let Some(ways) = &p.llc_ways {
        check_ways(sys, ways, diags);
    }
    if let Some(code) = &p.llc_code_ways {
        check_code_ways(sys, p, code, diags);
    }
    if let Some(share) = &p.memory_bandwidth {
        if !(1..=hallows_abi::table::MAX_MBA_PERCENT as u64).contains(&share.value) {
            diags.push(
                Diagnostic::new(
                    Code::BandwidthOutOfRange,
                    share.span,
                    format!("a memory bandwidth share of {} percent", share.value),
                )
                .label("must be 1 to 100 percent")
                .hint("give the share of the memory bandwidth the partition may use, e.g. `memory_bandwidth 50 percent`; leave it out for no limit"),
            );
        }
    }
}

/// Code ways need the platform's `cdp` and data ways beside them; then they follow the
/// same rules as data ways.
fn check_code_ways(sys: &System<'_>, p: &Partition, code: &Spanned<IndexList>, diags: &mut Vec<Diagnostic>) {
    if !sys.platform.cdp {
        diags.push(
            Diagnostic::new(
                Code::CodeWaysWithoutCdp,
                code.span,
                format!("`llc_code_ways` on `{}` but the platform does not ask for CDP", p.name.value),
            )
            .label("code ways need code and data prioritisation")
            .hint("add `cdp` to the platform block, or remove `llc_code_ways` (code then shares `llc_ways`)"),
        );
        return;
    }
    if p.llc_ways.is_none() {
        diags.push(
            Diagnostic::new(
                Code::CodeWaysWithoutCdp,
                code.span,
                format!("`llc_code_ways` on `{}` without `llc_ways`", p.name.value),
            )
            .label("code ways without data ways")
            .hint("give the partition's data ways too, e.g. `llc_ways 0-1`"),
        );
        return;
    }
    check_ways(sys, code, diags);
}

/// Cores must exist on the platform (or fit the table format when the platform says `auto`).
pub fn check_cores(sys: &System<'_>, list: &IndexList, diags: &mut Vec<Diagnostic>) {
    let limit = sys.platform.cores.map_or(MAX_CORES as u64, u64::from);
    for item in list {
        if item.value.1 >= limit {
            let (message, hint) = match (sys.platform.cores, sys.platform.cores_span) {
                (Some(n), _) => (
                    format!(
                        "core {} does not exist: the platform has cores 0-{}",
                        item.value.1,
                        n.saturating_sub(1)
                    ),
                    format!("use cores below {n}, or raise `cores` in the platform block"),
                ),
                _ => (
                    format!("core {} is beyond the table format's {MAX_CORES} cores", item.value.1),
                    format!("core ids run from 0 to {}", MAX_CORES - 1),
                ),
            };
            let mut d =
                Diagnostic::new(Code::CoreOutOfRange, item.span, message).label("no such core").hint(hint);
            if let Some(span) = sys.platform.cores_span {
                d = d.related(span, "platform cores");
            }
            diags.push(d);
        }
    }
}

fn check_memory(p: &Partition, kind: Option<Kind>, m: &Spanned<u64>, diags: &mut Vec<Diagnostic>) {
    let mib = |b: u64| b >> 20;
    if !m.value.is_multiple_of(LARGE_PAGE_SIZE) {
        let up = m.value.div_ceil(LARGE_PAGE_SIZE).saturating_mul(LARGE_PAGE_SIZE);
        diags.push(
            Diagnostic::new(Code::RamMisaligned, m.span, "partition memory must be a multiple of 2 MiB")
                .label("not a multiple of 2 MiB")
                .hint(format!("partitions are mapped with 2 MiB pages; try `memory {} MiB`", mib(up))),
        );
    }
    match kind {
        Some(Kind::Rt) if m.value < RT_MIN_RAM => diags.push(
            Diagnostic::new(Code::RamTooSmall, m.span, "a real-time partition needs at least 2 MiB")
                .label("too small")
                .hint("page tables, the image at 1 MiB and a stack need 2 MiB at least"),
        ),
        Some(Kind::Rt) if m.value > RT_MAX_RAM => diags.push(
            Diagnostic::new(Code::RamTooLarge, m.span, "a real-time partition may have at most 3 GiB")
                .label("too large")
                .hint("RAM must end below the channel window at 3 GiB guest-physical"),
        ),
        Some(Kind::Linux) if m.value > limits::LINUX_MAX_RAM => diags.push(
            Diagnostic::new(Code::RamTooLarge, m.span, "a Linux partition may have at most 256 TiB")
                .label("too large")
                .hint("its RAM is mapped from guest-physical 0, and EPT maps guest-physical addresses below 2^48"),
        ),
        Some(Kind::Linux) if m.value < LINUX_MIN_RAM => diags.push(
            Diagnostic::new(
                Code::LinuxTooLittleRam,
                m.span,
                format!("Linux partition `{}` has too little memory", p.name.value),
            )
            .label(format!("{} MiB", mib(m.value)))
            .hint("a Linux partition needs at least 64 MiB (kernel, initramfs, page cache)"),
        ),
        _ => {}
    }
    if let Some(base) = &p.pinned {
        if !limits::pinned_fits(base.value, m.value) {
            let aligned = base.value.is_multiple_of(LARGE_PAGE_SIZE);
            diags.push(
                Diagnostic::new(
                    Code::PinnedMisaligned,
                    base.span,
                    "a pinned base must be 2 MiB aligned and the RAM must end below 2^52",
                )
                .label(if aligned { "ends past the physical address width" } else { "not 2 MiB aligned" })
                .hint(if aligned {
                    "x86-64 host-physical addresses stop at 2^52: pin the RAM lower"
                } else {
                    "round the base to a multiple of 0x20_0000"
                }),
            );
        }
    }
}

pub fn check_ways(sys: &System<'_>, ways: &Spanned<IndexList>, diags: &mut Vec<Diagnostic>) {
    let mut sorted: Vec<(u64, u64)> = ways.value.iter().map(|w| w.value).collect();
    sorted.sort_unstable();
    let contiguous = sorted.windows(2).all(|w| w[1].0 <= w[0].1.saturating_add(1));
    let first = sorted.first().map_or(0, |w| w.0);
    let last = sorted.iter().map(|w| w.1).max().unwrap_or(0);
    if !contiguous {
        diags.push(
            Diagnostic::new(Code::WaysNotContiguous, ways.span, "cache ways must be one contiguous block")
                .label("has a gap")
                .hint(format!("CAT masks are contiguous bit runs; e.g. `llc_ways {first}-{last}`")),
        );
        return;
    }
    if last >= limits::MAX_LLC_WAYS as u64 {
        diags.push(
            Diagnostic::new(
                Code::ValueOutOfRange,
                ways.span,
                format!("cache way ids go up to {}", limits::MAX_LLC_WAYS - 1),
            )
            .label("too large")
            .hint(format!("the table describes at most {} LLC ways", limits::MAX_LLC_WAYS)),
        );
        return;
    }
    let count = last - first + 1;
    if let (Some(n), Some(span)) = (sys.platform.llc_ways, sys.platform.llc_span) {
        if last >= n as u64 {
            diags.push(
                Diagnostic::new(
                    Code::WaysOutOfRange,
                    ways.span,
                    format!("the platform's LLC has ways 0-{} only", n.saturating_sub(1)),
                )
                .label(format!("way {last} does not exist"))
                .related(span, "platform LLC ways")
                .hint("use ways below the platform's `llc_ways`"),
            );
        }
    }
    if let Some(min) = sys.platform.cat_min_ways {
        if count < min as u64 {
            diags.push(
                Diagnostic::new(
                    Code::WaysTooNarrow,
                    ways.span,
                    format!("{count} cache ways is narrower than the platform minimum of {min}"),
                )
                .label("too narrow")
                .hint(format!("give at least {min} contiguous ways")),
            );
        }
    }
}

/// The `(first way, count)` of a partition's ways, when valid and contiguous.
pub fn way_block(ways: &IndexList) -> Option<(u8, u8)> {
    let first = ways.iter().map(|w| w.value.0).min()?;
    let last = ways.iter().map(|w| w.value.1).max()?;
    let first = u8::try_from(first).ok()?;
    let count = u8::try_from(last.checked_sub(first as u64)? + 1).ok()?;
    Some((first, count))
}
