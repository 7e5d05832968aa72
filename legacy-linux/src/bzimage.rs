//! bzImage parsing: the format distributions ship (Debian's `vmlinuz`).
//!
//! A bzImage is the real-mode setup (`setup_sects + 1` sectors of 512 bytes, starting with
//! the boot sector whose setup header sits at 0x1F1) followed by the protected-mode kernel
//! (the decompressor plus the compressed kernel). With the 64-bit boot protocol the
//! loader copies only the protected-mode part to the load address and jumps to
//! load address + 0x200 in long mode; the decompressor then unpacks the real kernel in
//! place (it needs `init_size` bytes from the load address for that).

use crate::boot_params::{
    GuestRange, SetupHeader, BOOT_FLAG, HEADER_MAGIC, LOADED_HIGH, SETUP_HEADER_OFFSET, XLF_KERNEL_64,
};
use zerocopy::FromBytes;

/// Oldest boot protocol with `xloadflags` (and so the 64-bit entry flag): 2.12.
pub const MIN_PROTOCOL_VERSION: u16 = 0x020C;
/// Offset of the 64-bit entry from the load address.
pub const ENTRY_64_OFFSET: u64 = 0x200;
/// Where a non-relocatable kernel must be loaded (and the lowest we ever load one).
pub const DEFAULT_LOAD_ADDRESS: u64 = 0x10_0000;
/// Size of a setup sector.
pub const SECTOR_SIZE: usize = 512;

/// Why a file is not a bootable 64-bit bzImage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BzImageError {
    /// Shorter than its own header or setup code says.
    Truncated,
    /// No 0xAA55 boot flag or no "HdrS" magic.
    NotABzImage,
    /// Boot protocol older than 2.12.
    ProtocolTooOld(u16),
    /// `xloadflags` lacks XLF_KERNEL_64.
    No64BitEntry,
    /// Not loaded high (a zImage).
    NotLoadedHigh,
    /// The kernel's `init_size` footprint fits nowhere in the given RAM.
    DoesNotFit,
}

/// A parsed bzImage borrowing the file's bytes.
#[derive(Debug, Clone, Copy)]
pub struct BzImage<'a> {
    header: SetupHeader,
    header_len: usize,
    setup: &'a [u8],
    kernel: &'a [u8],
}

