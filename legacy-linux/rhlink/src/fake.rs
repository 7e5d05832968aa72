//! A fake sysfs PCI device directory of regular files, for testing the library and
//! programs built on it on any host: channel functions as the hypervisor presents them, and
//! the real-time side's view of their pages. Panics on I/O errors (it is for tests).

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use hallows_abi::bridge::*;
use hallows_abi::table::{CHANNEL_QUEUING, CHANNEL_SAMPLING};
use hallows_ring::{Geometry, Region};

use crate::map::{Mapping, Writable};
use crate::Bridge;

/// A function's pages as the real-time partition maps them (all writable: tests play
/// honest and hostile peers).
pub struct PeerPages(Mapping);

impl PeerPages {
    /// The region for the ring crate's endpoints; valid while `self` lives.
    pub fn region(&self) -> Region {
        // SAFETY: the mapping covers the whole region read-write and lives as long as self;
        // callers keep self alive while endpoints use the region.
        unsafe { Region::new(self.0.base(), self.0.len()) }
    }
}

/// A temporary sysfs PCI device directory, removed on drop.
pub struct FakeSysfs {
    pub root: PathBuf,
}

/// One channel function to create.
#[derive(Clone)]
pub struct Function {
    pub address: &'static str,
    pub name: &'static str,
    pub queuing: bool,
    pub linux_writes: bool,
    pub msg_size: u32,
    pub depth: u32,
    pub peer: u32,
}

impl Function {
    pub fn new(address: &'static str, name: &'static str, queuing: bool, linux_writes: bool) -> Self {
        Self { address, name, queuing, linux_writes, msg_size: 64, depth: 8, peer: PEER_RUNNING }
    }

    pub fn geometry(&self) -> Geometry {
        Geometry::new(self.queuing, self.msg_size, self.depth).unwrap()
    }
}

impl FakeSysfs {
    pub fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("rhlink-test-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        Self { root }
    }

    pub fn bridge(&self) -> Bridge {
        Bridge::at(&self.root)
    }

    /// A PCI function directory with the given ids and no resources.
    pub fn device(&self, address: &str, vendor: u16, device: u16, subsystem: u16) -> PathBuf {
        let dir = self.root.join(address);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("vendor"), format!("{vendor:#06x}\n")).unwrap();
        fs::write(dir.join("device"), format!("{device:#06x}\n")).unwrap();
        fs::write(dir.join("subsystem_device"), format!("{subsystem:#06x}\n")).unwrap();
        dir
    }

    /// A channel function as the hypervisor presents it.
    pub fn add(&self, f: &Function) -> PathBuf {
        let dir = self.device(f.address, PCI_VENDOR_ID, PCI_DEVICE_ID, PCI_SUBSYSTEM_ID);
        let g = f.geometry();
        let kind = if f.queuing { CHANNEL_QUEUING } else { CHANNEL_SAMPLING } as u32;
        let direction = if f.linux_writes { DIRECTION_LINUX_WRITES } else { DIRECTION_LINUX_READS };
        let mut regs = vec![0u8; REGISTER_BLOCK_BYTES as usize];
        let mut put32 =
            |at: u64, v: u32| regs[at as usize..at as usize + 4].copy_from_slice(&v.to_le_bytes());
        put32(REG_MAGIC, REGISTER_MAGIC);
        put32(REG_VERSION, LAYOUT_VERSION);
        put32(REG_KIND, kind);
        put32(REG_DIRECTION, direction);
        put32(REG_MSG_SIZE, f.msg_size);
        put32(REG_DEPTH, g.depth);
        put32(REG_PEER_STATE, f.peer);
        put32(REG_CHANNEL_INDEX, 7);
        regs[REG_REGION_BYTES as usize..][..8].copy_from_slice(&g.region_bytes().to_le_bytes());
        regs[REG_WRITER_BYTES as usize..][..8].copy_from_slice(&g.writer_bytes().to_le_bytes());
        regs[REG_NAME as usize..][..f.name.len()].copy_from_slice(f.name.as_bytes());
        fs::write(dir.join("resource0"), regs).unwrap();
        fs::write(dir.join("resource2"), vec![0u8; shared_bar_bytes(g.region_bytes()) as usize]).unwrap();
        dir
    }

    /// Changes one register of a function (the file is what Linux maps).
    pub fn set_register(&self, address: &str, offset: u64, value: u32) {
        let path = self.root.join(address).join("resource0");
        let mut regs = fs::read(&path).unwrap();
        regs[offset as usize..][..4].copy_from_slice(&value.to_le_bytes());
        fs::write(path, regs).unwrap();
    }

    /// The real-time partition's view of a function's pages (all writable: the test
    /// plays honest and hostile peers).
    pub fn peer_pages(&self, f: &Function) -> PeerPages {
        let len = f.geometry().region_bytes() as usize;
        let path = self.root.join(f.address).join("resource2");
        PeerPages(Mapping::open(&path, len, Writable::Range { start: 0, len }).unwrap())
    }
}

impl Default for FakeSysfs {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for FakeSysfs {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}
