//! Partitions: their host memory, their images (kept for restarts), their life-cycle
//! state and their console (line buffer, queue, counters).

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};

use hallows_abi::bootinfo::{
    fill_args, fill_name, BootInfo, ChannelInfo, BOOT_INFO_MAGIC, BOOT_INFO_VERSION, MAX_CHANNELS,
};
use hallows_abi::health::EventClass;
use hallows_abi::hypercall::PartitionState;
use hallows_abi::layout::{BOOT_INFO_GPA, PERSISTENT_WINDOW_GPA};
use hallows_core::elf::{self, ElfImage};
use hallows_core::guest_paging;
use spin::Mutex;
use zerocopy::{FromZeros, IntoBytes};

use crate::console::PartitionQueue;

use hallows_core::console::LineBuffer;
use hallows_core::console_queue::LineRateLimit;
use hallows_core::health::HealthMonitor;
use hallows_core::lifecycle::{request, scrub, Event, Refused, Reload, RestartScope, SharedState, State};

/// One partition as the hypervisor runs it.
pub struct Partition {
    pub index: usize,
    pub name: String,
    pub is_linux: bool,
    /// Host-physical base of guest RAM (guest-physical 0).
    pub ram_hpa: u64,
    pub ram_bytes: u64,
    /// Guest-physical bytes of the channel window the guest page tables cover.
    pub channel_window_bytes: u64,
    /// Host-physical base of the persistent region (its own block, apart from RAM), seen
    /// by the guest at `PERSISTENT_WINDOW_GPA`; meaningless when `persistent_bytes` is 0.
    pub persistent_hpa: u64,
    /// Bytes of the persistent region (0: none). It survives the health monitor's
    /// restarts (`hallows_core::lifecycle::scrub`).
    pub persistent_bytes: u64,
    /// The partition's `args` text, given to it in its boot info.
    pub args: String,
    /// The image file as read from the ESP, kept for restarts.
    pub image: Vec<u8>,
    pub vcpus: u32,
    pub privileges: u32,
    /// EPT pointer (shared by the partition's vCPUs).
    pub eptp: u64,
    /// Action per health class.
    pub actions: [u8; EventClass::COUNT],
    /// Channels as the partition sees them (for boot info).
    pub channels: Vec<ChannelInfo>,
    /// Where it is in hallows-core's life cycle: change it with [`Partition::apply`].
    pub state: SharedState,
    pub restarts: AtomicU32,
    /// Entry point of the loaded image.
    pub entry: AtomicU64Cell,
    /// The partition's unfinished console line; its holder is the only one who adds to
    /// `console_queue`.
    pub console: Mutex<LineBuffer>,
    /// The partition's completed console lines, waiting for the UART (boxed: 8 KiB).
    pub console_queue: alloc::boxed::Box<Mutex<PartitionQueue>>,
    /// What it did, for the operator (console bytes and drops included): written by the
    /// cores that run it, read by any (`summary`).
    pub counters: hallows_core::counters::PartitionCounters,
    /// Rate limit of the hypervisor's lines about this partition.
    pub hv_line_limit: Mutex<LineRateLimit>,
    /// Health-monitor state (restart budget).
    pub health: Mutex<HealthMonitor>,
    /// Another partition asked (with the `restart` privilege) for a restart, and of which
    /// scope (`lifecycle::request` codes); the core running this partition performs it
    /// before its next entry.
    pub restart_requested: AtomicU8,
    /// How the cores running its vCPUs agree on a restart (`hallows_core::group_restart`).
    pub restart_sync: hallows_core::group_restart::RestartSync,
    /// The pending restart request is the operator's (management interface): it is not
    /// cut by the restart budget (`HealthMonitor::decide_operator_restart`).
    pub operator_request: AtomicBool,
    /// The operator asked for a halt: each core running one of its vCPUs stops it when it
    /// looks (before its next entry); `start` clears it.
    pub halt_requested: AtomicBool,
    /// The image's file name in the table (Linux: its kernel), for the operator.
    pub image_name: String,
    /// The table's restart budget, for the operator.
    pub restart_policy: hallows_core::health::RestartPolicy,
}

