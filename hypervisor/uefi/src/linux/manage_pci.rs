//! Linux's management PCI function: every Linux partition gets one (its place from
//! `hallows_core::bridge::linux_manage`, the same decision `boot_plan::partition_ept`
//! checked the EPT against), whatever its privileges: a partition without
//! `privileges manage` is refused by the decisions and the refusal counted, exactly as for
//! the `Manage` hypercall. The configuration header sits beside the channel functions
//! behind the partition's PCI filter; the mailbox (`hallows_vmm::manage_pci::Mailbox`) is
//! on its MMIO bus and serves each request as this partition's.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;

use hallows_abi::manage::mailbox::MAILBOX_BYTES;
use hallows_abi::table::Table;
use hallows_vmm::manage_pci::{Mailbox, MailboxService, ManageFunction};
use hallows_vmm::mmio_bus::MmioBus;

use super::bridge::LinuxPci;
use crate::hvlog;
use crate::partition::Partition;

/// Serves the requests of one Linux partition's mailbox, as that partition's.
pub struct LinuxRequests {
    partition: usize,
}

impl MailboxService for LinuxRequests {
    fn serve(&self, request: &[u8], response: &mut [u8]) -> usize {
        crate::manage::linux_request(self.partition, request, response)
    }
}

/// A Linux partition's mailbox.
pub type LinuxMailbox = Mailbox<LinuxRequests>;

/// Adds Linux partition `part`'s management function to `pci` (header and filter) and
/// registers its mailbox on `mmio`. Logs where Linux finds it, or that it has none (no
/// room for a 32-bit BAR below 4 GiB past its RAM and MMIO).
pub fn prepare<const RANGES: usize>(
    table: &Table,
    part: &Partition,
    pci: &mut LinuxPci,
    mmio: &mut MmioBus<'static, RANGES>,
) -> Result<Option<&'static LinuxMailbox>, String> {
    let Some(manage) = hallows_core::bridge::linux_manage(table, part.index).map_err(|e| format!("{e}"))?
    else {
        hvlog!(
            "partition {}: no management function: no room for its mailbox below 4 GiB past its RAM and MMIO",
            part.name
        );
        return Ok(None);
    };
    let mailbox_gpa = u32::try_from(manage.mailbox_gpa).map_err(|_| format!("{manage}: above 4 GiB"))?;
    let bdf = pci
        .functions
        .add_manage(ManageFunction { device: manage.device, mailbox_gpa })
        .map_err(|e| format!("{manage}: {e:?}"))?;
    pci.filter.allow(bdf).map_err(|e| format!("{manage}: PCI filter: {e:?}"))?;
    // Leaked: the partition's devices live as long as the hypervisor.
    let mailbox: &'static LinuxMailbox =
        Box::leak(Box::new(Mailbox::new(LinuxRequests { partition: part.index })));
    mmio.register(manage.mailbox_gpa, MAILBOX_BYTES, mailbox).map_err(|e| format!("{manage}: {e:?}"))?;
    hvlog!("partition {}: {manage}", part.name);
    Ok(Some(mailbox))
}
