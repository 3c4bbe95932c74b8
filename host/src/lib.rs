pub mod board;
pub mod breaker;
pub mod cli;
pub mod clock;
pub mod store;