/// A `u64` shared between cores.
pub struct AtomicU64Cell(core::sync::atomic::AtomicU64);

impl AtomicU64Cell {
    pub const fn new(v: u64) -> Self {
        Self(core::sync::atomic::AtomicU64::new(v))
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::SeqCst)
    }
}

impl Partition {
    /// Guest RAM as a byte slice of host memory.
    ///
    /// # Safety
    /// No vCPU of the partition may be running (the hypervisor writes RAM only before the
    /// first entry and while the partition is stopped for a restart).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn ram(&self) -> &mut [u8] {
        // SAFETY: `ram_hpa..+ram_bytes` was reserved for this partition and is
        // identity-mapped; the caller guarantees exclusive access.
        unsafe { core::slice::from_raw_parts_mut(self.ram_hpa as *mut u8, self.ram_bytes as usize) }
    }

    /// Zeroes the persistent region's bytes `from..from + bytes` (cut to the region): at
    /// boot and on a clean restart only.
    ///
    /// # Safety
    /// No vCPU of the partition may be running.
    pub unsafe fn scrub_persistent(&self, from: u64, bytes: u64) {
        if self.persistent_bytes == 0 {
            return;
        }
        // SAFETY: `persistent_hpa..+persistent_bytes` was reserved for this partition and
        // is identity-mapped in the hypervisor's page tables; the caller guarantees no vCPU
        // of the partition runs, and no other partition maps it.
        let region = unsafe {
            core::slice::from_raw_parts_mut(self.persistent_hpa as *mut u8, self.persistent_bytes as usize)
        };
        let start = (from as usize).min(region.len());
        let end = (from.saturating_add(bytes) as usize).min(region.len());
        region[start..end].fill(0);
    }

    /// The state as the `PartitionState` hypercall reports it.
    pub fn state(&self) -> PartitionState {
        self.lifecycle().reported()
    }

    /// Records another partition's restart request; a clean one wins over a plain one
    /// still pending (`lifecycle::request::merge`).
    pub fn request_restart(&self, scope: RestartScope) {
        self.restart_requested.fetch_max(request::code(scope), Ordering::SeqCst);
    }

    /// Whether a restart request is pending (a plain load: cheap enough to poll).
    pub fn restart_pending(&self) -> bool {
        self.restart_requested.load(Ordering::Relaxed) != request::NONE
    }

    /// Whether the operator asked for a halt (stays set while halted, until a start).
    pub fn halt_pending(&self) -> bool {
        self.halt_requested.load(Ordering::Relaxed)
    }

    /// Records the operator's restart request (also the way a halted partition starts).
    pub fn request_operator_restart(&self, scope: RestartScope) {
        self.halt_requested.store(false, Ordering::SeqCst);
        self.operator_request.store(true, Ordering::SeqCst);
        self.request_restart(scope);
    }

    /// Takes the pending restart request, if any, and whether it is the operator's.
    pub fn take_restart_request(&self) -> Option<(RestartScope, bool)> {
        // A plain load first: the common case costs no locked instruction.
        if self.restart_requested.load(Ordering::Relaxed) == request::NONE {
            return None;
        }
        let scope = request::scope(self.restart_requested.swap(request::NONE, Ordering::SeqCst))?;
        Some((scope, self.operator_request.swap(false, Ordering::SeqCst)))
    }

    /// Where the partition is in its life cycle.
    pub fn lifecycle(&self) -> State {
        self.state.get()
    }

    /// Moves the partition by `event` (hallows-core's `lifecycle::next` holds the rules).
    /// A transition the rules refuse changes nothing and is reported: it means the caller
    /// misjudged the partition's state.
    pub fn apply(&self, event: Event) -> Result<State, Refused> {
        let m = crate::machine::MACHINE.get();
        let applied = self.state.apply(event);
        match (applied, m) {
            (Err(refused), _) => crate::hvlog!("partition {}: life cycle: {refused}", self.name),
            (Ok(state), Some(m)) => {
                self.counters.note_lifecycle(event, m.now_ns());
                if state == State::Halted {
                    crate::summary::after_halt(m);
                }
            }
            (Ok(_), None) => {}
        }
        applied
    }

    /// The image, parsed and checked against this partition's RAM and vCPU stacks:
    /// what a (re)load writes.
    pub fn parsed_image(&self) -> Result<(ElfImage, u64), String> {
        let image = elf::parse(&self.image).map_err(|e| alloc::format!("image: {e}"))?;
        let image_end = elf::check_placement(&image, self.ram_bytes, self.vcpus)
            .map_err(|e| alloc::format!("image: {e}"))?;
        Ok((image, image_end))
    }

    /// Rewrites guest RAM `from..from + bytes` (cut to the RAM) with what it holds right
    /// after a load: zeroes and the image's bytes. A restart does this a chunk at a time,
    /// in the partition's own time; nothing of the previous run survives it.
    ///
    /// # Safety
    /// No vCPU of the partition may be running.
    pub unsafe fn rebuild(&self, image: &ElfImage, from: u64, bytes: u64) {
        // SAFETY: the caller guarantees the partition is stopped.
        let ram = unsafe { self.ram() };
        let start = (from as usize).min(ram.len());
        let end = (from.saturating_add(bytes) as usize).min(ram.len());
        elf::image_bytes_into(image, &self.image, start as u64, &mut ram[start..end]);
    }

    /// Rebuilds all of RAM at once, zeroes the persistent region (what the firmware left
    /// there is not the partition's), then [`Partition::finish_load`] (boot). Returns the
    /// guest CR3.
    ///
    /// # Safety
    /// No vCPU of the partition may be running.
    pub unsafe fn load(&self, tsc_hz: u64, now_ns: u64) -> Result<u64, String> {
        let (image, image_end) = self.parsed_image()?;
        // SAFETY: per the caller's contract.
        unsafe {
            let scrub = scrub(Reload::Boot);
            if scrub.ram {
                self.rebuild(&image, 0, self.ram_bytes);
            }
            if scrub.persistent {
                self.scrub_persistent(0, self.persistent_bytes);
            }
            self.finish_load(image.entry, image_end, tsc_hz, now_ns)
        }
    }

    /// The last step of a (re)load, after RAM was rebuilt: guest page tables, boot info,
    /// entry point. Returns the guest CR3.
    ///
    /// # Safety
    /// No vCPU of the partition may be running.
    pub unsafe fn finish_load(
        &self,
        entry: u64,
        image_end: u64,
        tsc_hz: u64,
        now_ns: u64,
    ) -> Result<u64, String> {
        // SAFETY: the caller guarantees the partition is stopped.
        let ram = unsafe { self.ram() };
        let cr3 = guest_paging::build_identity_paging(
            ram,
            self.ram_bytes,
            self.channel_window_bytes,
            self.persistent_bytes,
        )
        .map_err(|e| alloc::format!("guest page tables: {e}"))?;
        let mut info = BootInfo::new_zeroed();
        info.magic = BOOT_INFO_MAGIC;
        info.version = BOOT_INFO_VERSION;
        info.partition_id = self.index as u32;
        info.name_len = fill_name(&mut info.name, &self.name);
        info.vcpu_count = self.vcpus;
        info.ram_bytes = self.ram_bytes;
        info.image_end = image_end;
        // The image passed its placement check, so the stacks fit below `ram_bytes`.
        info.stacks_bottom = hallows_abi::limits::stacks_bottom(self.ram_bytes, self.vcpus).unwrap_or(0);
        info.tsc_hz = tsc_hz;
        info.boot_time_ns = now_ns;
        info.restart_count = self.restarts.load(Ordering::SeqCst);
        let n = self.channels.len().min(MAX_CHANNELS);
        info.channel_count = n as u32;
        info.channels[..n].copy_from_slice(&self.channels[..n]);
        if self.persistent_bytes != 0 {
            info.persistent_gpa = PERSISTENT_WINDOW_GPA;
            info.persistent_bytes = self.persistent_bytes;
        }
        info.args_len = fill_args(&mut info.args, &self.args);
        let bytes = info.as_bytes();
        ram[BOOT_INFO_GPA as usize..BOOT_INFO_GPA as usize + bytes.len()].copy_from_slice(bytes);
        self.entry.set(entry);
        Ok(cr3)
    }
}
