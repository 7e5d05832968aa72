//! Hypervisor-side policy for a vCPU of a Linux partition (issue 4): an unmodified Linux
//! kernel runs beside the real-time partitions on cores it owns outright, in the Jailhouse
//! model: it programs its cores' local APICs itself (timer interrupts and EOIs never exit),
//! and the hypervisor intercepts only what could reach another partition or the machine.
//!
//! | concern | module | what the binary calls |
//! |---|---|---|
//! | CPUID view (topology, x2APIC, TSC frequency) | [`cpuid`] | [`cpuid::LinuxCpuid::answer`] on every CPUID exit |
//! | IPIs (x2APIC ICR, MSR 0x830) | [`apic`] | [`apic::decide_icr`] on every WRMSR of the ICR |
//! | MSRs | [`msr`] | [`msr::LinuxMsrPolicy::fill_bitmap`] once, `on_rdmsr`/`on_wrmsr` on exits |
//! | INIT-SIPI-SIPI | [`ap_start`] | [`ap_start::ApStart`] per vCPU, [`ap_start::sipi_start_state`] |
//! | port I/O | [`io`] | [`io::LinuxIoPolicy::fill_bitmap`] once, `classify` on I/O exits (devices: `hallows_vmm::port_bus`) |
//! | restarts (reset request, triple fault) | [`restart`] | [`restart::Rendezvous`] per partition: every vCPU parks, the boot vCPU rebuilds |
//! | VM exits | [`crate::vcpu::decide`] with `Kind::Linux` | on every exit; [`exits::linux_controls`] once |
//!
//! # The contract with `legacy-linux` (ACPI MADT) and the CPUID view: APIC ids
//! vCPU `i` of a partition is the partition's `i`-th core in ascending core order, and
//! vCPU 0 is the boot CPU. The APIC id the guest sees for vCPU `i` is fixed by an
//! [`apic::ApicIdMap`]; the MADT that `legacy-linux::acpi` writes must list exactly the
//! map's guest ids, in vCPU order. Two maps exist:
//! - [`apic::ApicIdMap::identity`] (**recommended**, and what `legacy-linux::acpi`
//!   documents today): the guest sees its cores' *real* x2APIC ids. Nothing needs
//!   translating: the x2APIC ID (0x802) and LDR (0x80D) registers pass through without
//!   exits, logical (cluster) destinations name real cores, and the ICR filter only checks
//!   that every destination belongs to the partition.
//! - [`apic::ApicIdMap::sequential`]: vCPU `i` has APIC id `i` (0..n-1). Then the ID and LDR
//!   reads exit and return the virtual values, and every IPI is rewritten to the real ids.
//!   It exists for configurations where the real ids are sparse or huge; it costs two
//!   extra exits per CPU at boot and a rewrite per IPI.
//!
//! # What Linux must be given to stay in x2APIC mode
//! The hypervisor puts each of the partition's cores into x2APIC mode before the first VM
//! entry; the partition never sees the xAPIC MMIO page (an access is a fault, see
//! [`exits`]). Linux 6.1 without interrupt remapping and on a hypervisor it does not
//! recognise keeps x2APIC only if it was "enabled by BIOS" **and** `enable_IR_x2apic`
//! returns before `try_to_enable_x2apic`, which happens when `skip_ioapic_setup` is set:
//! either the MADT lists no I/O APIC (Linux then picks virtual-wire mode and calls
//! `disable_ioapic_support`), or the command line says `noapic`. Otherwise 6.1 calls
//! `x2apic_disable`, which clears its x2APIC mode even when the hardware is locked (a bug
//! fixed only in 2024) and then uses xAPIC MMIO. So: no I/O APIC in the MADT, `noapic`
//! on the command line as a second guard, never `nox2apic`. The emulated
//! `IA32_XAPIC_DISABLE_STATUS` ([`msr`]) additionally reports x2APIC as locked, which
//! makes `nox2apic` and the AP path (`x2apic_setup`) keep x2APIC too.

//! # Usage sketch (what the binary does, in order)
//! ```
//! use hallows_core::vmx::exit::{ExitInfo, IoQualification};
//! use hallows_core::linux_vcpu::{ap_start, apic, cpuid, exits, io, msr};
//! use hallows_core::vmx::caps::{bochs_skylake_msr, VmxCapabilities};
//! // Boot: the partition's cores (real x2APIC ids from the MADT), vCPU i = i-th core.
//! let map = apic::ApicIdMap::identity(&[2, 3]).unwrap(); // MADT lists map.guest_ids()
//! let caps = VmxCapabilities::from_msrs(bochs_skylake_msr);
//! let controls = exits::linux_controls(&caps).unwrap();
//! // Per vCPU: bitmaps, CPUID view, start-up state machine.
//! let timing = cpuid::TscTiming { tsc_khz: 100_000, lapic_khz: 100_000 }; // Bochs ips=100M
//! let ap = 1;
//! let msrs = msr::LinuxMsrPolicy::new(&map, ap, timing.tsc_khz);
//! let mut msr_page = [0u8; 4096];
//! msrs.fill_bitmap(&mut msr_page);
//! let io_policy = io::LinuxIoPolicy::default();
//! let mut io_pages = [0u8; 8192];
//! io_policy.fill_bitmap(&mut io_pages, [] as [(u32, u32); 0]).unwrap();
//! let view = cpuid::LinuxCpuid::new(&map, ap, 0x16, timing);
//! let mut ap_state = ap_start::ApStart::application_processor();
//! // The BSP (vCPU 0) writes INIT, then SIPI 0x9A, to APIC id 3.
//! for icr in [0xC500u64 | 3 << 32, 0x69A | 3 << 32] {
//!     let exit = hallows_core::vcpu::Exit::Wrmsr { msr: 0x830, value: icr };
//!     let step = hallows_core::vcpu::decide(hallows_core::vcpu::Kind::Linux, &exit, |_| false);
//!     assert_eq!(step, hallows_core::vcpu::Step::Wrmsr { msr: 0x830, value: icr });
//!     let msr::MsrAction::Icr(value) = msrs.on_wrmsr(0x830, icr) else { unreachable!() };
//!     match apic::decide_icr(&map, 0, value) {
//!         apic::IcrDecision::Init(t) if t.contains(ap) => { ap_state.on_init(); }
//!         apic::IcrDecision::Sipi { targets, vector } if targets.contains(ap) => {
//!             // Post to the AP's mailbox; the parked AP core then does:
//!             if let ap_start::ApEffect::Start { vector } = ap_state.on_sipi(vector) {
//!                 let plan = ap_start::sipi_start_state(&caps, controls.entry, vector);
//!                 assert_eq!(plan.get(hallows_core::vmx::vmcs::guest::CS_SELECTOR), Some(0x9A00));
//!                 // for w in plan.writes() { vmwrite(w.field, w.value) } then VMLAUNCH
//!             }
//!         }
//!         other => panic!("{other:?}"),
//!     }
//! }
//! // Later exits on the AP: CPUID and port probes.
//! assert_eq!(view.answer(1, 0, [0x50654, 0, 0, 0])[1] >> 24, 3);
//! let probe = IoQualification::decode(0x0070_0008); // in al, 0x70 (CMOS)
//! assert_eq!(io_policy.classify(&probe, 0), io::IoAction::Device); // to hallows_vmm::port_bus
//! ```

pub mod ap_start;
pub mod apic;
pub mod cpuid;
pub mod exits;
pub mod io;
pub mod msr;
pub mod restart;
pub mod stats;
