//! Quantities written as text or numbers: durations, memory sizes, CPU
//! shares. Pure.

use std::time::Duration;

use super::super::locate::Seg;
use super::{Validator, at};

impl Validator<'_, '_> {
    /// The duration at `path`, or `default` when it is absent or invalid
    /// (then the problem is recorded).
    pub(super) fn duration(
        &mut self,
        v: Option<&str>,
        path: &[Seg<'_>],
        service: &str,
        default: Duration,
    ) -> Duration {
        let Some(text) = v else { return default };
        match parse_duration(text) {
            Ok(d) => d,
            Err(why) => {
                self.err(
                    "muster::config::invalid_duration",
                    format!("service `{service}`: {why}"),
                    path,
                    "write a duration such as \"500ms\", \"10s\" or \"1m30s\"",
                );
                default
            }
        }
    }

    pub(super) fn cpus(&mut self, name: &str, cpus: Option<f64>) {
        if let Some(c) = cpus
            && !(c > 0.0 && c <= 1024.0)
        {
            self.err(
                "muster::config::out_of_range",
                format!("service `{name}`: cpus must be more than 0 and at most 1024"),
                &at(name, "cpus"),
                "write a CPU share such as 0.5 or 2",
            );
        }
    }

    pub(super) fn memory(&mut self, name: &str, raw: Option<&str>) -> Option<u64> {
        let m = raw?;
        match parse_memory(m) {
            Ok(b) if b >= 6 * 1024 * 1024 => Some(b),
            Ok(_) => {
                self.err(
                    "muster::config::out_of_range",
                    format!("service `{name}`: memory {m:?} is below the engine's minimum of 6MiB"),
                    &at(name, "memory"),
                    "give at least \"6MiB\"",
                );
                None
            }
            Err(why) => {
                self.err(
                    "muster::config::invalid_memory",
                    format!("service `{name}`: {why}"),
                    &at(name, "memory"),
                    "write a size such as \"256MiB\", \"1GiB\" or \"512MB\"",
                );
                None
            }
        }
    }
}

/// The longest duration muster takes, in the file or on the command line.
const LONGEST: Duration = Duration::from_secs(365 * 24 * 3600);

/// `"500ms"`, `"10s"`, `"1m30s"`, `"2h"`: one or more number-unit pairs.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration");
    let too_long = || format!("{text:?} is longer than a year");
    let s = text.trim();
    if s.is_empty() {
        return Err(bad());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let per_unit = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => {
                return Err(format!(
                    "{text:?} has a number without a unit (ms, s, m or h)"
                ));
            }
            u => return Err(format!("{text:?}: unit {u:?} is not ms, s, m or h")),
        };
        rest = &rest[unit_len..];
        let secs = n * per_unit;
        if secs > LONGEST.as_secs_f64() {
            return Err(too_long());
        }
        let part = Duration::try_from_secs_f64(secs).map_err(|_| bad())?;
        // Checked: a file or a flag may add up as many parts as it likes.
        total = total
            .checked_add(part)
            .filter(|t| *t <= LONGEST)
            .ok_or_else(too_long)?;
    }
    Ok(total)
}

/// `"256MiB"`, `"1GiB"`, `"512MB"`, `"1024k"`, `"1048576"` (bytes).
fn parse_memory(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a memory size"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" | "b" => 1,
        "k" | "K" | "KiB" | "kiB" => 1 << 10,
        "KB" | "kB" => 1000,
        "m" | "M" | "MiB" => 1 << 20,
        "MB" => 1_000_000,
        "g" | "G" | "GiB" => 1 << 30,
        "GB" => 1_000_000_000,
        "TiB" => 1 << 40,
        "TB" => 1_000_000_000_000,
        u => {
            return Err(format!(
                "{text:?}: unit {u:?} is not one of B, KiB, MiB, GiB, TiB, KB, MB, GB, TB"
            ));
        }
    };
    let bytes = n * mult as f64;
    if !bytes.is_finite() || bytes > 1e15 {
        return Err(format!("{text:?} is too large"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("5 minutes").is_err());
    }

    #[test]
    fn durations_that_overflow_are_errors_not_panics() {
        for huge in [
            "10000000000000000000s10000000000000000000s",
            "18446744073709551615s1s",
            "100000000000000000000000000000000000000h",
            "365d",
            "8760h1ms",
        ] {
            let err = parse_duration(huge).expect_err(huge);
            assert!(
                err.contains("longer than a year") || err.contains("is not ms, s, m or h"),
                "{huge}: {err}"
            );
        }
        assert_eq!(
            parse_duration("8760h").unwrap(),
            Duration::from_secs(365 * 24 * 3600)
        );
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_memory("1GB").unwrap(), 1_000_000_000);
        assert!(parse_memory("lots").is_err());
        assert!(parse_memory("99999999999999999999999999999TiB").is_err());
        assert!(parse_memory(&"9".repeat(400)).is_err());
    }
}
