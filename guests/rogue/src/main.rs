//! `rogue`: a hostile partition for isolation tests. What it does wrong is chosen by its
//! partition name: the first row of the table whose fragment the name contains (the
//! order is [`rogue::mode::MODES`]; `wbinvd` comes before `invd`, which it contains).
//!
//! | name contains | misbehaviour | expected health event |
//! |---|---|---|
//! | `wbinvd` | `wbinvd` | `forbidden_instruction: WBINVD` |
//! | `mwait` | `monitor` on a page of its own, then `mwait` with hint 0x60 (deep C-state); after a restart `mwait` alone | `forbidden_instruction: MWAIT` (first `MONITOR` if that exits; give it `restart`) |
//! | `monitor` | `monitor` alone | `forbidden_instruction: MONITOR` |
//! | `rdpmc` | `rdpmc` of counter 0 | `forbidden_instruction: RDPMC` |
//! | `cr0cd` | sets CR0.CD and CR0.NW with `mov cr0` | `forbidden_instruction: MOV to CR0` |
//! | `cr4pce`, `cr4tsd`, `cr4mce` | sets CR4.PCE / TSD / MCE with `mov cr4` | `forbidden_instruction: MOV to CR4` |
//! | `xsetbv` | sets CR4.OSXSAVE (allowed), then `xsetbv` of XCR0 = 0b101 (AVX without SSE) | `forbidden_instruction: XSETBV` |
//! | `flood` | bursts of 24 lines of 4 KiB, forever | none: it is slowed by back-pressure, nobody else waits |
//! | `hmspam` | 200 `ReportFault(deadline_miss)` at once, every 2 s (give the class `log`) | a bounded number of lines, then `N lines suppressed` |
//! | `selfrestart` | `RestartPartition(itself)` in every incarnation | `(restart 1)`, `(restart 2)`, ... then `-> halt (escalated ...)` |
//! | `plant` | markers in DR0-3, DR6, CR2, CR8, FS/GS/KERNEL_GS_BASE, x87, MXCSR, XMM, YMM, k0-7, ZMM every window (`rogue::state`); restarts itself every 50 windows (at most 2 per 10 s) | none; prints `plant: clean after restart` or `plant: LEAK after restart ITEM=VALUE` |
//! | `snoop` | reads the same state at the start of each window, looking for the planter's markers | none; prints `snoop: clean (N checks) ...` or `snoop: LEAK ITEM=VALUE` |
//! | `chanseq` | as the writer of a queuing channel, publishes `write_seq` u64::MAX, a message at sequence u64::MAX (the reader wraps), a 4 GiB length and a counter running backwards, in a cycle | none; the reader reports `Inconsistent` and goes on |
//! | `port` | `out` to port 0x80, which it does not own | `io_violation` |
//! | `msr` | `wrmsr` to IA32_FEATURE_CONTROL | `msr_violation` |
//! | `pqr` | `wrmsr` to IA32_PQR_ASSOC with class of service 15 (cache allocation) | `msr_violation`; the register keeps the hypervisor's class |
//! | `invd` | `invd` (always exits) | `forbidden_instruction` |
//! | `triple` | loads an empty IDT, then `int3` | `triple_fault` |
//! | `panic` | `panic!` | `panic` (reported by the SDK) |
//! | `spin` | loops forever without yielding | window overrun (shared core) |
//! | `deadline` | a periodic task that always overruns its deadline | `deadline_miss` |
//! | `readonly` | writes to a channel it only reads | `memory_violation` |
//! | `sleeper` | sleeps 600 s in `Yield(until)` on its dedicated core | none; another partition's restart request must still reach it at once |
//! | `twovcpu` | both vCPUs print `twovcpu: vCPU N running, restart R` every 300 ms; in the first incarnation vCPU 1 then writes port 0x80 | `io_violation` on vCPU 1; give it two cores and `on io_violation restart`: the partition restarts whole |
//! | `keeper` | counts its boots in its persistent region (`rogue::keep`), checks a static in `.data` and one in `.bss` hold their initial values (RAM scrubbed), prints `keeper: boot count N, args "ARGS", ram fresh` (or `ram LEAK`), then, on boots 1 and 2 (`rogue::keep::STAY_UP_FROM`), writes outside its RAM; from boot 3 on prints `keeper: staying up (restart N)` and sleeps | `memory_violation`; give it `persistent` and `on memory_violation restart` |
//! | `summary` | asks for the counters table (`PrintSummary`) once a second, prints `summary: request N: STATUS`; with `args "panic after N"` panics after the Nth | none with `privileges query`; else `forbidden_instruction: hypercall 9 ... -> refused` each time |
//! | anything else | maps memory beyond its RAM in its own page tables and writes it | `memory_violation` (EPT) |
//!
//! Each run waits [`GRACE_NS`], says what it is about to do, then does it; after a restart
//! it first prints how often it was restarted. The pure logic (mode table, state markers
//! and leak detection) is the library, `src/lib.rs`, tested on the host.
#![no_std]
#![no_main]

