//! Bisecting the smallest `crashkernel=` that still captures, for one memory size (pure: the
//! probes come from a [`Prober`], a real case in `calibrate::run`, a fake in tests).
//!
//! From a bracket chosen by the heuristics (a ceiling expected to work, a floor expected not
//! to), widened when a guess is wrong, then halved on 32 MiB boundaries while the bracket is wider
//! than 32 MiB, then on 8 MiB ones down to 8 MiB. A probe that failed for a reason unrelated to
//! memory (a boot flake, a timeout before the capture) is retried, never counted as too small.
//! Last, the size one fine step above the answer is probed too: a result that is not monotonic
//! (a size works, a larger one fails) is reported, not hidden.

use serde::{Deserialize, Serialize};

use crate::calibrate::{FailureMode, Outcome};

/// One probe: a case run with `crashkernel=<mib>M`; [`Prober`] runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub crashkernel_mib: u64,
    pub outcome: Outcome,
    pub seconds: f64,
    /// The case's attempt folder.
    pub evidence: String,
}

pub trait Prober {
    fn probe(&mut self, crashkernel_mib: u64) -> Probe;
}

/// Where the search starts and how fine it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bracket {
    /// Expected to fail (halved when it works), and to work (doubled when it fails).
    pub floor_mib: u64,
    pub ceiling_mib: u64,
    /// No reservation is tried above this (the guest's RAM left for the first kernel).
    pub max_mib: u64,
    /// Nor below this.
    pub min_mib: u64,
    pub coarse_mib: u64,
    pub fine_mib: u64,
    /// How often a probe with an unrelated failure is run again.
    pub retries: u32,
}

/// What one memory size came to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SizeResult {
    pub memory_mib: u64,
    /// The smallest size the bisection found working.
    pub smallest_working_mib: Option<u64>,
    /// The largest size found failing for lack of memory.
    pub largest_failing_mib: Option<u64>,
    /// How the largest failing size failed.
    pub failure_below: Option<FailureMode>,
    /// Every probe, in the order it ran (retries included).
    pub probes: Vec<Probe>,
    /// Sizes whose verdicts contradict each other (`works at 88M, fails at 96M: …`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub non_monotonic: Vec<String>,
    /// Why the search stopped early, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unfinished: Option<String>,
}

/// What the search knows while it runs (for progress lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Narrowing {
    pub failing_mib: Option<u64>,
    pub working_mib: Option<u64>,
    pub probing_mib: u64,
    pub probes_so_far: usize,
    /// Probes still expected (the bisection's remaining steps; a guess).
    pub probes_left: usize,
}

/// A probe's verdict once retries are spent: works, too small, or unknown (why).
enum Verdict {
    Works,
    TooSmall,
    Unknown(String),
}

struct Search<'a> {
    prober: &'a mut dyn Prober,
    bracket: Bracket,
    probes: Vec<Probe>,
    progress: &'a mut dyn FnMut(Narrowing),
    failing: Option<(u64, FailureMode)>,
    working: Option<u64>,
}

impl Search<'_> {
    /// What the probes showed, contradictions included.
    fn finish(self, memory_mib: u64, unfinished: Option<String>) -> SizeResult {
        let non_monotonic = contradictions(&self.probes);
        SizeResult {
            memory_mib,
            smallest_working_mib: self.working,
            largest_failing_mib: self.failing.as_ref().map(|f| f.0),
            failure_below: self.failing.map(|f| f.1),
            probes: self.probes,
            non_monotonic,
            unfinished,
        }
    }

    fn run(&mut self, mib: u64) -> Verdict {
        let mut last = String::new();
        for _ in 0..=self.bracket.retries {
            let narrowing = Narrowing {
                failing_mib: self.failing.as_ref().map(|f| f.0),
                working_mib: self.working,
                probing_mib: mib,
                probes_so_far: self.probes.len(),
                probes_left: self.left(),
            };
            (self.progress)(narrowing);
            let probe = self.prober.probe(mib);
            let outcome = probe.outcome.clone();
            self.probes.push(probe);
            match outcome {
                Outcome::Works => {
                    self.working = Some(self.working.map_or(mib, |w| w.min(mib)));
                    return Verdict::Works;
                }
                Outcome::TooSmall(mode) => {
                    if self.failing.as_ref().is_none_or(|f| f.0 < mib) {
                        self.failing = Some((mib, mode.clone()));
                    }
                    return Verdict::TooSmall;
                }
                Outcome::Unrelated(why) => last = why,
            }
        }
        Verdict::Unknown(last)
    }

    /// The bisection steps still to go from the current bracket.
    fn left(&self) -> usize {
        let (Some((lo, _)), Some(hi)) = (&self.failing, self.working) else {
            return 3;
        };
        let mut width = hi.saturating_sub(*lo);
        let mut steps = 0;
        while width > self.bracket.fine_mib {
            width /= 2;
            steps += 1;
        }
        steps
    }
}

