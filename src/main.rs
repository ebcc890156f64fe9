//! The `slipway` binary: parses the command line and runs it. The only place that uses
//! `anyhow`: errors from the library are printed here, once, for a person to read.

use clap::Parser;

fn main() {
    let cli = slipway::cli::Cli::parse();
    let default_filter = match cli.command {
        slipway::cli::Command::Serve { .. } | slipway::cli::Command::Up { .. } => {
            "info,sqlx=warn,hyper=warn"
        }
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLIPWAY_LOG")
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("slipway: cannot start: {error}");
            std::process::exit(1);
        }
    };
    let code = runtime
        .block_on(slipway::cli::run(cli))
        .unwrap_or_else(|error| {
            eprintln!("slipway: {error:#}");
            1
        });
    std::process::exit(code);
}
