//! `kdrill doctor`: the host programs kdrill needs, what is missing or in conflict and the commands that fix it; `--install` runs the host-package step (logic in `kdrill::host::doctor`).

pub use kdrill::host::doctor::DoctorArgs;

pub fn run(args: DoctorArgs) -> anyhow::Result<i32> {
    kdrill::host::doctor::run(&args)
}
