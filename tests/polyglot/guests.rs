//! Python and JavaScript guests on a real board: the docs examples decide, hostile guests are bounded.