/// The next size to try strictly between `lo` and `hi`, on the step the bracket's width calls for.
fn midpoint(lo: u64, hi: u64, bracket: &Bracket) -> u64 {
    let step = if hi - lo > bracket.coarse_mib {
        bracket.coarse_mib
    } else {
        bracket.fine_mib
    };
    let mid = (lo + (hi - lo) / 2) / step * step;
    if mid <= lo {
        (lo / step + 1) * step
    } else {
        mid
    }
}

/// Searches the smallest working reservation for `memory_mib`.
pub fn bisect(
    prober: &mut dyn Prober,
    memory_mib: u64,
    bracket: Bracket,
    progress: &mut dyn FnMut(Narrowing),
) -> SizeResult {
    let mut search = Search {
        prober,
        bracket,
        probes: Vec::new(),
        progress,
        failing: None,
        working: None,
    };
    let unfinished = narrow(&mut search);
    search.finish(memory_mib, unfinished)
}

/// Probes exactly `sizes` (MiB, largest first) instead of searching: a quick check of a known
/// boundary. The result reads as a search's would.
pub fn probe_list(
    prober: &mut dyn Prober,
    memory_mib: u64,
    sizes: &[u64],
    retries: u32,
    progress: &mut dyn FnMut(Narrowing),
) -> SizeResult {
    let mut search = Search {
        prober,
        bracket: Bracket {
            floor_mib: 0,
            ceiling_mib: 0,
            max_mib: u64::MAX,
            min_mib: 0,
            coarse_mib: 32,
            fine_mib: 8,
            retries,
        },
        probes: Vec::new(),
        progress,
        failing: None,
        working: None,
    };
    let mut sizes = sizes.to_vec();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    sizes.dedup();
    let mut unfinished = None;
    for mib in sizes {
        if let Verdict::Unknown(why) = search.run(mib) {
            unfinished.get_or_insert(format!("{mib}M: {why}"));
        }
    }
    search.finish(memory_mib, unfinished)
}

/// Runs the search; `Some(why)` when it had to stop early.
fn narrow(s: &mut Search) -> Option<String> {
    let b = s.bracket;
    // A ceiling that works: double a failing guess up to the maximum.
    let mut hi = b.ceiling_mib.clamp(b.min_mib, b.max_mib);
    loop {
        match s.run(hi) {
            Verdict::Works => break,
            Verdict::TooSmall if hi < b.max_mib => hi = (hi * 2).min(b.max_mib),
            Verdict::TooSmall => {
                return Some(format!(
                    "even {}M, the most this guest can spare, failed",
                    hi
                ))
            }
            Verdict::Unknown(why) => return Some(format!("{hi}M: {why}")),
        }
    }
    // A floor that fails: halve a working guess down to the minimum.
    let mut lo = match s.failing.as_ref() {
        Some((failed, _)) if *failed < hi => *failed,
        _ => b.floor_mib.min(hi / 2).max(b.min_mib),
    };
    while s.failing.as_ref().is_none_or(|f| f.0 != lo) {
        if lo >= hi {
            break;
        }
        match s.run(lo) {
            Verdict::Works => {
                hi = lo;
                if lo <= b.min_mib {
                    return Some(format!("{lo}M, the smallest tried, already works"));
                }
                lo = (lo / 2).max(b.min_mib);
            }
            Verdict::TooSmall => break,
            Verdict::Unknown(why) => return Some(format!("{lo}M: {why}")),
        }
    }
    while hi - lo > b.fine_mib {
        let mid = midpoint(lo, hi, &b);
        if mid >= hi {
            break;
        }
        match s.run(mid) {
            Verdict::Works => hi = mid,
            Verdict::TooSmall => lo = mid,
            Verdict::Unknown(why) => {
                return Some(format!(
                    "{mid}M: {why}; the answer lies between {lo}M and {hi}M"
                ))
            }
        }
    }
    // One step above the answer must work too (a failure there is a contradiction).
    let above = hi + b.fine_mib;
    if above <= b.max_mib && !s.probes.iter().any(|p| p.crashkernel_mib == above) {
        if let Verdict::Unknown(why) = s.run(above) {
            return Some(format!("{above}M (the check one step above): {why}"));
        }
    }
    None
}