mod arch;
mod channel_abuse;
mod console_abuse;
mod instructions;
mod shared_core;

use rogue::mode::{mode_for, Mode};
use rt_partition::hallows_abi::layout::{CHANNEL_WINDOW_GPA, LARGE_PAGE_SIZE, PAGE_TABLES_GPA};
use rt_partition::{periodic::Periodic, println, time, BootInfo};

extern crate alloc;

/// How long the partition behaves before misbehaving (lets other consoles be seen first).
const GRACE_NS: u64 = 300_000_000;
/// How long the `sleeper` mode sleeps: far longer than any scenario runs.
const LONG_SLEEP_NS: u64 = 600_000_000_000;

/// How often each vCPU of the `twovcpu` mode says it runs.
const PAIR_PERIOD_NS: u64 = 300_000_000;

rt_partition::entry!(main, secondary);

/// vCPUs other than 0: only the `twovcpu` mode uses them.
fn secondary(bi: &'static BootInfo, vcpu: u32) -> ! {
    if mode_for(bi.name()) != Mode::SecondVcpuFault {
        rt_partition::park_secondary(bi, vcpu)
    }
    println!("rogue: twovcpu: vCPU {vcpu} running, restart {}", bi.restart_count);
    if bi.restart_count == 0 {
        // Long enough for vCPU 0 to say it runs too.
        time::sleep_ns(GRACE_NS + 2 * PAIR_PERIOD_NS);
        println!("rogue: twovcpu: vCPU {vcpu} about to write I/O port 0x80 that I do not own");
        out_port_0x80();
    }
    report_running(bi, vcpu)
}

/// Says every [`PAIR_PERIOD_NS`] that vCPU `vcpu` runs, and in which incarnation.
fn report_running(bi: &BootInfo, vcpu: u32) -> ! {
    loop {
        time::sleep_ns(PAIR_PERIOD_NS);
        println!("rogue: twovcpu: vCPU {vcpu} running, restart {}", bi.restart_count);
    }
}

fn main(bi: &'static BootInfo) -> ! {
    if bi.restart_count > 0 {
        println!("rogue: restarted {} times", bi.restart_count);
    }
    time::sleep_ns(GRACE_NS);
    match mode_for(bi.name()) {
        Mode::Wbinvd => instructions::wbinvd(),
        Mode::Mwait => instructions::monitor_then_mwait(bi),
        Mode::Monitor => instructions::monitor_alone(),
        Mode::Rdpmc => instructions::rdpmc(),
        Mode::Cr0CacheDisable => instructions::cache_disable(),
        Mode::Cr4(bit) => instructions::set_cr4_bit(bit),
        Mode::Xsetbv => instructions::invalid_xcr0(),
        Mode::Flood => console_abuse::flood(),
        Mode::HealthSpam => console_abuse::health_spam(),
        Mode::SelfRestart => shared_core::restart_self(bi),
        Mode::Plant => shared_core::plant(bi),
        Mode::Snoop => shared_core::snoop(bi),
        Mode::CorruptQueue => channel_abuse::corrupt_queue(bi),
        Mode::Port => {
            println!("rogue: about to write I/O port 0x80 that I do not own");
            out_port_0x80();
        }
        Mode::Msr => {
            println!("rogue: about to write MSR IA32_FEATURE_CONTROL");
            write_feature_control();
        }
        Mode::PqrAssoc => {
            println!("rogue: about to write MSR IA32_PQR_ASSOC (class of service 15)");
            write_pqr_assoc();
        }
        Mode::Invd => {
            println!("rogue: about to execute INVD");
            invd();
        }
        Mode::TripleFault => {
            println!("rogue: about to triple fault (empty IDT, int3)");
            triple_fault();
        }
        Mode::Panic => {
            println!("rogue: about to panic");
            panic!("rogue: deliberate panic");
        }
        Mode::Spin => {
            println!("rogue: about to spin forever without yielding");
            spin();
        }
        Mode::Deadline => {
            println!("rogue: about to miss every deadline");
            miss_deadlines();
        }
        Mode::Sleep => {
            println!("rogue: going to sleep for {} s", LONG_SLEEP_NS / 1_000_000_000);
            time::sleep_ns(LONG_SLEEP_NS);
        }
        Mode::ReadOnlyChannel => write_read_only_channel(bi),
        Mode::Keeper => {
            if rogue::keep::faults_on(keep_count(bi)) {
                write_outside_ram(bi);
            } else {
                println!("keeper: staying up (restart {})", bi.restart_count);
                loop {
                    time::sleep_ns(LONG_SLEEP_NS);
                }
            }
        }
        Mode::SecondVcpuFault => report_running(bi, 0),
        Mode::Summary => ask_for_summaries(bi),
        Mode::OutsideRam => write_outside_ram(bi),
    }
    println!("rogue: still alive after misbehaving");
    loop {
        time::sleep_ns(1_000_000_000);
        println!("rogue: still alive");
    }
}

