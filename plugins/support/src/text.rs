//! Card text quoted in a reason or a finding: one line, bounded, so a huge error message cannot flood the
//! dispatcher's report or the event log.

/// `text` on one line (runs of whitespace become one space), cut to `max` characters with a trailing `…`.
pub fn excerpt(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_and_bounded() {
        assert_eq!(excerpt("  a\n\tb  c ", 10), "a b c");
        assert_eq!(excerpt("abcdef", 3), "abc…");
        assert_eq!(excerpt("ééé", 3), "ééé");
    }
}