impl<'a> BzImage<'a> {
    /// Parses and checks `bytes` as a 64-bit-capable bzImage.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BzImageError> {
        let header_bytes = bytes
            .get(SETUP_HEADER_OFFSET..SETUP_HEADER_OFFSET + size_of::<SetupHeader>())
            .ok_or(BzImageError::Truncated)?;
        let header = SetupHeader::read_from_bytes(header_bytes).map_err(|_| BzImageError::Truncated)?;
        if header.boot_flag.get() != BOOT_FLAG || header.header.get() != HEADER_MAGIC {
            return Err(BzImageError::NotABzImage);
        }
        let version = header.version.get();
        if version < MIN_PROTOCOL_VERSION {
            return Err(BzImageError::ProtocolTooOld(version));
        }
        if header.xloadflags.get() & XLF_KERNEL_64 == 0 {
            return Err(BzImageError::No64BitEntry);
        }
        if header.loadflags & LOADED_HIGH == 0 {
            return Err(BzImageError::NotLoadedHigh);
        }
        // The header ends at 0x202 + the jump's displacement byte (at 0x201).
        let header_end = 0x202 + usize::from(bytes[0x201]);
        let header_len = header_end.saturating_sub(SETUP_HEADER_OFFSET).min(size_of::<SetupHeader>());
        let setup_sects = match header.setup_sects {
            0 => 4,
            n => usize::from(n),
        };
        let setup_len = (setup_sects + 1) * SECTOR_SIZE;
        if bytes.len() <= setup_len {
            return Err(BzImageError::Truncated);
        }
        let (setup, kernel) = bytes.split_at(setup_len);
        Ok(Self { header, header_len, setup, kernel })
    }

    /// The setup header as the image carries it.
    pub fn header(&self) -> &SetupHeader {
        &self.header
    }

    /// The part of the setup header the image really has (0x1F1 up to 0x202 + the jump
    /// displacement): the loader copies exactly these bytes into the zero page.
    pub fn header_bytes(&self) -> &[u8] {
        &zerocopy::IntoBytes::as_bytes(&self.header)[..self.header_len]
    }

    /// The real-mode setup code (unused by the 64-bit protocol).
    pub fn setup(&self) -> &'a [u8] {
        self.setup
    }

    /// The protected-mode kernel: what is copied to the load address.
    pub fn kernel(&self) -> &'a [u8] {
        self.kernel
    }

    /// Boot protocol version (major << 8 | minor).
    pub fn protocol_version(&self) -> u16 {
        self.header.version.get()
    }

    /// True if the kernel may be loaded anywhere suitably aligned.
    pub fn relocatable(&self) -> bool {
        self.header.relocatable_kernel != 0
    }

    /// Alignment a relocatable kernel needs (at least 4 KiB, a power of two).
    pub fn kernel_alignment(&self) -> u64 {
        let align = u64::from(self.header.kernel_alignment.get());
        if align.is_power_of_two() {
            align.max(0x1000)
        } else {
            0x20_0000
        }
    }

    /// Preferred load address (protocol 2.10+).
    pub fn pref_address(&self) -> u64 {
        self.header.pref_address.get()
    }

    /// Bytes the kernel needs from its load address until it runs (decompression
    /// included); never less than the protected-mode code itself.
    pub fn init_size(&self) -> u64 {
        u64::from(self.header.init_size.get()).max(self.kernel.len() as u64)
    }

    /// Highest address the initrd's last byte may have.
    pub fn initrd_addr_max(&self) -> u64 {
        u64::from(self.header.initrd_addr_max.get())
    }

    /// Maximum command line length (without the NUL).
    pub fn cmdline_size(&self) -> u32 {
        self.header.cmdline_size.get()
    }

    /// Chooses the load address inside `ram` (sorted usable ranges): the preferred
    /// address if `[pref, pref + init_size)` fits in one range, otherwise (relocatable
    /// kernels only) the lowest `kernel_alignment`-aligned address at or above 1 MiB that
    /// fits. A non-relocatable kernel must go to 1 MiB.
    pub fn load_address(
        &self,
        ram: impl IntoIterator<Item = GuestRange> + Clone,
    ) -> Result<u64, BzImageError> {
        let size = self.init_size();
        let fits = |start: u64| {
            let want = GuestRange { start, end: start.saturating_add(size) };
            ram.clone().into_iter().any(|r| r.contains_range(&want))
        };
        if !self.relocatable() {
            return if fits(DEFAULT_LOAD_ADDRESS) {
                Ok(DEFAULT_LOAD_ADDRESS)
            } else {
                Err(BzImageError::DoesNotFit)
            };
        }
        let pref = self.pref_address();
        if pref >= DEFAULT_LOAD_ADDRESS && fits(pref) {
            return Ok(pref);
        }
        let align = self.kernel_alignment();
        ram.into_iter()
            .filter_map(|r| {
                let start = r.start.max(DEFAULT_LOAD_ADDRESS).checked_add(align - 1)? & !(align - 1);
                (start.checked_add(size)? <= r.end).then_some(start)
            })
            .next()
            .ok_or(BzImageError::DoesNotFit)
    }

    /// The 64-bit entry for a kernel loaded at `load_address`.
    pub fn entry_64(load_address: u64) -> u64 {
        load_address + ENTRY_64_OFFSET
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::boot_params::XLF_CAN_BE_LOADED_ABOVE_4G;
    extern crate std;
    use std::vec::Vec;

    /// Builds a synthetic bzImage: `setup_sects` sectors of setup after the boot sector,
    /// then `kernel` as the protected-mode part.
    pub(crate) fn synthetic_bzimage(setup_sects: u8, kernel: &[u8], init_size: u32) -> Vec<u8> {
        let sects = if setup_sects == 0 { 4 } else { usize::from(setup_sects) };
        let mut image = std::vec![0u8; (sects + 1) * SECTOR_SIZE];
        image[0x1F1] = setup_sects;
        image[0x1FE..0x200].copy_from_slice(&BOOT_FLAG.to_le_bytes());
        image[0x200] = 0xEB; // jmp short
        image[0x201] = 0x6A; // to 0x26C: the header is 2.15 sized
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x206..0x208].copy_from_slice(&0x020Fu16.to_le_bytes());
        image[0x211] = LOADED_HIGH;
        image[0x22C..0x230].copy_from_slice(&0x7FFF_FFFFu32.to_le_bytes());
        image[0x230..0x234].copy_from_slice(&0x20_0000u32.to_le_bytes());
        image[0x234] = 1;
        image[0x235] = 21;
        image[0x236..0x238].copy_from_slice(&(XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G).to_le_bytes());
        image[0x238..0x23C].copy_from_slice(&2047u32.to_le_bytes());
        image[0x258..0x260].copy_from_slice(&0x100_0000u64.to_le_bytes());
        image[0x260..0x264].copy_from_slice(&init_size.to_le_bytes());
        image.extend_from_slice(kernel);
        image
    }

    #[test]
    fn parses_the_header_and_splits_setup_from_kernel() {
        let image = synthetic_bzimage(3, b"KERNEL-CODE", 0x40_0000);
        let bz = BzImage::parse(&image).unwrap();
        assert_eq!(bz.setup().len(), 4 * 512);
        assert_eq!(bz.kernel(), b"KERNEL-CODE");
        assert_eq!(bz.protocol_version(), 0x020F);
        assert!(bz.relocatable());
        assert_eq!(bz.kernel_alignment(), 0x20_0000);
        assert_eq!(bz.pref_address(), 0x100_0000);
        assert_eq!(bz.init_size(), 0x40_0000);
        assert_eq!(bz.initrd_addr_max(), 0x7FFF_FFFF);
        assert_eq!(bz.cmdline_size(), 2047);
        assert_eq!(bz.header_bytes().len(), 0x26C - 0x1F1);
        assert_eq!(bz.header_bytes()[0x202 - 0x1F1..0x206 - 0x1F1], *b"HdrS");
        assert_eq!(BzImage::entry_64(0x100_0000), 0x100_0200);
    }

    #[test]
    fn zero_setup_sects_means_four() {
        let image = synthetic_bzimage(0, b"K", 0x1000);
        assert_eq!(BzImage::parse(&image).unwrap().setup().len(), 5 * 512);
    }

    #[test]
    fn short_header_copies_only_what_the_image_has() {
        let mut image = synthetic_bzimage(1, b"K", 0x1000);
        image[0x201] = 0x66; // header ends at 0x268 (protocol 2.12-2.14 size)
        let bz = BzImage::parse(&image).unwrap();
        assert_eq!(bz.header_bytes().len(), 0x268 - 0x1F1);
    }

    #[test]
    fn rejects_what_the_64_bit_protocol_cannot_boot() {
        let good = synthetic_bzimage(1, b"K", 0x1000);
        let mut bad = good.clone();
        bad[0x1FE] = 0;
        assert_eq!(BzImage::parse(&bad).unwrap_err(), BzImageError::NotABzImage);
        let mut bad = good.clone();
        bad[0x202] = b'X';
        assert_eq!(BzImage::parse(&bad).unwrap_err(), BzImageError::NotABzImage);
        let mut bad = good.clone();
        bad[0x206..0x208].copy_from_slice(&0x020Bu16.to_le_bytes());
        assert_eq!(BzImage::parse(&bad).unwrap_err(), BzImageError::ProtocolTooOld(0x020B));
        let mut bad = good.clone();
        bad[0x236] = 0;
        assert_eq!(BzImage::parse(&bad).unwrap_err(), BzImageError::No64BitEntry);
        let mut bad = good.clone();
        bad[0x211] = 0;
        assert_eq!(BzImage::parse(&bad).unwrap_err(), BzImageError::NotLoadedHigh);
        assert_eq!(BzImage::parse(&good[..2 * 512]).unwrap_err(), BzImageError::Truncated);
        assert_eq!(BzImage::parse(&good[..0x100]).unwrap_err(), BzImageError::Truncated);
    }

    #[test]
    fn load_address_prefers_pref_address_then_aligned_fallback() {
        let image = synthetic_bzimage(1, b"K", 0x400_0000);
        let bz = BzImage::parse(&image).unwrap();
        let ram = [GuestRange::sized(0, 0x9_F000), GuestRange::sized(0x10_0000, 255 << 20)];
        assert_eq!(bz.load_address(ram), Ok(0x100_0000));
        // RAM starting above the preferred address: next aligned spot.
        let ram = [GuestRange::sized(0x210_0000, 128 << 20)];
        assert_eq!(bz.load_address(ram), Ok(0x220_0000));
        // Too small.
        let ram = [GuestRange::sized(0x10_0000, 32 << 20)];
        assert_eq!(bz.load_address(ram), Err(BzImageError::DoesNotFit));
        // Non-relocatable: 1 MiB or nothing.
        let mut fixed = image.clone();
        fixed[0x234] = 0;
        let bz = BzImage::parse(&fixed).unwrap();
        assert_eq!(bz.load_address([GuestRange::sized(0, 128 << 20)]), Ok(0x10_0000));
        assert_eq!(bz.load_address([GuestRange::sized(0x20_0000, 128 << 20)]), Err(BzImageError::DoesNotFit));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..0x1000), magic in proptest::prelude::any::<bool>()) {
            let mut bytes = bytes;
            if magic && bytes.len() > 0x270 {
                bytes[0x1FE..0x200].copy_from_slice(&BOOT_FLAG.to_le_bytes());
                bytes[0x202..0x206].copy_from_slice(b"HdrS");
            }
            if let Ok(bz) = BzImage::parse(&bytes) {
                let _ = bz.load_address([GuestRange::sized(0, u64::MAX)]);
                proptest::prop_assert!(bz.setup().len() + bz.kernel().len() == bytes.len());
            }
        }
    }

    /// Checks the real Debian kernel when `scripts/linux-assets` has prepared it.
    #[test]
    fn debian_bzimage_if_present() {
        let Some(bytes) = crate::test_assets::read("bzImage") else { return };
        let bz = BzImage::parse(&bytes).unwrap();
        assert!(bz.protocol_version() >= 0x020F);
        assert!(bz.relocatable());
        assert_eq!(bz.header().xloadflags.get() & XLF_KERNEL_64, XLF_KERNEL_64);
        let ram = [GuestRange::sized(0x10_0000, 512 << 20)];
        assert_eq!(bz.load_address(ram), Ok(bz.pref_address()));
    }
}
