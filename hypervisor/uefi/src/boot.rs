//! The UEFI phase: everything done while the firmware's boot services still run.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::convert::Infallible;
use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

use hallows_abi::table::{MachineFacts, Table};
use hallows_core::lifecycle;
use hallows_core::switched_state::{RT_MSR_READ_PASSTHROUGH, RT_MSR_WRITE_PASSTHROUGH};
use hallows_core::vmx::bitmaps::{fill_io_bitmaps, fill_msr_bitmap};
use hallows_core::xstate::{XsaveSupport, XstatePolicy};

use hallows_core::boot_plan;
use hallows_core::cat::CatInfo;
use hallows_core::console::LineBuffer;
use hallows_core::core_stats::CoreCounters;
use hallows_core::health::{HealthMonitor, RestartPolicy};
use hallows_core::placement::{place_table, Region};
use hallows_core::vmx::caps::{probe, VmxCapabilities};
use spin::Mutex;
use uefi::boot::{self, AllocateType, MemoryType};
use uefi::fs::FileSystem;
use uefi::mem::memory_map::MemoryMap;
use uefi::proto::pi::mp::MpServices;
use uefi::CString16;

use crate::machine::{CorePlan, Machine, MACHINE};
use crate::memory::{self, HeapFrames};
use crate::partition::{self, Partition};
use crate::{cpu, heap, host, hvlog, madt, run};

/// Bytes of boot heap reserved at entry, before the table says how much the hypervisor
/// reserves (the table, page tables; the reservation then holds images, EPT, VMCS pages).
pub const BOOT_HEAP_BYTES: usize = 4 << 20;

/// Reads a file from the ESP directory the hypervisor was loaded from.
fn read_esp_file(_firmware: &BootServices, fs: &mut FileSystem, name: &str) -> Result<Vec<u8>, String> {
    // The re-validator refused bad names already; checking here keeps the path rule and
    // its use in one place.
    hallows_abi::limits::check_file_name(name).map_err(|e| format!("bad file name `{name}`: {e}"))?;
    let path: String = hallows_abi::limits::esp_path_chars(name).collect();
    let path16 = CString16::try_from(path.as_str()).map_err(|_| format!("bad file name `{name}`"))?;
    fs.read(path16.as_ref()).map_err(|e| format!("cannot read {path} from the ESP: {e:?}"))
}

/// The RSDP published in the UEFI configuration table.
fn rsdp() -> Option<u64> {
    use uefi::table::cfg::ConfigTableEntry;
    uefi::system::with_config_table(|t| {
        t.iter()
            .find(|e| e.guid == ConfigTableEntry::ACPI2_GUID)
            .or_else(|| t.iter().find(|e| e.guid == ConfigTableEntry::ACPI_GUID))
            .map(|e| e.address as u64)
    })
}

/// Local APIC ids of the usable processors, the boot processor first: from the ACPI
/// MADT, or from the firmware's MP services when the firmware publishes no ACPI tables
/// (OVMF under Bochs has no ACPI source).
fn processors(_firmware: &BootServices) -> Result<Vec<u32>, String> {
    if let Some(rsdp) = rsdp() {
        // SAFETY: the RSDP comes from the firmware's configuration table.
        let mut ids = unsafe { madt::processor_apic_ids(rsdp) }.map_err(|e| format!("ACPI: {e}"))?;
        hallows_core::madt::boot_processor_first(&mut ids, crate::cpu::cpuid(1, 0).ebx >> 24);
        return Ok(ids);
    }
    let handle = boot::get_handle_for_protocol::<MpServices>()
        .map_err(|_| String::from("the firmware offers neither ACPI tables nor MP services"))?;
    let mp =
        boot::open_protocol_exclusive::<MpServices>(handle).map_err(|e| format!("MP services: {e:?}"))?;
    let count = mp.get_number_of_processors().map_err(|e| format!("MP services: {e:?}"))?;
    let mut ids = Vec::new();
    for i in 0..count.total {
        let info = mp.get_processor_info(i).map_err(|e| format!("MP services: {e:?}"))?;
        if info.is_enabled() {
            if info.is_bsp() {
                ids.insert(0, info.processor_id as u32);
            } else {
                ids.push(info.processor_id as u32);
            }
        }
    }
    hvlog!("no ACPI tables from the firmware: processors from its MP services");
    Ok(ids)
}

