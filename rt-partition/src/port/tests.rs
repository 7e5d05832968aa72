//! Host tests of the SDK's side of ports: finding and checking channel descriptions, and
//! the endpoints over plain memory (the protocols are tested in depth in `hallows-ring`).

extern crate std;

use std::vec;
use std::vec::Vec;

use hallows_abi::bootinfo::{fill_name, ChannelInfo};
use zerocopy::FromZeros;

use super::*;

/// One cache line of backing memory (regions are 64-byte aligned).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// Zeroed, 64-byte aligned backing memory for one channel.
struct Backing(Vec<Line>);

impl Backing {
    fn new(geometry: &Geometry) -> Self {
        Self(vec![Line([0; 64]); geometry.region_bytes() as usize / 64])
    }

    fn region(&mut self) -> Region {
        // SAFETY: (test) the Vec outlives every endpoint of the test and is accessed only
        // through the endpoints.
        unsafe { Region::new(self.0.as_mut_ptr().cast(), self.0.len() * 64) }
    }
}

fn sampling(msg_size: u32) -> Geometry {
    Geometry::new(false, msg_size, 1).unwrap()
}

fn queuing(msg_size: u32, depth: u32) -> Geometry {
    Geometry::new(true, msg_size, depth).unwrap()
}

fn channel_info(geometry: &Geometry, writer: bool) -> ChannelInfo {
    let mut ci = ChannelInfo::new_zeroed();
    ci.name_len = fill_name(&mut ci.name, "readings");
    ci.kind = geometry.kind();
    ci.is_writer = writer as u32;
    ci.msg_size = geometry.msg_size;
    ci.depth = geometry.depth;
    ci.gpa = CHANNEL_WINDOW_GPA + 0x2000;
    ci.bytes = geometry.region_bytes();
    ci
}

#[test]
fn descriptions_with_sizes_out_of_bounds_are_refused() {
    let mut ci = channel_info(&queuing(8, 4), false);
    for (msg_size, depth) in [(0, 4), (8, 0), (MAX_MESSAGE + 1, 1), (8, MAX_DEPTH + 1)] {
        (ci.msg_size, ci.depth) = (msg_size, depth);
        assert_eq!(check_channel(&ci, true, false), Err(PortError::BadGeometry));
    }
}

#[test]
fn channel_descriptions_are_checked() {
    let g = queuing(64, 8);
    assert_eq!(check_channel(&channel_info(&g, true), true, true), Ok(g));
    assert_eq!(check_channel(&channel_info(&g, true), true, false), Err(PortError::WrongKindOrRole));
    assert_eq!(check_channel(&channel_info(&g, true), false, true), Err(PortError::WrongKindOrRole));
    let mut small = channel_info(&g, false);
    small.bytes -= 1;
    assert_eq!(check_channel(&small, true, false), Err(PortError::BadGeometry));
    let mut outside = channel_info(&g, false);
    outside.gpa = 0x10_0000;
    assert_eq!(check_channel(&outside, true, false), Err(PortError::BadGeometry));
    let mut past_end = channel_info(&g, false);
    past_end.gpa = CHANNEL_WINDOW_GPA + CHANNEL_WINDOW_BYTES - PAGE_SIZE;
    assert_eq!(check_channel(&past_end, true, false), Err(PortError::BadGeometry));
    let mut unaligned = channel_info(&g, false);
    unaligned.gpa += 8;
    assert_eq!(check_channel(&unaligned, true, false), Err(PortError::BadGeometry));
}

#[test]
fn endpoints_refuse_the_other_kind_or_a_short_region() {
    let g = queuing(16, 2);
    let mut mem = Backing::new(&g);
    assert_eq!(SamplingWriter::over(mem.region(), g).unwrap_err(), PortError::BadGeometry);
    assert_eq!(SamplingReader::over(mem.region(), g).unwrap_err(), PortError::BadGeometry);
    let s = sampling(16);
    assert_eq!(QueuingWriter::over(mem.region(), s).unwrap_err(), PortError::BadGeometry);
    assert_eq!(QueuingReader::over(mem.region(), s).unwrap_err(), PortError::BadGeometry);
    // SAFETY: (test) a shorter view of the same live buffer.
    let short = unsafe { Region::new(mem.0.as_mut_ptr().cast(), 64) };
    assert_eq!(QueuingWriter::over(short, g).unwrap_err(), PortError::BadGeometry);
}

#[test]
fn open_finds_channels_by_name_and_checks_the_role() {
    let mut bi = BootInfo::new_zeroed();
    let g = queuing(64, 8);
    bi.channels[0] = channel_info(&g, true);
    bi.channel_count = 1;
    assert_eq!(QueuingWriter::open(&bi, "missing").unwrap_err(), PortError::NotFound);
    assert_eq!(QueuingReader::open(&bi, "readings").unwrap_err(), PortError::WrongKindOrRole);
    assert_eq!(SamplingWriter::open(&bi, "readings").unwrap_err(), PortError::WrongKindOrRole);
    bi.channels[0].bytes -= PAGE_SIZE;
    assert_eq!(QueuingWriter::open(&bi, "readings").unwrap_err(), PortError::BadGeometry);
    assert_eq!(find(&bi, "readings").map(|c| c.msg_size), Some(64));
}

#[test]
fn ring_errors_reach_the_partition_as_port_errors() {
    let g = queuing(8, 2);
    let mut mem = Backing::new(&g);
    let mut writer = QueuingWriter::over(mem.region(), g).unwrap();
    let mut reader = QueuingReader::over(mem.region(), g).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(writer.send(&[0; 9]), Err(PortError::TooLarge));
    writer.send(b"12345").unwrap();
    writer.send(b"6").unwrap();
    assert_eq!(writer.send(b"7"), Err(PortError::Full));
    assert_eq!(writer.free_slots(), 0);
    assert_eq!(reader.pending(), 2);
    assert_eq!(reader.receive(&mut buf[..4]), Err(PortError::BufferTooSmall { needed: 5 }));
    assert_eq!(reader.receive(&mut buf), Ok(Some(5)));
    assert_eq!(&buf[..5], b"12345");
    assert_eq!(reader.receive(&mut buf), Ok(Some(1)));
    assert_eq!(reader.receive(&mut buf), Ok(None));
    assert_eq!(reader.msg_size(), 8);
    assert_eq!(writer.msg_size(), 8);
}

#[test]
fn sampling_ports_read_the_latest_value() {
    let g = sampling(12);
    let mut mem = Backing::new(&g);
    let mut reader = SamplingReader::over(mem.region(), g).unwrap();
    let mut writer = SamplingWriter::over(mem.region(), g).unwrap();
    let mut buf = [0u8; 12];
    assert_eq!(reader.read(&mut buf), Ok(None));
    writer.write(b"first").unwrap();
    writer.write(b"second!").unwrap();
    assert_eq!(reader.read(&mut buf), Ok(Some(Sample { len: 7, count: 2, fresh: true })));
    assert_eq!(&buf[..7], b"second!");
    assert_eq!(reader.read(&mut buf), Ok(Some(Sample { len: 7, count: 2, fresh: false })));
    assert_eq!(writer.write(&[0; 13]), Err(PortError::TooLarge));
    assert_eq!(reader.read(&mut buf[..3]), Err(PortError::BufferTooSmall { needed: 7 }));
    assert_eq!((reader.msg_size(), writer.msg_size()), (12, 12));
}
