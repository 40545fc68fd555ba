#!/bin/bash
# golden-bios: Debian 13 (trixie) as an operator's own disk image would be, built from Debian's
# packages by a real image builder (mmdebstrap for the tree, libguestfs for the disk), not by
# kdrill's recipe. BIOS boot on GPT (a bios_grub partition, grub-pc), LVM volume group vg0 with
# the root on XFS and /var/crash on ext4, kdump-tools with Debian's own crashkernel= (its
# /etc/default/grub.d snippet, untouched), cloud-init, the console on ttyS0. No kdrill file.
#
# Usage: golden-bios.sh OUT.qcow2 WORKDIR
#   OUT.qcow2  the image to write (replaced)
#   WORKDIR    scratch space (about 1.5 GiB: the root tarball)
# Environment: libguestfs' (kdrill::guest::guestfs::Guestfs::command sets it); MIRROR (default
# http://deb.debian.org/debian), SECURITY (default http://deb.debian.org/debian-security).
# Needs root (mmdebstrap's root mode), mmdebstrap, qemu-img, guestfish, libguestfs-xfs.
set -euo pipefail
out=${1:?usage: golden-bios.sh OUT.qcow2 WORKDIR}
work=${2:?usage: golden-bios.sh OUT.qcow2 WORKDIR}
mirror=${MIRROR:-http://deb.debian.org/debian}
security=${SECURITY:-http://deb.debian.org/debian-security}
mkdir -p "$work"
tar=$work/root.tar
disk=$work/disk.qcow2
step() { echo "golden-bios: $(date -u +%T) $*"; }

# The initramfs is made in the tree, at native speed on the host, not in the emulated appliance
# (minutes there). The root's device does not exist yet, so initramfs-tools' fsck hook is told its
# type for that one run (FSTYPE in a conf.d file removed after): the initrd then holds fsck.xfs as
# an installed system's does. Its lvm2 hook is unconditional; MODULES=most takes dm-mod and xfs.
# The root is found by the kernel's root= (update-grub), not by /etc/fstab.

step "mmdebstrap trixie"
rm -f "$tar"
# grub-pc/install_devices_empty: grub-pc's postinst in a tree with no disk must not ask.
# zstd: initramfs-tools' compressor (without it: "No zstd ..., using gzip").
timeout 1800 env LC_ALL=C.UTF-8 mmdebstrap --mode=root --format=tar --components=main \
    --include=linux-image-amd64,grub-pc,lvm2,xfsprogs,e2fsprogs,kdump-tools,kexec-tools,makedumpfile,cloud-init,systemd-sysv,udev,initramfs-tools,zstd,openssh-server,procps,iproute2,dbus \
    --essential-hook='echo "grub-pc grub-pc/install_devices_empty boolean true" | chroot "$1" debconf-set-selections' \
    --customize-hook='echo golden-bios > "$1/etc/hostname"; printf "127.0.0.1 localhost\n127.0.1.1 golden-bios\n" > "$1/etc/hosts"' \
    --customize-hook='echo root:kdt | chroot "$1" chpasswd' \
    --customize-hook='sed -i -e "s/^GRUB_CMDLINE_LINUX=.*/GRUB_CMDLINE_LINUX=\"console=ttyS0,115200n8\"/" -e "s/^GRUB_TIMEOUT=.*/GRUB_TIMEOUT=1/" "$1/etc/default/grub"; printf "GRUB_TERMINAL=\"console serial\"\nGRUB_SERIAL_COMMAND=\"serial --unit=0 --speed=115200\"\n" >> "$1/etc/default/grub"' \
    --customize-hook='grep -q "^USE_KDUMP=1" "$1/etc/default/kdump-tools"; grep -q crashkernel= "$1/etc/default/grub.d/kdump-tools.cfg"' \
    --customize-hook='echo FSTYPE=xfs > "$1/etc/initramfs-tools/conf.d/zz-golden-build"; chroot "$1" update-initramfs -u -k all; rm "$1/etc/initramfs-tools/conf.d/zz-golden-build"' \
    trixie "$tar" \
    "deb $mirror trixie main" \
    "deb $mirror trixie-updates main" \
    "deb $security trixie-security main"

step "guestfish: partition, LVM, mkfs, tar-in, grub"
rm -f "$disk"
qemu-img create -q -f qcow2 "$disk" 6G
# GPT types: 21686148-… BIOS boot (grub-pc's core.img), E6D6D379-… Linux LVM.
# grub-install finds the image's disk by its bios_grub partition's name: inside the appliance,
# /dev/sda is not always it (the appliance's own root disk probed first in two of three runs).
timeout 1800 guestfish --format=qcow2 -a "$disk" <<GF
set-smp 2
run
part-init /dev/sda gpt
part-add /dev/sda p 2048 4095
part-add /dev/sda p 4096 -34
part-set-gpt-type /dev/sda 1 21686148-6449-6E6F-744E-656564454649
part-set-name /dev/sda 1 bios
part-set-gpt-type /dev/sda 2 E6D6D379-F507-44C2-A23C-238F2A3DF928
part-set-name /dev/sda 2 lvm
pvcreate /dev/sda2
vgcreate vg0 /dev/sda2
lvcreate root vg0 3584
lvcreate crash vg0 1536
mkfs xfs /dev/vg0/root label:root
mkfs ext4 /dev/vg0/crash label:crash
mount /dev/vg0/root /
tar-in $tar / xattrs:true
mkdir-p /var/crash
mount /dev/vg0/crash /var/crash
sh "printf 'UUID=%s / xfs defaults 0 1\nUUID=%s /var/crash ext4 defaults 0 2\n' \$(blkid -s UUID -o value /dev/mapper/vg0-root) \$(blkid -s UUID -o value /dev/mapper/vg0-crash) > /etc/fstab"
sh "disk=\$(readlink -f /dev/disk/by-partlabel/bios) && grub-install --target=i386-pc \${disk%1}"
sh "update-grub"
sh "grep -q 'root=/dev/mapper/vg0-root' /boot/grub/grub.cfg"
sh "grep -q 'crashkernel=' /boot/grub/grub.cfg"
sh "grep -q 'console=ttyS0' /boot/grub/grub.cfg"
sh "lsinitramfs /boot/initrd.img-* | grep -q 'sbin/fsck.xfs'"
sh "lsinitramfs /boot/initrd.img-* | grep -q 'sbin/lvm'"
umount /var/crash
umount /
GF
rm -f "$tar"
mv "$disk" "$out"
step "done: $out"
