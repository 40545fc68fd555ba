#!/bin/bash
# golden-uefi: Debian 12 (bookworm) as an operator's own disk image would be, built from Debian's
# packages by a real image builder (mmdebstrap for the tree, libguestfs for the disk), not by
# kdrill's recipe. UEFI boot on GPT (an ESP with grub-efi-amd64 at the removable path
# EFI/BOOT/BOOTX64.EFI, so no NVRAM entry is needed), the root on ext4, kdump-tools with Debian's
# own crashkernel= (its /etc/default/grub.d snippet, untouched), no cloud-init, the console on
# ttyS0. No kdrill file.
#
# Usage: golden-uefi.sh OUT.qcow2 WORKDIR   (environment and needs as golden-bios.sh)
set -euo pipefail
out=${1:?usage: golden-uefi.sh OUT.qcow2 WORKDIR}
work=${2:?usage: golden-uefi.sh OUT.qcow2 WORKDIR}
mirror=${MIRROR:-http://deb.debian.org/debian}
security=${SECURITY:-http://deb.debian.org/debian-security}
mkdir -p "$work"
tar=$work/root.tar
disk=$work/disk.qcow2
step() { echo "golden-uefi: $(date -u +%T) $*"; }

# The initramfs is made in the tree, on the host, at native speed (4 min in the emulated
# appliance), initramfs-tools' fsck hook told the root's type, as in golden-bios.sh.

step "mmdebstrap bookworm"
rm -f "$tar"
timeout 1800 env LC_ALL=C.UTF-8 mmdebstrap --mode=root --format=tar --components=main \
    --include=linux-image-amd64,grub-efi-amd64,e2fsprogs,dosfstools,kdump-tools,kexec-tools,makedumpfile,systemd-sysv,udev,initramfs-tools,zstd,procps,dbus \
    --customize-hook='echo golden-uefi > "$1/etc/hostname"; printf "127.0.0.1 localhost\n127.0.1.1 golden-uefi\n" > "$1/etc/hosts"' \
    --customize-hook='echo root:kdt | chroot "$1" chpasswd' \
    --customize-hook='sed -i -e "s/^GRUB_CMDLINE_LINUX=.*/GRUB_CMDLINE_LINUX=\"console=ttyS0,115200n8\"/" -e "s/^GRUB_TIMEOUT=.*/GRUB_TIMEOUT=1/" "$1/etc/default/grub"; printf "GRUB_TERMINAL=\"console serial\"\nGRUB_SERIAL_COMMAND=\"serial --unit=0 --speed=115200\"\n" >> "$1/etc/default/grub"' \
    --customize-hook='grep -q "^USE_KDUMP=1" "$1/etc/default/kdump-tools"; grep -q crashkernel= "$1/etc/default/grub.d/kdump-tools.cfg"' \
    --customize-hook='echo FSTYPE=ext4 > "$1/etc/initramfs-tools/conf.d/zz-golden-build"; chroot "$1" update-initramfs -u -k all; rm "$1/etc/initramfs-tools/conf.d/zz-golden-build"' \
    bookworm "$tar" \
    "deb $mirror bookworm main" \
    "deb $mirror bookworm-updates main" \
    "deb $security bookworm-security main"

step "guestfish: partition, mkfs, tar-in, grub"
rm -f "$disk"
qemu-img create -q -f qcow2 "$disk" 4G
# GPT types: C12A7328-… EFI system partition, 0FC63DAF-… Linux filesystem.
# In `sh`, the partitions by name: /dev/sda inside the appliance is not always the image.
timeout 1800 guestfish --format=qcow2 -a "$disk" <<GF
set-smp 2
run
part-init /dev/sda gpt
part-add /dev/sda p 2048 526335
part-add /dev/sda p 526336 -34
part-set-gpt-type /dev/sda 1 C12A7328-F81F-11D2-BA4B-00A0C93EC93B
part-set-name /dev/sda 1 esp
part-set-gpt-type /dev/sda 2 0FC63DAF-8483-4772-8E79-3D69D8477DE4
part-set-name /dev/sda 2 root
mkfs vfat /dev/sda1 label:ESP
mkfs ext4 /dev/sda2 label:root
mount /dev/sda2 /
tar-in $tar / xattrs:true
mkdir-p /boot/efi
mount /dev/sda1 /boot/efi
sh "printf 'UUID=%s / ext4 errors=remount-ro 0 1\nUUID=%s /boot/efi vfat umask=0077 0 1\n' \$(blkid -s UUID -o value /dev/disk/by-partlabel/root) \$(blkid -s UUID -o value /dev/disk/by-partlabel/esp) > /etc/fstab"
sh "! grep -q 'UUID= ' /etc/fstab"
sh "grub-install --target=x86_64-efi --efi-directory=/boot/efi --removable --no-nvram"
sh "update-grub"
sh "test -f /boot/efi/EFI/BOOT/BOOTX64.EFI"
sh "grep -q 'crashkernel=' /boot/grub/grub.cfg"
sh "grep -q 'console=ttyS0' /boot/grub/grub.cfg"
sh "lsinitramfs /boot/initrd.img-* | grep -q 'sbin/e2fsck'"
umount /boot/efi
umount /
GF
rm -f "$tar"
mv "$disk" "$out"
step "done: $out"
