//! Reading a Linux partition's big files (a 65 MB vmlinux, the initramfs) from the ESP
//! into pages allocated from the firmware, not into the hypervisor's heap. They are kept
//! ([`EspFile::keep`]): a restart of the partition lays them out again.

use alloc::format;
use alloc::string::String;
use core::ptr::NonNull;

use uefi::boot::{self, AllocateType, MemoryType, OpenProtocolAttributes, OpenProtocolParams};
use uefi::proto::device_path::DevicePath;
use uefi::proto::loaded_image::LoadedImage;
use uefi::proto::media::file::{File, FileAttribute, FileMode, RegularFile};
use uefi::proto::media::fs::SimpleFileSystem;
use uefi::CString16;

/// A file's bytes in firmware pages, freed on drop (only while boot services run).
pub struct EspFile {
    pages: NonNull<u8>,
    page_count: usize,
    len: usize,
}

impl EspFile {
    /// Keeps the file's pages for the rest of the hypervisor's life (a Linux partition's
    /// kernel and initramfs, booted again at each restart). The pages stay the loader's
    /// after ExitBootServices: nothing else allocates from the firmware's memory map.
    pub fn keep(self) -> &'static [u8] {
        let (pages, len) = (self.pages, self.len);
        core::mem::forget(self);
        // SAFETY: the pages are never freed now (`forget`), hold `len` bytes written by the
        // file read, and are only read from here on.
        unsafe { core::slice::from_raw_parts(pages.as_ptr(), len) }
    }
}

impl Drop for EspFile {
    fn drop(&mut self) {
        // SAFETY: the pages came from `allocate_pages` with this count and are not
        // referenced any more (`bytes` borrows `self`).
        let _ = unsafe { boot::free_pages(self.pages, self.page_count) };
    }
}

/// Opens the ESP's file system without exclusivity: the boot flow already holds it open
/// exclusively through `uefi::fs::FileSystem`, which only reads into the heap.
fn open_esp() -> Result<boot::ScopedProtocol<SimpleFileSystem>, String> {
    let image = boot::open_protocol_exclusive::<LoadedImage>(boot::image_handle())
        .map_err(|e| format!("loaded image protocol: {e:?}"))?;
    let device = image.device().ok_or("the hypervisor's image has no device")?;
    let path = boot::open_protocol_exclusive::<DevicePath>(device)
        .map_err(|e| format!("device path protocol: {e:?}"))?;
    let handle = boot::locate_device_path::<SimpleFileSystem>(&mut &*path)
        .map_err(|e| format!("no file system on the ESP: {e:?}"))?;
    let params = OpenProtocolParams { handle, agent: boot::image_handle(), controller: None };
    // SAFETY: GET_PROTOCOL does not take ownership; the protocol stays installed while
    // boot services run, and the handle is dropped before ExitBootServices.
    unsafe { boot::open_protocol::<SimpleFileSystem>(params, OpenProtocolAttributes::GetProtocol) }
        .map_err(|e| format!("simple file system: {e:?}"))
}

/// Reads `\rusthallows\NAME` into fresh firmware pages.
pub fn read(_firmware: &crate::boot::BootServices, name: &str) -> Result<EspFile, String> {
    hallows_abi::limits::check_file_name(name).map_err(|e| format!("bad file name `{name}`: {e}"))?;
    let path: String = hallows_abi::limits::esp_path_chars(name).collect();
    let path16 = CString16::try_from(path.as_str()).map_err(|_| format!("bad file name `{name}`"))?;
    let mut fs = open_esp()?;
    let mut root = fs.open_volume().map_err(|e| format!("ESP volume: {e:?}"))?;
    let handle = root
        .open(&path16, FileMode::Read, FileAttribute::empty())
        .map_err(|e| format!("cannot open {path} on the ESP: {e:?}"))?;
    let mut file: RegularFile = handle.into_regular_file().ok_or(format!("{path} is a directory"))?;
    file.set_position(RegularFile::END_OF_FILE).map_err(|e| format!("{path}: {e:?}"))?;
    let len = file.get_position().map_err(|e| format!("{path}: {e:?}"))? as usize;
    file.set_position(0).map_err(|e| format!("{path}: {e:?}"))?;
    let page_count = len.div_ceil(4096).max(1);
    let pages = boot::allocate_pages(AllocateType::AnyPages, MemoryType::LOADER_DATA, page_count)
        .map_err(|e| format!("no memory to read {path} ({} MiB): {e:?}", len >> 20))?;
    let mut out = EspFile { pages, page_count, len: 0 };
    // SAFETY: fresh pages of at least `len` bytes, owned by `out`.
    let buf = unsafe { core::slice::from_raw_parts_mut(pages.as_ptr(), len) };
    let mut done = 0;
    while done < len {
        let n = file.read(&mut buf[done..]).map_err(|e| format!("reading {path}: {e:?}"))?;
        if n == 0 {
            return Err(format!("{path}: short read ({done} of {len} bytes)"));
        }
        done += n;
    }
    out.len = len;
    Ok(out)
}
