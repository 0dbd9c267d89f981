//! `echo-server` binary: parse configuration, set up logging, serve until
//! Ctrl-C or SIGTERM.

use std::io::IsTerminal;
use std::process::ExitCode;

use echo_server::config::{CliError, Config};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let config =
        match Config::from_args_and_env(std::env::args().skip(1), |k| std::env::var(k).ok()) {
            Ok(config) => config,
            Err(info @ (CliError::Help | CliError::Version)) => {
                println!("{info}");
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("echo-server: {e}\n\n{}", echo_server::config::USAGE);
                return ExitCode::from(2);
            }
        };

    tracing_subscriber::fmt()
        .with_ansi(std::io::stdout().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let signal = match echo_server::shutdown_signal() {
        Ok(signal) => signal,
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            signal.await;
            shutdown.cancel();
        }
    });

    match echo_server::serve(config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
