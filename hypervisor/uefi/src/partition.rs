//! Partitions: their host memory, their images (kept for restarts), their life-cycle
//! state and their console line buffer.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

use hallows_abi::bootinfo::{
    fill_name, BootInfo, ChannelInfo, BOOT_INFO_MAGIC, BOOT_INFO_VERSION, MAX_CHANNELS,
};
use hallows_abi::health::EventClass;
use hallows_abi::hypercall::PartitionState;
use hallows_abi::layout::{BOOT_INFO_GPA, CHANNEL_WINDOW_GPA};
use hallows_abi::table::{Table, KIND_LINUX};
use hallows_core::{elf, guest_paging};
use spin::Mutex;
use zerocopy::{FromZeros, IntoBytes};

use hallows_core::console::LineBuffer;
use hallows_core::health::HealthMonitor;

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
    /// [`PartitionState`] as u8.
    pub state: AtomicU8,
    pub restarts: AtomicU32,
    /// Entry point of the loaded image.
    pub entry: AtomicU64Cell,
    pub console: Mutex<LineBuffer>,
    /// Health-monitor state (restart budget).
    pub health: Mutex<HealthMonitor>,
    /// Another partition asked (with the `restart` privilege) for a restart; the core
    /// running this partition performs it before its next entry.
    pub restart_requested: core::sync::atomic::AtomicBool,
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

    pub fn state(&self) -> PartitionState {
        PartitionState::from_u64(self.state.load(Ordering::SeqCst) as u64).unwrap_or(PartitionState::Halted)
    }

    pub fn set_state(&self, s: PartitionState) {
        self.state.store(s as u8, Ordering::SeqCst);
    }

    /// Scrubs RAM, loads the image, writes the guest page tables and boot info. Returns
    /// the guest CR3.
    ///
    /// # Safety
    /// No vCPU of the partition may be running.
    pub unsafe fn load(&self, scrub: bool, tsc_hz: u64, now_ns: u64) -> Result<u64, String> {
        // SAFETY: the caller guarantees the partition is stopped.
        let ram = unsafe { self.ram() };
        if scrub {
            ram.fill(0);
        }
        let loaded =
            elf::load_rt_image(&self.image, ram, self.vcpus).map_err(|e| alloc::format!("image: {e}"))?;
        let cr3 = guest_paging::build_identity_paging(ram, self.ram_bytes, self.channel_window_bytes)
            .map_err(|e| alloc::format!("guest page tables: {e}"))?;
        let mut info = BootInfo::new_zeroed();
        info.magic = BOOT_INFO_MAGIC;
        info.version = BOOT_INFO_VERSION;
        info.partition_id = self.index as u32;
        info.name_len = fill_name(&mut info.name, &self.name);
        info.vcpu_count = self.vcpus;
        info.ram_bytes = self.ram_bytes;
        info.image_end = loaded.image_end;
        info.stacks_bottom = self.ram_bytes - self.vcpus as u64 * hallows_abi::layout::STACK_BYTES;
        info.tsc_hz = tsc_hz;
        info.boot_time_ns = now_ns;
        info.restart_count = self.restarts.load(Ordering::SeqCst);
        let n = self.channels.len().min(MAX_CHANNELS);
        info.channel_count = n as u32;
        info.channels[..n].copy_from_slice(&self.channels[..n]);
        let bytes = info.as_bytes();
        ram[BOOT_INFO_GPA as usize..BOOT_INFO_GPA as usize + bytes.len()].copy_from_slice(bytes);
        self.entry.set(loaded.entry);
        Ok(cr3)
    }
}

/// Describes every channel endpoint of partition `p` for its boot info.
pub fn channel_infos(table: &Table, p: usize) -> Vec<ChannelInfo> {
    let mut out = Vec::new();
    for c in table.channels.iter() {
        let is_writer = c.source.get() as usize == p;
        if !is_writer && c.destination.get() as usize != p {
            continue;
        }
        let mut info = ChannelInfo::new_zeroed();
        info.name_len = fill_name(&mut info.name, table.text(c.name));
        info.kind = c.kind as u32;
        info.is_writer = is_writer as u32;
        info.msg_size = c.msg_size.get();
        info.depth = c.depth.get();
        info.gpa = CHANNEL_WINDOW_GPA + c.window_offset.get();
        info.bytes = c.bytes.get();
        out.push(info);
    }
    out
}

/// Whether partition entry `kind` is Linux.
pub fn is_linux(kind: u8) -> bool {
    kind == KIND_LINUX
}