/// Working sizes below failing ones.
fn contradictions(probes: &[Probe]) -> Vec<String> {
    let mut found = Vec::new();
    for works in probes.iter().filter(|p| p.outcome == Outcome::Works) {
        for fails in probes.iter() {
            if let Outcome::TooSmall(mode) = &fails.outcome {
                if fails.crashkernel_mib > works.crashkernel_mib {
                    found.push(format!(
                        "works at {}M but failed at {}M ({}): see {}",
                        works.crashkernel_mib,
                        fails.crashkernel_mib,
                        mode.word(),
                        fails.evidence
                    ));
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake guest: works from `threshold` MiB up; `flaky` sizes fail unrelatedly `n` times;
    /// `liar` gives a wrong verdict.
    struct Fake {
        threshold: u64,
        flaky: Vec<(u64, u32)>,
        liar: Option<u64>,
        asked: Vec<u64>,
    }

    impl Prober for Fake {
        fn probe(&mut self, mib: u64) -> Probe {
            self.asked.push(mib);
            let outcome =
                if let Some((_, n)) = self.flaky.iter_mut().find(|(s, n)| *s == mib && *n > 0) {
                    *n -= 1;
                    Outcome::Unrelated("no sign of the first boot's init within 120s".into())
                } else if (mib >= self.threshold) != (self.liar == Some(mib)) {
                    Outcome::Works
                } else if mib < 72 {
                    Outcome::TooSmall(FailureMode::KexecCannotLoad)
                } else {
                    Outcome::TooSmall(FailureMode::CaptureOom)
                };
            Probe {
                crashkernel_mib: mib,
                outcome,
                seconds: 20.0,
                evidence: format!("runs/{mib}"),
            }
        }
    }

    fn fake(threshold: u64) -> Fake {
        let (flaky, liar, asked) = (vec![], None, vec![]);
        Fake {
            threshold,
            flaky,
            liar,
            asked,
        }
    }

    const BRACKET: Bracket = Bracket {
        floor_mib: 64,
        ceiling_mib: 128,
        max_mib: 512,
        min_mib: 16,
        coarse_mib: 32,
        fine_mib: 8,
        retries: 2,
    };

    fn run(prober: &mut Fake, bracket: Bracket) -> SizeResult {
        bisect(prober, 1024, bracket, &mut |_| {})
    }

    #[test]
    fn the_bracket_narrows_to_eight_mib_in_few_probes() {
        let mut f = fake(96);
        let r = run(&mut f, BRACKET);
        assert_eq!(f.asked, [128, 64, 96, 80, 88, 104]);
        assert_eq!(r.smallest_working_mib, Some(96));
        assert_eq!(r.largest_failing_mib, Some(88));
        assert_eq!(r.failure_below, Some(FailureMode::CaptureOom));
        assert!(r.non_monotonic.is_empty() && r.unfinished.is_none());
    }

    #[test]
    fn wrong_guesses_widen_the_bracket() {
        // The ceiling fails: double it. The floor works: halve it.
        let mut f = fake(200);
        let r = run(&mut f, BRACKET);
        assert_eq!(&f.asked[..3], [128, 256, 192]);
        assert_eq!(r.smallest_working_mib, Some(200));
        assert_eq!(r.largest_failing_mib, Some(192));
        let mut f = fake(40);
        let r = run(&mut f, BRACKET);
        assert_eq!(&f.asked[..3], [128, 64, 32]);
        assert_eq!(r.smallest_working_mib, Some(40));
        assert_eq!(r.failure_below, Some(FailureMode::KexecCannotLoad));
        assert!(r.probes.len() <= 6, "{:?}", f.asked);
    }

    #[test]
    fn a_flaky_probe_is_retried_not_counted_as_too_small() {
        let mut f = fake(96);
        f.flaky = vec![(80, 1)];
        let r = run(&mut f, BRACKET);
        assert_eq!(f.asked, [128, 64, 96, 80, 80, 88, 104]);
        assert_eq!(r.smallest_working_mib, Some(96));
        assert_eq!(r.largest_failing_mib, Some(88));
        // A probe that never stops flaking ends the search with the bracket it had.
        let mut f = fake(96);
        f.flaky = vec![(80, 9)];
        let r = run(&mut f, BRACKET);
        assert_eq!(r.smallest_working_mib, Some(96));
        assert_eq!(r.largest_failing_mib, Some(64));
        let why = r.unfinished.unwrap();
        assert!(
            why.contains("80M") && why.contains("between 64M and 96M"),
            "{why}"
        );
    }

    #[test]
    fn a_non_monotonic_result_is_reported() {
        let mut f = fake(96);
        f.liar = Some(80);
        let r = run(&mut f, BRACKET);
        // 80 "works", the check above it (88) fails: reported; the answer stays what was seen.
        assert_eq!(r.smallest_working_mib, Some(80));
        assert_eq!(r.non_monotonic.len(), 1, "{r:?}");
        assert!(r.non_monotonic[0].starts_with("works at 80M but failed at 88M (capture-oom)"));
    }

    #[test]
    fn a_list_of_sizes_is_probed_as_given() {
        let mut f = fake(96);
        let r = probe_list(&mut f, 1024, &[80, 96, 80], 2, &mut |_| {});
        assert_eq!(f.asked, [96, 80]);
        assert_eq!(r.smallest_working_mib, Some(96));
        assert_eq!(r.largest_failing_mib, Some(80));
        assert_eq!(r.failure_below, Some(FailureMode::CaptureOom));
    }

    #[test]
    fn nothing_works_up_to_the_maximum() {
        let mut f = fake(4096);
        let r = run(&mut f, BRACKET);
        assert_eq!(f.asked, [128, 256, 512]);
        assert_eq!(r.smallest_working_mib, None);
        assert!(r.unfinished.unwrap().contains("even 512M"));
    }
}
