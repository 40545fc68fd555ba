//! `kdrill agent`: run inside an operator's disk image by kdrill's own unit, for one test boot
//! of a disposable overlay (`kdrill::agent`). Not for a real host: `kdrill drill` is.

use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "kdrill verify --image DISK puts this agent into a disposable overlay of the disk image \
                  (by a cloud-init seed or libguestfs) and runs it from the case disk. It reports on the \
                  status port, crashes the guest by the case's route, and after the image's own capture \
                  and reboot copies the dump folder onto the case disk.\n\
                  Exit codes: 0 done (the guest powers off or crashes), 1 a failure it reported on the status port."
)]
pub struct AgentArgs {
    /// Where the case disk (LABEL=kdrill-case) is mounted
    #[arg(long, value_name = "DIR", default_value = "/run/kdrill-case")]
    pub case: PathBuf,
    /// The serial port kdrill reads status lines from
    #[arg(long, value_name = "TTY", default_value = "/dev/ttyS1")]
    pub port: PathBuf,
}

pub fn run(args: AgentArgs) -> anyhow::Result<i32> {
    Ok(kdrill::agent::Agent::new(&args.case, &args.port).run())
}