/// The `summary` mode: the counters table once a second, and what the hypervisor said;
/// with `args "panic after N"` it panics after its Nth request (give `panic` the
/// action `halt_system` to see the table printed at power-off).
fn ask_for_summaries(bi: &BootInfo) -> ! {
    let panic_after = bi.args().strip_prefix("panic after ").and_then(|n| n.parse::<u64>().ok());
    let mut next = time::now_ns();
    for request in 1u64.. {
        match rt_partition::hypercall::print_summary() {
            Ok(()) => println!("summary: request {request}: ok"),
            Err(e) => println!("summary: request {request}: {e:?}"),
        }
        if panic_after == Some(request) {
            panic!("summary: deliberate panic after request {request}");
        }
        next = next.saturating_add(1_000_000_000);
        time::sleep_until(next);
    }
    unreachable!("requests are counted in a u64-wide range")
}

/// Initial value of [`IN_DATA`]: a static in `.data`, loaded from the image.
const DATA_INITIAL: u64 = 0x5EED_DA7A;
static IN_DATA: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(DATA_INITIAL);
/// A static in `.bss`, zero after every (re)load.
static IN_BSS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The `keeper` mode's report: the boot count kept in the persistent region, the args,
/// and whether RAM came back as the image has it (both statics at their initial values;
/// they are changed before the fault, so a restart that kept RAM would show it). Returns
/// the boot count (`None` without a region).
fn keep_count(bi: &'static BootInfo) -> Option<u64> {
    use core::sync::atomic::Ordering::Relaxed;
    let fresh = IN_DATA.load(Relaxed) == DATA_INITIAL && IN_BSS.load(Relaxed) == 0;
    IN_DATA.store(!DATA_INITIAL, Relaxed);
    IN_BSS.store(u64::MAX, Relaxed);
    let ram = if fresh { "ram fresh" } else { "ram LEAK" };
    let count = rt_partition::persistent::region(bi).and_then(rogue::keep::count_boot);
    match count {
        Some(n) => println!("keeper: boot count {n}, args \"{}\", {ram}", bi.args()),
        None => println!("keeper: no persistent region, args \"{}\", {ram}", bi.args()),
    }
    if rt_partition::persistent::region(bi).is_some() {
        println!("keeper: LEAK the persistent region was handed out twice");
    }
    count
}

fn out_port_0x80() {
    // SAFETY: writing port 0x80 (POST code) has no effect on the partition's memory; the
    // point is that the hypervisor must trap it.
    unsafe { core::arch::asm!("out 0x80, al", in("al") 0x42u8, options(nomem, nostack)) }
}

fn write_feature_control() {
    // SAFETY: the hypervisor must intercept this; were it executed, IA32_FEATURE_CONTROL is
    // locked by firmware and the write raises #GP, which (with no IDT) triple-faults.
    unsafe { core::arch::asm!("wrmsr", in("ecx") 0x3Au32, in("eax") 0u32, in("edx") 0u32, options(nostack)) }
}

fn write_pqr_assoc() {
    // SAFETY: the hypervisor must intercept this (every MSR write of an RT partition
    // exits); were it executed, it would only change which cache ways this core fills.
    unsafe {
        core::arch::asm!("wrmsr", in("ecx") 0xC8Fu32, in("eax") 0u32, in("edx") 15u32, options(nostack))
    }
}

