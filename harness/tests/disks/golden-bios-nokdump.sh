#!/bin/bash
# golden-bios-nokdump: golden-bios with kdump-tools switched off (USE_KDUMP=0 in
# /etc/default/kdump-tools), everything else as it is. Made from golden-bios without a second
# build: a qcow2 overlay on it, edited with guestfish, flattened into a standalone file.
#
# Usage: golden-bios-nokdump.sh GOLDEN-BIOS.qcow2 OUT.qcow2 WORKDIR
set -euo pipefail
base=${1:?usage: golden-bios-nokdump.sh GOLDEN-BIOS.qcow2 OUT.qcow2 WORKDIR}
out=${2:?usage: golden-bios-nokdump.sh GOLDEN-BIOS.qcow2 OUT.qcow2 WORKDIR}
work=${3:?usage: golden-bios-nokdump.sh GOLDEN-BIOS.qcow2 OUT.qcow2 WORKDIR}
mkdir -p "$work"
overlay=$work/overlay.qcow2
rm -f "$overlay"
qemu-img create -q -f qcow2 -b "$(realpath "$base")" -F qcow2 "$overlay"
timeout 900 guestfish --format=qcow2 -a "$overlay" <<'GF'
run
mount /dev/vg0/root /
sh "sed -i 's/^USE_KDUMP=.*/USE_KDUMP=0/' /etc/default/kdump-tools"
sh "grep -qx USE_KDUMP=0 /etc/default/kdump-tools"
umount /
GF
timeout 900 qemu-img convert -O qcow2 "$overlay" "$out"
rm -f "$overlay"
echo "golden-bios-nokdump: done: $out"