/// Proof that the firmware's boot services still run. Only [`boot`] makes one, and
/// [`exit_boot_services`] consumes it: every function here that calls a boot service
/// (files, memory map, page allocation, MP services, `Stall`) takes `&BootServices`, so
/// none of them can be called after `ExitBootServices` by construction.
pub struct BootServices(());

/// What the ESP and the table give: read first, everything else depends on them.
struct Inputs {
    table: Table<'static>,
    fs: FileSystem,
}

/// What the machine is and offers, checked against the table.
struct Survey {
    apic_ids: Vec<u32>,
    free: Vec<Region>,
    caps: VmxCapabilities,
    controls: hallows_core::vmx::caps::VmxControls,
    tsc_hz: u64,
    xstate: XstatePolicy,
    xsave: XsaveSupport,
}

/// Everything placed, reserved and loaded: what the running hypervisor is made of.
struct Prepared {
    partitions: Vec<Partition>,
    io_bitmaps: Vec<u64>,
    msr_bitmap: u64,
    cores: Vec<CorePlan>,
    host_cr3: u64,
    trampoline: u64,
    hv_bytes: u64,
    log_level: u8,
}

/// Runs the boot flow; returns only with the reason the hypervisor refuses to start.
/// Phases, in order: [`read_inputs`], [`survey_machine`], [`reserve_and_prepare`] (all
/// with boot services), [`exit_boot_services`], then [`start`] (without).
pub fn boot() -> Result<Infallible, String> {
    let firmware = BootServices(());
    let inputs = read_inputs(&firmware)?;
    let survey = survey_machine(&firmware, &inputs.table)?;
    let prepared = reserve_and_prepare(&firmware, inputs, &survey)?;
    exit_boot_services(firmware);
    start(survey, prepared)
}

/// The boot heap, the ESP and the table (re-validated), and the console the table names.
fn read_inputs(firmware: &BootServices) -> Result<Inputs, String> {
    // A small boot heap below 4 GiB (the AP trampoline loads the host CR3, built from it,
    // in 32-bit code); the table's hypervisor reservation takes over once placed.
    let heap = boot::allocate_pages(
        AllocateType::MaxAddress(0xffff_f000),
        MemoryType::LOADER_DATA,
        BOOT_HEAP_BYTES / 4096,
    )
    .map_err(|e| format!("cannot reserve the hypervisor's boot heap: {e:?}"))?;
    heap::HEAP.init(heap.as_ptr() as usize, BOOT_HEAP_BYTES);

    let fs = boot::get_image_file_system(boot::image_handle())
        .map_err(|e| format!("no ESP file system: {e:?}"))?;
    let mut fs = FileSystem::new(fs);
    let table_bytes: &'static [u8] =
        read_esp_file(firmware, &mut fs, hallows_abi::limits::TABLE_FILE)?.leak();
    let table = Table::load(table_bytes).map_err(|e| format!("table.bin: {e}"))?;
    let console_port = table.platform().console_port.get();
    if console_port != 0 && console_port != crate::serial::COM1 {
        hvlog!("console moves to the UART at port {console_port:#x} (the table's `console`)");
        crate::serial::switch_to(console_port);
    }
    hvlog!(
        "table: {} partitions, {} schedules, {} channels",
        table.partitions.len(),
        table.schedules.len(),
        table.channels.len()
    );
    Ok(Inputs { table, fs })
}

