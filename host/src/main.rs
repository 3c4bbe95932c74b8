//! `kanban`: parse, run, map the outcome to an exit code. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // An empty KANBAN_HOME or KANBAN_BOARD means "not set", as it does for most tools; clap would call an
    // empty value a usage error.
    for var in ["KANBAN_HOME", "KANBAN_BOARD"] {
        if std::env::var_os(var).is_some_and(|v| v.is_empty()) {
            // SAFETY: first thing in main, before any thread exists.
            unsafe { std::env::remove_var(var) };
        }
    }
    let cli = match kanban::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version are not errors; usage errors exit 2 with the contract's `kanban: ` prefix.
            if !err.use_stderr() {
                let _ = err.print();
                return ExitCode::SUCCESS;
            }
            let text = err.render().to_string();
            eprint!("kanban: {}", text.strip_prefix("error: ").unwrap_or(&text));
            return ExitCode::from(2);
        }
    };
    init_logging();
    match kanban::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kanban: {err:#}");
            ExitCode::from(kanban::cli::exit_code(&err))
        }
    }
}

/// Warnings and errors to stderr. `KANBAN_LOG` takes a full filter (e.g. `kanban=debug`); without it a plain
/// level filter is used, because building an `EnvFilter` costs about a millisecond on every short command.
fn init_logging() {
    use std::io::IsTerminal;
    let builder =
        tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal());
    match std::env::var("KANBAN_LOG") {
        Ok(filter) if !filter.is_empty() => {
            builder.with_env_filter(tracing_subscriber::EnvFilter::new(filter)).init()
        }
        _ => builder.with_max_level(tracing::Level::WARN).init(),
    }
}
