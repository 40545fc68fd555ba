//! Check 13: a virtual machine can also be dumped by its hypervisor, independent of kdump (INFO only).

use crate::readiness::{check, Check, Context, Status};

const WHY: &str = "a hypervisor can save a guest's memory, or send it an NMI, even when the guest's own kdump is broken";

/// Check 13: DMI vendor/product, `/sys/hypervisor/type`, and the cpuid hypervisor bit in /proc/cpuinfo.
pub fn hypervisor(cx: &Context) -> Check {
    let snap = cx.snap;
    let vendor = snap.dmi_vendor.as_deref().ok().unwrap_or("");
    let product = snap.dmi_product.as_deref().ok().unwrap_or("");
    let xen = snap
        .hypervisor_type
        .as_deref()
        .ok()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let flag = snap.cpuinfo.as_deref().ok().map(|text| {
        text.lines()
            .filter(|l| l.starts_with("flags"))
            .any(|l| l.split_whitespace().any(|f| f == "hypervisor"))
    });
    let dmi = format!("{vendor} {product}").trim().to_string();
    let known = hint(&dmi.to_lowercase(), xen);
    if flag.is_none() && dmi.is_empty() && xen.is_none() {
        return check(
            13,
            Status::Skip,
            "cannot tell: /proc/cpuinfo and /sys/class/dmi/id unreadable",
            WHY,
        );
    }
    let virtual_machine = flag == Some(true) || xen.is_some() || known.is_some();
    if !virtual_machine {
        let what = if dmi.is_empty() {
            "bare metal".to_string()
        } else {
            format!("bare metal ({dmi})")
        };
        return check(
            13,
            Status::Info,
            format!("{what}: no hypervisor can dump it; kdump or a BMC NMI is the only route"),
            WHY,
        );
    }
    let (name, how) = known.unwrap_or((
        "unknown hypervisor",
        "ask the hypervisor's operator for a guest memory dump or an injected NMI",
    ));
    let seen_dmi = if dmi.is_empty() {
        String::new()
    } else {
        format!(", {dmi}")
    };
    check(
        13,
        Status::Info,
        format!("virtual machine ({name}{seen_dmi})"),
        WHY,
    )
    .details(vec![how.to_string()])
}

/// The hypervisor's name and how it can dump or NMI a guest.
fn hint(dmi: &str, xen: Option<&str>) -> Option<(&'static str, &'static str)> {
    if xen == Some("xen") || dmi.contains("xen") {
        return Some((
            "Xen",
            "from dom0: `xl dump-core <domain> <file>`; `xl trigger <domain> nmi` sends an NMI",
        ));
    }
    if dmi.contains("amazon ec2") {
        return Some(("Amazon EC2", "`aws ec2 send-diagnostic-interrupt --instance-id <id>` sends an NMI (needs kernel.unknown_nmi_panic=1)"));
    }
    if dmi.contains("qemu")
        || dmi.contains("kvm")
        || dmi.contains("red hat")
        || dmi.contains("openstack")
    {
        return Some(("QEMU/KVM", "on the host: `virsh dump --memory-only --format kdump-zlib <domain> <file>` (QMP dump-guest-memory); `virsh inject-nmi <domain>`"));
    }
    if dmi.contains("vmware") {
        return Some((
            "VMware",
            "suspend or snapshot the VM and convert its .vmss/.vmsn with `vmss2core`",
        ));
    }
    if dmi.contains("microsoft") {
        return Some(("Hyper-V", "`Debug-VM -InjectNonMaskableInterrupt` sends an NMI (needs kernel.unknown_nmi_panic=1)"));
    }
    if dmi.contains("virtualbox") || dmi.contains("innotek") {
        return Some((
            "VirtualBox",
            "`VBoxManage debugvm <vm> dumpvmcore --filename <file>`",
        ));
    }
    if dmi.contains("google") {
        return Some((
            "Google Compute Engine",
            "the serial console can send SysRq; ask the platform for an NMI",
        ));
    }
    None
}