fn invd() {
    // SAFETY: INVD in VMX non-root operation always causes a VM exit; it never runs.
    unsafe { core::arch::asm!("invd", options(nostack)) }
}

fn triple_fault() -> ! {
    #[repr(C, packed)]
    struct IdtPointer {
        limit: u16,
        base: u64,
    }
    let empty = IdtPointer { limit: 0, base: 0 };
    // SAFETY: deliberately leaves the partition without exception handlers and raises #BP;
    // the resulting triple fault only concerns this partition.
    unsafe {
        core::arch::asm!("lidt [{}]", "int3", in(reg) &empty, options(nostack));
    }
    loop {
        core::hint::spin_loop();
    }
}

fn spin() -> ! {
    let mut x: u64 = 0;
    loop {
        x = core::hint::black_box(x.wrapping_add(1));
    }
}

fn miss_deadlines() -> ! {
    // 10 ms period, 1 ms deadline, 3 ms of busy work: every activation misses.
    let mut task = Periodic::new(10_000_000, 1_000_000);
    loop {
        let a = task.wait_next();
        let until = time::now_ns() + 3_000_000;
        while time::now_ns() < until {
            core::hint::spin_loop();
        }
        if a.index.is_multiple_of(100) {
            println!("rogue: {} deadline misses so far", task.stats().deadline_misses);
        }
    }
}

fn write_read_only_channel(bi: &BootInfo) {
    match bi.channels().iter().find(|c| c.is_writer == 0) {
        Some(c) => {
            println!("rogue: about to write channel {} that I only read (gpa {:#x})", c.name(), c.gpa);
            // SAFETY: the address is the channel's identity-mapped shared page; EPT maps it
            // read-only for a reader, so the write must fault into the hypervisor.
            unsafe { core::ptr::write_volatile(c.gpa as *mut u64, 0xBAD) }
        }
        None => {
            println!("rogue: no channel to write, writing outside my memory instead");
            write_outside_ram(bi);
        }
    }
}

/// Page-table entry bits.
const PRESENT: u64 = 1;
const WRITABLE: u64 = 1 << 1;
const LARGE: u64 = 1 << 7;
const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;

/// A page-aligned page for a new page directory.
#[repr(C, align(4096))]
struct Table([u64; 512]);

/// Maps the first 2 MiB past the end of RAM in the partition's own page tables (they live
/// in its RAM and are writable, as on real hardware) and writes it: the guest's paging
/// allows the access, so only EPT can stop it.
fn write_outside_ram(bi: &BootInfo) {
    let target = bi.ram_bytes.div_ceil(LARGE_PAGE_SIZE) * LARGE_PAGE_SIZE;
    if target >= CHANNEL_WINDOW_GPA {
        println!("rogue: RAM reaches the channel window, nothing outside to write");
        return;
    }
    println!("rogue: about to write outside my memory (gpa {target:#x})");
    // SAFETY: the page tables at PAGE_TABLES_GPA are this partition's own, identity-mapped
    // in its RAM; only the entries for `target`, which maps nothing yet, are changed.
    unsafe {
        let pml4 = PAGE_TABLES_GPA as *mut u64;
        let pml4e = pml4.add(((target >> 39) & 511) as usize).read_volatile();
        if pml4e & PRESENT == 0 {
            println!("rogue: no PML4 entry for low memory?");
            return;
        }
        let pdpt = (pml4e & ADDR_MASK) as *mut u64;
        let pdpte_ptr = pdpt.add(((target >> 30) & 511) as usize);
        let mut pdpte = pdpte_ptr.read_volatile();
        if pdpte & PRESENT == 0 {
            let pd = alloc::boxed::Box::leak(alloc::boxed::Box::new(Table([0; 512])));
            pdpte = (pd as *mut Table as u64) | PRESENT | WRITABLE;
            pdpte_ptr.write_volatile(pdpte);
        }
        if pdpte & LARGE == 0 {
            let pd = (pdpte & ADDR_MASK) as *mut u64;
            pd.add(((target >> 21) & 511) as usize).write_volatile(target | PRESENT | WRITABLE | LARGE);
        }
        core::arch::asm!("invlpg [{}]", in(reg) target, options(nostack));
        core::ptr::write_volatile(target as *mut u64, 0xBAD);
    }
}
