#!/bin/bash
# golden-bios-nocrashkernel: golden-bios with no crashkernel= on the kernel command line:
# kdump-tools' /etc/default/grub.d snippet removed and update-grub run again inside, kdump-tools
# still enabled (USE_KDUMP=1), so the guest has kdump-tools wanting a reservation it never gets.
# Made from golden-bios without a second build: a qcow2 overlay on it, edited with guestfish,
# flattened into a standalone file.
#
# Usage: golden-bios-nocrashkernel.sh GOLDEN-BIOS.qcow2 OUT.qcow2 WORKDIR
set -euo pipefail
base=${1:?usage: golden-bios-nocrashkernel.sh GOLDEN-BIOS.qcow2 OUT.qcow2 WORKDIR}
out=${2:?usage: golden-bios-nocrashkernel.sh GOLDEN-BIOS.qcow2 OUT.qcow2 WORKDIR}
work=${3:?usage: golden-bios-nocrashkernel.sh GOLDEN-BIOS.qcow2 OUT.qcow2 WORKDIR}
mkdir -p "$work"
overlay=$work/overlay.qcow2
rm -f "$overlay"
qemu-img create -q -f qcow2 -b "$(realpath "$base")" -F qcow2 "$overlay"
timeout 900 guestfish --format=qcow2 -a "$overlay" <<'GF'
run
mount /dev/vg0/root /
sh "rm /etc/default/grub.d/kdump-tools.cfg"
sh "update-grub"
sh "! grep -q 'crashkernel=' /boot/grub/grub.cfg"
sh "grep -q '^USE_KDUMP=1' /etc/default/kdump-tools"
umount /
GF
timeout 900 qemu-img convert -O qcow2 "$overlay" "$out"
rm -f "$overlay"
echo "golden-bios-nocrashkernel: done: $out"