/// Cores, free memory, cache allocation, VMX, the TSC rate and XSAVE: what the machine
/// offers, and whether the table fits it.
fn survey_machine(firmware: &BootServices, table: &Table) -> Result<Survey, String> {
    let apic_ids = processors(firmware)?;
    crate::linux::note_processors(&apic_ids);
    let free = free_memory(firmware)?;
    let ram: u64 = free.iter().map(|r| r.bytes).sum();
    let cat = CatInfo::from_cpuid(cpu::cpuid_regs);
    hvlog!("machine: {} cores (APIC ids {:?}), {} MiB conventional RAM", apic_ids.len(), apic_ids, ram >> 20);
    let facts = MachineFacts {
        cores: apic_ids.len() as u32,
        ram_bytes: ram,
        cat: cat.map(|c| (c.ways, table.platform().cat_min_ways.max(1))),
    };
    table.validate_against(&facts).map_err(|e| format!("the table does not fit this machine: {e}"))?;
    crate::cache_alloc::plan_at_boot(table)?;
    crate::cache_alloc::program_boot_core();
    let caps = vmx_caps()?;
    let controls = caps.controls_for_partition().map_err(|e| format!("VMX controls: {e}"))?;
    hvlog!(
        "CPU: VMX with EPT, VPID, unrestricted guest and the preemption timer (VMCS revision {:#x})",
        caps.revision_id()
    );
    let tsc_hz = calibrate_tsc(firmware);
    let (xstate, xsave) = xsave_support();
    Ok(Survey { apic_ids, free, caps, controls, tsc_hz, xstate, xsave })
}

/// Places every range and reserves it before the firmware allocates anything else, then
/// loads the partitions and builds page tables, bitmaps and the per-core plans.
fn reserve_and_prepare(firmware: &BootServices, inputs: Inputs, survey: &Survey) -> Result<Prepared, String> {
    let Inputs { table, mut fs } = inputs;
    // Page tables and the AP trampoline come from memory below 4 GiB.
    let host_cr3 = host::build_page_tables();
    let trampoline = crate::ap::reserve_trampoline(firmware)?;

    let placed = place_table(&table, &survey.free).map_err(|e| format!("memory placement: {e}"))?;
    let hv = reserve_at(firmware, "the hypervisor reservation", placed.hv_base, placed.hv_bytes)?;
    heap::HEAP.init(hv as usize, placed.hv_bytes as usize);
    let channels_hpa = match placed.channels_base {
        Some(base) => reserve_at(firmware, "the channel window", base, placed.channels_bytes)?,
        None => 0,
    };
    for (i, p) in table.partitions.iter().enumerate() {
        reserve_at(firmware, table.text(p.name), placed.partitions[i], p.ram_bytes.get())?;
        if let Some(base) = placed.persistent[i] {
            reserve_at(firmware, "a persistent region", base, table.persistent_bytes(i))?;
        }
    }

    let mut partitions = Vec::new();
    let mut io_bitmaps = Vec::new();
    for i in 0..table.partitions.len() {
        let place = PartitionPlace {
            ram_hpa: placed.partitions[i],
            channels_hpa,
            persistent_hpa: placed.persistent[i],
        };
        let part = prepare_partition(firmware, &table, i, &mut fs, place, survey.tsc_hz)?;
        partitions.push(part);
        io_bitmaps.push(io_bitmap(&table, i)?);
    }
    let msr_bitmap = memory::alloc_pages(1);
    // SAFETY: a fresh page owned by the hypervisor, exactly the MSR bitmap's size.
    fill_msr_bitmap(
        unsafe { &mut *(msr_bitmap as *mut [u8; 4096]) },
        &RT_MSR_READ_PASSTHROUGH,
        &RT_MSR_WRITE_PASSTHROUGH,
    );
    let cores = boot_plan::core_plans(&table, &survey.apic_ids);
    hvlog!("{}", placed.reserved(BOOT_HEAP_BYTES as u64, partitions.iter().map(|p| p.ram_bytes)));
    let log_level = table.platform().log_level;
    drop(fs);
    Ok(Prepared {
        partitions,
        io_bitmaps,
        msr_bitmap,
        cores,
        host_cr3,
        trampoline,
        hv_bytes: placed.hv_bytes,
        log_level,
    })
}

/// Leaves the firmware for good. Consumes the proof that boot services run.
fn exit_boot_services(firmware: BootServices) {
    let BootServices(()) = firmware;
    // SAFETY: no boot-services protocol or pool allocation is used after this point: the
    // file system handle was dropped with the inputs, the heap is our own, and every
    // function that calls a boot service needs the proof this consumed.
    let _memory_map = unsafe { boot::exit_boot_services(None) };
}

