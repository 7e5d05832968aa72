//! `parseltongue info TABLE.bin`: what a compiled table needs from the machine that boots
//! it, as shell assignments (`cores=N ram_mib=M images="a.elf b.elf"`), for the scripts
//! that size the emulator and fill the ESP. The table is read with the hypervisor's own
//! reader and re-validator (`hallows_abi::table::Table::load`), so the scripts never parse
//! the binary format themselves and a table the hypervisor would refuse is refused here.

use hallows_abi::table::Table;

/// The shell assignments for the table in `bytes`, or why it cannot be read.
pub fn shell_assignments(bytes: &[u8]) -> Result<String, String> {
    let table = Table::load(bytes).map_err(|e| format!("not a valid partition table: {e}"))?;
    let platform = table.platform();
    let mut max_core = None::<u32>;
    let mut ram = platform.hv_reserved_bytes.get();
    let mut images = Vec::new();
    for p in table.partitions.iter() {
        max_core = max_core.max(p.cores.max());
        ram += p.ram_bytes.get();
        images.push(table.text(p.image));
        // A Linux partition's initramfs is a file on the ESP too.
        let initramfs = table.text(p.initramfs);
        if !initramfs.is_empty() {
            images.push(initramfs);
        }
    }
    for s in table.schedules.iter() {
        max_core = max_core.max(s.cores.max());
    }
    for c in table.channels.iter() {
        ram += c.bytes.get();
    }
    let cores = max_core.map_or(0, |c| c + 1).max(platform.cores.get()).max(1);
    Ok(format!("cores={cores} ram_mib={} images=\"{}\"", ram >> 20, images.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(path: &str) -> Vec<u8> {
        let source = std::fs::read_to_string(format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let compiled = crate::compile::compile_source(&source);
        compiled.model.expect("the config compiles").to_bytes()
    }

    #[test]
    fn the_demo_needs_four_cores_its_memory_and_its_images() {
        let info = shell_assignments(&compiled("configs/demo.pt")).unwrap();
        // 32 MiB reserved + 3 × 4 MiB + 256 MiB Linux + the channel's page(s).
        assert!(info.starts_with("cores=4 ram_mib=300 "), "{info}");
        assert!(
            info.ends_with("images=\"hello.elf periodic.elf logger.elf vmlinux initramfs.cpio\""),
            "{info}"
        );
    }

    #[test]
    fn garbage_is_refused_with_the_readers_reason() {
        assert!(shell_assignments(b"not a table").unwrap_err().starts_with("not a valid partition table"));
        let mut bytes = compiled("configs/tests/two-cores.pt");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xFF;
        assert!(shell_assignments(&bytes).is_err(), "a corrupt table is refused");
    }
}
