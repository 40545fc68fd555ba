//! `kdrill drill`: crash this host on purpose and prove, after the reboot, that the dump its own
//! kdump service wrote opens and holds that crash (`--collect`, run by the collect unit at boot).

use anyhow::Context as _;
use kdrill::drill::{arm, collect, route::Route};
use kdrill::exit::{self, Exit};
use kdrill::readiness::source::Root;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Exit codes: 0 the drill passed (--collect) or nothing was armed, 2 the drill failed (--collect) \
                  or the host is NOT READY (nothing armed), 3 the drill could not arm or the host did not crash \
                  (it is disarmed), 64 usage error. Records: /var/lib/kdrill/drill/<id>.json; `kdrill check` \
                  reports the last one."
)]
pub struct DrillArgs {
    /// Do not ask for the host's name before crashing
    #[arg(long)]
    pub yes: bool,
    /// How the host crashes itself
    #[arg(long, value_enum, default_value_t = Route::Sysrq)]
    pub route: Route,
    /// Seconds between arming and the crash; Ctrl-C in between disarms the drill
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub delay: u64,
    /// A command run (by `sh -c`) after the collection, with KDRILL_DRILL_ID, KDRILL_DRILL_RESULT
    /// (pass or fail) and KDRILL_DRILL_RECORD (the record's path) in its environment
    #[arg(long, value_name = "CMD")]
    pub notify: Option<String>,
    /// After the reboot: find, open and judge the armed drill's dump and write its record (the
    /// collect unit runs this at boot)
    #[arg(long, conflicts_with_all = ["yes", "notify"])]
    pub collect: bool,
}

pub fn run(args: DrillArgs) -> anyhow::Result<i32> {
    let root = Root::new("/");
    if args.collect {
        let Some((path, record)) = collect::collect(&root).context("cannot collect the drill")?
        else {
            println!(
                "kdrill drill: no drill is armed ({} is absent)",
                kdrill::readiness::lastdrill::ARMED
            );
            return Ok(exit::SUCCESS);
        };
        println!("{}", collect::line(&record));
        println!("kdrill drill: record {}", path.display());
        if let Some(said) = collect::notify(&record, &path) {
            println!("kdrill drill: {said}");
        }
        return Ok(if record.success {
            exit::SUCCESS
        } else {
            exit::NEGATIVE
        });
    }
    if !args.yes && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(Exit::usage(
            "kdrill drill asks for the host's name on a terminal before crashing it: run it on one, or give --yes",
        )
        .into());
    }
    let plan = arm::Plan {
        route: args.route,
        yes: args.yes,
        delay: args.delay,
        notify: args.notify,
    };
    match arm::run(&root, &plan) {
        Ok(never) => match never {},
        Err(err @ kdrill::drill::DrillError::NotReady { .. }) => {
            Err(Exit::negative("not-ready", err.to_string()).into())
        }
        Err(err @ kdrill::drill::DrillError::NotConfirmed { .. }) => {
            Err(Exit::usage(err.to_string()).into())
        }
        Err(err) => Err(anyhow::Error::new(err)),
    }
}
