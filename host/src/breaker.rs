//! The circuit breaker's limit, resolved in exactly one place.
//!
//! Both the breaker (which blocks a card at its limit) and ready recomputation (which lets a non-sticky
//! blocked card recover only below it) ask [`FailureLimit::resolve`], so they can never disagree.

/// Limit used when neither the card nor the board sets one.
pub const DEFAULT_FAILURE_LIMIT: i64 = 2;

pub struct FailureLimit;

impl FailureLimit {
    /// The card's `max_retries`, else the board's `failure_limit`, else [`DEFAULT_FAILURE_LIMIT`].
    pub fn resolve(card_max_retries: Option<i64>, board_failure_limit: Option<i64>) -> i64 {
        card_max_retries.or(board_failure_limit).unwrap_or(DEFAULT_FAILURE_LIMIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_beats_board_beats_default() {
        assert_eq!(FailureLimit::resolve(Some(5), Some(3)), 5);
        assert_eq!(FailureLimit::resolve(None, Some(3)), 3);
        assert_eq!(FailureLimit::resolve(None, None), DEFAULT_FAILURE_LIMIT);
        assert_eq!(FailureLimit::resolve(Some(0), Some(3)), 0);
    }
}