/// Without the firmware: interrupts quiet, the machine published, the other cores
/// started, and this core's own loop.
fn start(survey: Survey, prepared: Prepared) -> Result<Infallible, String> {
    crate::ap::quiet_interrupts();
    host::init_idt();
    let Survey { caps, controls, tsc_hz, xstate, xsave, .. } = survey;
    let Prepared { partitions, io_bitmaps, msr_bitmap, cores, host_cr3, trampoline, hv_bytes, log_level } =
        prepared;
    let counters = CoreCounters::new(cores.len());
    MACHINE.call_once(|| Machine {
        partitions,
        cores,
        caps,
        controls,
        host_cr3,
        msr_bitmap,
        io_bitmaps,
        tsc_hz,
        tsc_at_entry: crate::ENTRY_TSC.load(Ordering::SeqCst),
        counters,
        log_level,
        xstate,
        xsave,
    });
    hvlog!(
        "hypervisor heap: {} KiB used of the {} MiB reservation",
        (hv_bytes as usize - heap::HEAP.remaining()) >> 10,
        hv_bytes >> 20
    );
    crate::ap::start_all(trampoline);
    run::core_main(0)
}

/// Conventional RAM from the firmware's memory map, as placement regions.
fn free_memory(_firmware: &BootServices) -> Result<Vec<Region>, String> {
    let map = boot::memory_map(MemoryType::LOADER_DATA).map_err(|e| format!("memory map: {e:?}"))?;
    Ok(map
        .entries()
        .filter(|d| d.ty == MemoryType::CONVENTIONAL)
        .map(|d| Region { base: d.phys_start, bytes: d.page_count * 4096 })
        .collect())
}

/// Reserves `bytes` at host-physical `base` (chosen by placement) from the firmware.
fn reserve_at(_firmware: &BootServices, what: &str, base: u64, bytes: u64) -> Result<u64, String> {
    boot::allocate_pages(AllocateType::Address(base), MemoryType::LOADER_DATA, bytes.div_ceil(4096) as usize)
        .map(|p| p.as_ptr() as u64)
        .map_err(|e| format!("cannot reserve {} MiB at {base:#x} for {what}: {e:?}", bytes >> 20))
}

/// Reads the VMX capability MSRs and checks every requirement (`caps::probe`).
fn vmx_caps() -> Result<VmxCapabilities, String> {
    // SAFETY: `probe` reads IA32_FEATURE_CONTROL and the capability MSRs only once CPUID
    // reports VMX, and only those that exist on such a CPU.
    probe(cpu::cpuid(1, 0).ecx, |m| unsafe { cpu::rdmsr(m) }).map_err(|e| format!("{e}"))
}

/// TSC ticks per second, measured against the firmware's stall service.
fn calibrate_tsc(_firmware: &BootServices) -> u64 {
    let t0 = cpu::rdtsc();
    boot::stall(core::time::Duration::from_millis(20));
    let ticks = cpu::rdtsc() - t0;
    ticks * 50
}

/// Where a partition's memory is, as placed and reserved.
struct PartitionPlace {
    ram_hpa: u64,
    channels_hpa: u64,
    /// Its persistent region's block, when it has one.
    persistent_hpa: Option<u64>,
}

