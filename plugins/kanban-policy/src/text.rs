//! Text a policy quotes or looks for: one-line excerpts of card text for a reason or a finding, durations
//! an operator reads at a glance, and pull-request links in comments.

/// `text` on one line (runs of whitespace become one space), cut to `max` characters with a trailing `…`,
/// so a huge error message cannot flood the dispatcher's report or the event log.
pub fn excerpt(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

/// `3d 4h`, `2h 5m`, `12m`, `40s`: the two largest units of `seconds` (negative counts as 0).
pub fn duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86400, s % 86400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// UTC `YYYY-MM-DD HH:MM:SS UTC` for a unix time (the only clock a policy has is `ctx.now`; this is how to
/// show one of its times to a person).
pub fn utc(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// "for 3m (until 2027-01-15 08:03:00 UTC)": how long until `until`, seen at `now`, for a person.
pub fn until(now: i64, until: i64) -> String {
    format!("for {} (until {})", duration(until - now), utc(until))
}

/// The first pull-request URL in `text`, normalised to end at its number: `https://github.com/<o>/<r>/pull/<n>`,
/// or a GitLab merge request on any host, `https://<host>/<group>/<project>/-/merge_requests/<n>`.
pub fn pull_request_url_in(text: &str) -> Option<String> {
    let is_end = |c: char| c.is_whitespace() || "<>()[]{}\"'`|,".contains(c);
    let mut rest = text;
    while let Some(start) = ["https://", "http://"].iter().filter_map(|scheme| rest.find(scheme)).min() {
        let candidate = &rest[start..];
        let end = candidate.find(is_end).unwrap_or(candidate.len());
        if let Some(url) = pull_request_url(&candidate[..end]) {
            return Some(url);
        }
        rest = &candidate[end.max(1)..];
    }
    None
}

fn pull_request_url(url: &str) -> Option<String> {
    let (scheme, after) = url.split_once("://")?;
    let (host, path) = after.split_once('/')?;
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').collect();
    let host_lower = host.to_ascii_lowercase();
    if host_lower == "github.com" || host_lower == "www.github.com" {
        if let [owner, repo, "pull", number, ..] = segments.as_slice()
            && !owner.is_empty()
            && !repo.is_empty()
        {
            return Some(format!("{scheme}://github.com/{owner}/{repo}/pull/{}", issue_number(number)?));
        }
        return None;
    }
    let dash = segments.iter().position(|s| *s == "-")?;
    let project = &segments[..dash];
    if host.is_empty() || project.is_empty() || project.iter().any(|s| s.is_empty()) {
        return None;
    }
    match &segments[dash + 1..] {
        ["merge_requests", number, ..] => Some(format!(
            "{scheme}://{host}/{}/-/merge_requests/{}",
            project.join("/"),
            issue_number(number)?
        )),
        _ => None,
    }
}

/// `12` from `12`, or from `12.` at the end of a sentence; nothing from `12abc`.
fn issue_number(segment: &str) -> Option<&str> {
    let digits = segment.trim_end_matches(['.', ',', ';', ':', '!', '?']);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

#[cfg(test)]
mod utc_tests {
    use super::*;

    #[test]
    fn times_for_people() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_800_000_000), "2027-01-15 08:00:00 UTC");
        assert_eq!(until(1_800_000_000, 1_800_000_180), "for 3m (until 2027-01-15 08:03:00 UTC)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_one_line_and_bounded() {
        assert_eq!(excerpt("  a\n\tb  c ", 10), "a b c");
        assert_eq!(excerpt("abcdef", 3), "abc…");
        assert_eq!(excerpt("ééé", 3), "ééé");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(40), "40s");
        assert_eq!(duration(1800), "30m");
        assert_eq!(duration(3600 + 300), "1h 5m");
        assert_eq!(duration(86400), "1d");
        assert_eq!(duration(3 * 86400 + 4 * 3600 + 59), "3d 4h");
        assert_eq!(duration(-5), "0s");
    }

    #[test]
    fn pull_request_urls_are_recognised() {
        let cases = [
            ("see https://github.com/o/r/pull/7.", Some("https://github.com/o/r/pull/7")),
            (
                "<https://gitlab.example.com/g/sub/p/-/merge_requests/12#note_1>",
                Some("https://gitlab.example.com/g/sub/p/-/merge_requests/12"),
            ),
            (
                "https://github.com/o/r/issues/7 and https://github.com/o/r/pull/8",
                Some("https://github.com/o/r/pull/8"),
            ),
            ("https://github.com/o/r/pull/", None),
            ("https://github.com/o/r/pull/12abc", None),
            ("https://github.com/o/r/pulls", None),
            ("https://example.com/-/merge_requests/3", None),
            ("github.com/o/r/pull/3", None),
        ];
        for (text, want) in cases {
            assert_eq!(pull_request_url_in(text).as_deref(), want, "{text}");
        }
    }
}
