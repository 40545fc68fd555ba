//! What a calibration file may hold, checked after parsing (pure): sizes above 0 and within
//! kdrill's 64T limit (so no `<< 20` wraps), the largest failing size below the smallest working
//! one, one entry per memory size. Each refusal names the values.

use crate::calibrate::file::{Calibration, SizeEntry};
use crate::spec::cmdline::{SIZE_LIMIT, SIZE_LIMIT_TEXT};

/// The largest memory size or reservation a calibration may hold, in MiB: kdrill's
/// [`SIZE_LIMIT`] (64T). A larger figure is refused, naming it, before any `<< 20`.
pub const MAX_MIB: u64 = SIZE_LIMIT >> 20;

/// What parsing cannot check: every size above 0 and within [`MAX_MIB`], the largest failing
/// size below the smallest working one (and that one below the memory size), one entry per
/// memory size. The message names the values.
pub fn validate(c: &Calibration) -> Result<(), String> {
    let mut seen: Vec<&SizeEntry> = Vec::new();
    for s in &c.sizes {
        let at = format!("at memory_mib {}", s.memory_mib);
        let figures = [
            ("memory_mib", Some(s.memory_mib)),
            ("smallest_working_mib", s.smallest_working_mib),
            ("largest_failing_mib", s.largest_failing_mib),
            ("recommended_mib", s.recommended_mib),
            (
                "kdump_tools_suggested_mib",
                s.heuristics.kdump_tools_suggested_mib,
            ),
        ];
        let probes = s
            .probes
            .iter()
            .map(|p| ("a probe's crashkernel_mib", Some(p.crashkernel_mib)));
        for (name, value) in figures.into_iter().chain(probes) {
            match value {
                Some(v) if v > MAX_MIB => {
                    return Err(format!(
                    "{name} {v} {at} is above kdrill's limit of {SIZE_LIMIT_TEXT} ({MAX_MIB} MiB)"
                ))
                }
                Some(0) if name != "largest_failing_mib" => {
                    return Err(format!("{name} is 0 {at}: no capture works without memory"))
                }
                _ => {}
            }
        }
        if let (Some(works), Some(fails)) = (s.smallest_working_mib, s.largest_failing_mib) {
            if fails >= works {
                return Err(format!(
                    "largest_failing_mib {fails} is not below smallest_working_mib {works} {at}: a size cannot fail above one that works"
                ));
            }
        }
        if let Some(works) = s.smallest_working_mib.filter(|w| *w >= s.memory_mib) {
            return Err(format!(
                "smallest_working_mib {works} is not below memory_mib {}: a reservation must leave the host memory",
                s.memory_mib
            ));
        }
        if let Some(earlier) = seen.iter().find(|e| e.memory_mib == s.memory_mib) {
            let shown = |v: Option<u64>| v.map_or("null".to_string(), |v| v.to_string());
            return Err(format!(
                "memory_mib {} is given twice, with smallest_working_mib {} and {}: one entry per memory size",
                s.memory_mib,
                shown(earlier.smallest_working_mib),
                shown(s.smallest_working_mib)
            ));
        }
        seen.push(s);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::file::tests::sample;

    fn refused(edit: impl Fn(&mut Calibration)) -> String {
        let mut c = sample();
        edit(&mut c);
        validate(&c).expect_err("accepted")
    }

    #[test]
    fn a_calibration_that_contradicts_itself_is_refused_naming_the_values() {
        assert_eq!(validate(&sample()), Ok(()));
        // 2^44 MiB: `<< 20` wrapped to 0 ("≥ measured minimum 0B").
        let err = refused(|c| c.sizes[0].smallest_working_mib = Some(17_592_186_044_416));
        assert!(err.contains("smallest_working_mib 17592186044416 at memory_mib 1024 is above kdrill's limit of 64T"), "{err}");
        let err = refused(|c| c.sizes[1].memory_mib = u64::MAX);
        assert!(err.contains("memory_mib 18446744073709551615"), "{err}");
        let err = refused(|c| c.sizes[0].smallest_working_mib = Some(0));
        assert!(
            err.contains("smallest_working_mib is 0 at memory_mib 1024"),
            "{err}"
        );
        let err = refused(|c| c.sizes[0].largest_failing_mib = Some(200));
        assert!(
            err.contains(
                "largest_failing_mib 200 is not below smallest_working_mib 96 at memory_mib 1024"
            ),
            "{err}"
        );
        let err = refused(|c| c.sizes[0].heuristics.kdump_tools_suggested_mib = Some(u64::MAX));
        assert!(
            err.contains("kdump_tools_suggested_mib 18446744073709551615 at memory_mib 1024"),
            "{err}"
        );
        let err = refused(|c| c.sizes[1].memory_mib = 1024);
        assert!(
            err.contains("memory_mib 1024 is given twice, with smallest_working_mib 96 and 104"),
            "{err}"
        );
        let err = refused(|c| c.sizes[0].smallest_working_mib = Some(2048));
        assert!(err.contains("not below memory_mib 1024"), "{err}");
    }
}
