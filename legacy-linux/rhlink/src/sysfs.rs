//! Finding channel functions in a sysfs PCI device directory and reading their register
//! blocks (layout in [`hallows_abi::bridge`]).

use std::fs;
use std::path::{Path, PathBuf};

use hallows_abi::bridge::{
    DIRECTION_LINUX_READS, DIRECTION_LINUX_WRITES, LAYOUT_VERSION, NAME_BYTES, PCI_DEVICE_ID,
    PCI_SUBSYSTEM_ID, PCI_VENDOR_ID, REGISTER_BLOCK_BYTES, REGISTER_MAGIC, REG_CHANNEL_INDEX, REG_DEPTH,
    REG_DIRECTION, REG_KIND, REG_MAGIC, REG_MSG_SIZE, REG_NAME, REG_PEER_STATE, REG_REGION_BYTES,
    REG_VERSION, REG_WRITER_BYTES,
};
use hallows_abi::table::{CHANNEL_QUEUING, CHANNEL_SAMPLING};
use hallows_ring::Geometry;

use crate::map::{Mapping, Writable};
use crate::{Error, PeerState};

/// Sampling or queuing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sampling,
    Queuing,
}

/// Which way messages go, seen from Linux.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Linux writes, the real-time partition reads.
    LinuxWrites,
    /// The real-time partition writes, Linux reads.
    LinuxReads,
}

impl Direction {
    pub fn linux_writes(self) -> bool {
        self == Direction::LinuxWrites
    }
}

/// One channel as its register block describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelInfo {
    pub name: String,
    pub kind: Kind,
    pub direction: Direction,
    pub msg_size: u32,
    pub depth: u32,
    pub region_bytes: u64,
    pub writer_bytes: u64,
    /// The peer's state when the list was made.
    pub peer_state: PeerState,
    /// The channel's index in the partition table.
    pub index: u32,
    /// The function's sysfs directory.
    pub path: PathBuf,
}

impl ChannelInfo {
    pub fn geometry(&self) -> Geometry {
        Geometry { queuing: self.kind == Kind::Queuing, msg_size: self.msg_size, depth: self.depth }
    }
}

/// A sysfs id file ("0x1af4\n") as a number.
fn read_id(path: &Path) -> Option<u32> {
    let text = fs::read_to_string(path).ok()?;
    let text = text.trim();
    u32::from_str_radix(text.strip_prefix("0x").unwrap_or(text), 16).ok()
}

/// The PCI functions of the device directory `root` with these vendor and device ids and
/// this class code (the 24-bit `class` file: base class, sub-class, programming
/// interface), in PCI address order. Functions with other ids are skipped.
pub fn find_functions(root: &Path, vendor: u16, device: u16, class: u32) -> Result<Vec<PathBuf>, Error> {
    let entries = fs::read_dir(root).map_err(|error| Error::Io { path: root.into(), error })?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|d| {
            read_id(&d.join("vendor")) == Some(u32::from(vendor))
                && read_id(&d.join("device")) == Some(u32::from(device))
                && read_id(&d.join("class")) == Some(class)
        })
        .collect();
    dirs.sort();
    Ok(dirs)
}

fn is_channel_function(dir: &Path) -> bool {
    read_id(&dir.join("vendor")) == Some(PCI_VENDOR_ID as u32)
        && read_id(&dir.join("device")) == Some(PCI_DEVICE_ID as u32)
        && read_id(&dir.join("subsystem_device")) == Some(PCI_SUBSYSTEM_ID as u32)
}

pub fn list(root: &Path) -> Result<Vec<ChannelInfo>, Error> {
    let entries = fs::read_dir(root).map_err(|error| Error::Io { path: root.into(), error })?;
    let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    dirs.sort();
    dirs.into_iter().filter(|d| is_channel_function(d)).map(|d| describe(&d)).collect()
}

pub fn map_registers(dir: &Path) -> Result<Mapping, Error> {
    let path = dir.join("resource0");
    Mapping::open(&path, REGISTER_BLOCK_BYTES as usize, Writable::Nothing)
        .map_err(|error| Error::Io { path, error })
}

fn describe(dir: &Path) -> Result<ChannelInfo, Error> {
    let regs = map_registers(dir)?;
    parse(&regs, dir)
}

/// Reads and checks a register block: everything the library will trust later (sizes
/// that the ring geometry accepts and that match the layout) is checked here.
fn parse(regs: &Mapping, dir: &Path) -> Result<ChannelInfo, Error> {
    let bad = |why: String| Error::BadDevice { path: dir.into(), why };
    let r32 = |offset: u64| regs.read_u32(offset as usize);
    if r32(REG_MAGIC) != REGISTER_MAGIC {
        return Err(bad(format!("register block magic {:#x} is not RHBR", r32(REG_MAGIC))));
    }
    if r32(REG_VERSION) != LAYOUT_VERSION {
        return Err(bad(format!("layout version {} (this rhlink knows {LAYOUT_VERSION})", r32(REG_VERSION))));
    }
    let kind = match r32(REG_KIND) {
        k if k == CHANNEL_SAMPLING as u32 => Kind::Sampling,
        k if k == CHANNEL_QUEUING as u32 => Kind::Queuing,
        k => return Err(bad(format!("unknown channel kind {k}"))),
    };
    let direction = match r32(REG_DIRECTION) {
        DIRECTION_LINUX_WRITES => Direction::LinuxWrites,
        DIRECTION_LINUX_READS => Direction::LinuxReads,
        d => return Err(bad(format!("unknown direction {d}"))),
    };
    let geometry = Geometry::new(kind == Kind::Queuing, r32(REG_MSG_SIZE), r32(REG_DEPTH)).map_err(|_| {
        bad(format!("message size {} and depth {} out of range", r32(REG_MSG_SIZE), r32(REG_DEPTH)))
    })?;
    let region_bytes = regs.read_u64(REG_REGION_BYTES as usize);
    let writer_bytes = regs.read_u64(REG_WRITER_BYTES as usize);
    if region_bytes != geometry.region_bytes() || writer_bytes != geometry.writer_bytes() {
        return Err(bad(format!(
            "region of {region_bytes} bytes ({writer_bytes} writer) does not match the layout ({} and {})",
            geometry.region_bytes(),
            geometry.writer_bytes()
        )));
    }
    let mut name = Vec::new();
    for offset in (REG_NAME..REG_NAME + NAME_BYTES).step_by(4) {
        name.extend_from_slice(&r32(offset).to_le_bytes());
    }
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    let name =
        String::from_utf8(name[..end].to_vec()).map_err(|_| bad("channel name is not UTF-8".into()))?;
    Ok(ChannelInfo {
        name,
        kind,
        direction,
        msg_size: geometry.msg_size,
        depth: geometry.depth,
        region_bytes,
        writer_bytes,
        peer_state: PeerState::from_register(r32(REG_PEER_STATE)),
        index: r32(REG_CHANNEL_INDEX),
        path: dir.into(),
    })
}
