//! Lines of a unit's output as the engine gives them with `timestamps`:
//! each `2026-11-29T10:40:01.123456789Z message`, cut from the engine's
//! frames and ordered by their time. Pure; the backends feed it bytes.

/// Which lines of a unit's output to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogRequest {
    /// Only lines from this Unix time (seconds) on.
    pub since: Option<i64>,
    /// Only the last this many lines (before following).
    pub tail: Option<usize>,
    /// Then the lines to come, until the unit stops or the engine goes away.
    pub follow: bool,
}

/// One line of a unit's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The engine's timestamp as it wrote it (RFC 3339, UTC).
    pub timestamp: String,
    /// The same in nanoseconds since the Unix epoch (0 when it does not
    /// parse), to merge the lines of several units in time order.
    pub at: i64,
    pub stderr: bool,
    /// The line without its end; not sanitised.
    pub text: String,
}

/// The lines of one frame of the engine's log stream.
pub fn lines_of(frame: &[u8], stderr: bool) -> Vec<LogLine> {
    String::from_utf8_lossy(frame)
        .split('\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let l = l.strip_suffix('\r').unwrap_or(l);
            let (timestamp, text) = l.split_once(' ').unwrap_or((l, ""));
            match parse_rfc3339(timestamp) {
                Some(at) => LogLine {
                    timestamp: timestamp.to_string(),
                    at,
                    stderr,
                    text: text.to_string(),
                },
                None => LogLine {
                    timestamp: String::new(),
                    at: 0,
                    stderr,
                    text: l.to_string(),
                },
            }
        })
        .collect()
}

/// `2026-11-29T10:40:01.123456789Z` (or a `±hh:mm` offset) → nanoseconds
/// since the Unix epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let num = |t: &str| -> Option<i64> {
        t.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| t.parse().ok())
            .flatten()
    };
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-');
    let (y, mo, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    let (clock, offset) = if let Some(c) = time.strip_suffix('Z') {
        (c, 0)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (c, off) = time.split_at(at);
        let (h, m) = off[1..].split_once(':')?;
        let secs = num(h)? * 3600 + num(m)? * 60;
        (c, if off.starts_with('-') { -secs } else { secs })
    };
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let mut t = hms.splitn(3, ':');
    let (h, mi, sec) = (num(t.next()?)?, num(t.next()?)?, num(t.next()?)?);
    let nanos = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        num(&digits)?
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let secs = days_from_civil(y, mo, day) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.5Z"), Some(1_500_000_000));
        assert_eq!(
            parse_rfc3339("2026-11-29T10:40:01.123456789Z"),
            Some(1_795_948_801_123_456_789)
        );
        assert_eq!(
            parse_rfc3339("2026-11-29T11:40:01+01:00"),
            parse_rfc3339("2026-11-29T10:40:01Z")
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        // A shorter fraction is earlier than a longer one with more time in it.
        assert!(parse_rfc3339("2026-01-01T00:00:01Z") < parse_rfc3339("2026-01-01T00:00:01.1Z"));
    }

    #[test]
    fn frames_become_lines() {
        let lines = lines_of(
            b"2026-11-29T10:40:01Z hello world\n2026-11-29T10:40:02Z \x1b[2J\n",
            true,
        );
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].text, "hello world");
        assert_eq!(lines[0].timestamp, "2026-11-29T10:40:01Z");
        assert!(lines[1].stderr && lines[1].at > lines[0].at);
        assert_eq!(lines_of(b"no stamp\n", false)[0].text, "no stamp");
    }
}
