//! Integration tests: the `kdrill` binary's CLI, fixture trees, the crasher module built for real, one real VM case that must FAIL, the Debian image's broken configurations (real three-boot cases that must FAIL), and the host-package step in a chroot of a fresh machine.
mod calibrate;
mod check;
mod crasher;
mod drgn;
mod fetch;
mod host;
mod inspect;
mod install;
mod needs;
mod production;
mod support;
mod tidy;
mod tidy_layers;
mod verify;
mod vmlinux;
mod xtask;