/// Reserves, maps (EPT) and loads partition `i`.
fn prepare_partition(
    firmware: &BootServices,
    table: &Table,
    i: usize,
    fs: &mut FileSystem,
    place: PartitionPlace,
    tsc_hz: u64,
) -> Result<Partition, String> {
    let PartitionPlace { ram_hpa, channels_hpa, persistent_hpa } = place;
    let p = table.partitions.get(i).ok_or_else(|| format!("no partition {i} in the table"))?;
    let name = String::from(table.text(p.name));
    let linux = p.is_linux();
    let ram_bytes = p.ram_bytes.get();
    let image = if linux { Vec::new() } else { read_esp_file(firmware, fs, table.text(p.image))? };
    // RAM, channel regions and MMIO, exactly as the host-tested boot plan builds them.
    let ept = boot_plan::partition_ept(table, i, ram_hpa, channels_hpa, persistent_hpa, &mut HeapFrames)
        .map_err(|e| format!("partition {name}: {e}"))?;
    let ((_, persistent_bytes), args) =
        boot_plan::keep_info(table, i).map_err(|e| format!("partition {name}: {e}"))?;
    let channels = boot_plan::channel_infos(table, i).map_err(|e| format!("partition {name}: {e}"))?.to_vec();
    let mut part = Partition {
        index: i,
        name,
        is_linux: linux,
        ram_hpa,
        ram_bytes,
        channel_window_bytes: table.channel_window_end(),
        persistent_hpa: persistent_hpa.unwrap_or(0),
        persistent_bytes,
        args: String::from(args),
        image,
        vcpus: p.cores.len(),
        privileges: p.privileges.get(),
        eptp: ept.eptp(),
        actions: p.hm_actions,
        channels,
        state: lifecycle::SharedState::new(lifecycle::State::Booting),
        restarts: AtomicU32::new(0),
        entry: partition::AtomicU64Cell::new(0),
        console: Mutex::new(LineBuffer::new()),
        console_queue: alloc::boxed::Box::new(Mutex::new(crate::console::PartitionQueue::new())),
        counters: hallows_core::counters::PartitionCounters::new(),
        hv_line_limit: Mutex::new(crate::console::hv_line_limit()),
        health: Mutex::new(HealthMonitor::new(RestartPolicy::for_partition(table, i))),
        restart_requested: AtomicU8::new(lifecycle::request::NONE),
        restart_sync: hallows_core::group_restart::RestartSync::new(),
        operator_request: core::sync::atomic::AtomicBool::new(false),
        halt_requested: core::sync::atomic::AtomicBool::new(false),
        image_name: String::from(table.text(p.image)),
        restart_policy: RestartPolicy::for_partition(table, i),
    };
    if linux {
        // A Linux partition that cannot be prepared (missing kernel, bad image) is halted;
        // the other partitions still run.
        if let Err(e) = crate::linux::prepare(firmware, table, p, &part) {
            hvlog!("partition {}: Linux cannot boot: {e}; halted, the other partitions run", part.name);
            let _ = part.apply(lifecycle::Event::Halt(lifecycle::Cause::Hypervisor));
        }
        return Ok(part);
    }
    let started = cpu::rdtsc();
    // SAFETY: no vCPU runs yet.
    unsafe { part.load(tsc_hz, 0) }.map_err(|e| format!("partition {}: {e}", part.name))?;
    let load_us = (cpu::rdtsc().wrapping_sub(started) as u128 * 1_000_000 / tsc_hz.max(1) as u128) as u64;
    hvlog!(
        "partition {}: {} MiB at host {:#x}, image {} ({} bytes, loaded in {} us), entry {:#x}, {} vCPU(s)",
        part.name,
        ram_bytes >> 20,
        ram_hpa,
        table.text(p.image),
        part.image.len(),
        load_us,
        part.entry.get(),
        part.vcpus
    );
    if part.persistent_bytes != 0 {
        hvlog!(
            "partition {}: persistent region of {} KiB at host {:#x} (guest {:#x}), kept across its restarts (not a clean one)",
            part.name,
            part.persistent_bytes >> 10,
            part.persistent_hpa,
            hallows_abi::layout::PERSISTENT_WINDOW_GPA
        );
    }
    part.image.shrink_to_fit();
    Ok(part)
}

/// The partition's I/O bitmaps (A then B): every port traps except its pass-through ranges.
fn io_bitmap(table: &Table, i: usize) -> Result<u64, String> {
    let pages = memory::alloc_pages(2);
    // SAFETY: two fresh pages owned by the hypervisor: exactly the 8 KiB of bitmaps A and B.
    let bits = unsafe { &mut *(pages as *mut [u8; 8192]) };
    fill_io_bitmaps(bits, boot_plan::io_ranges(table, i))
        .map_err(|e| format!("I/O pass-through of partition {i}: {e:?}"))?;
    Ok(pages)
}

/// How vCPUs' x87/SSE/AVX state is switched on this CPU (CPUID leaves 1 and 0xD), and what
/// partitions may enable.
fn xsave_support() -> (XstatePolicy, XsaveSupport) {
    let (policy, support) = hallows_core::xstate::switching(cpu::cpuid_regs);
    hvlog!(
        "CPU: register state switched with {} (XCR0 components {:#x} offered to partitions, {} bytes per vCPU)",
        if support.xsave { "XSAVE" } else { "FXSAVE" },
        policy.guest_allowed(),
        support.area_bytes
    );
    (policy, support)
}
