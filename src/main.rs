//! The `edn-migrate` binary: parse, dispatch, print, exit.

use clap::Parser;
use edn_migrate::cli::{Cli, Command, LogFormat, Phase0Command};
use edn_migrate::config::Config;
use edn_migrate::error::{CommandResult, EXIT_OK};
use edn_migrate::report::Output;
use edn_migrate::{confirm, phase0, status, store, transfer};
use std::process::ExitCode;

fn main() -> ExitCode {
    // `.env` in the working directory fills in what the environment lacks;
    // a variable already set wins, and flags win over both (clap).
    if std::path::Path::new(".env").is_file() {
        if let Err(e) = dotenvy::from_path(".env") {
            eprintln!("error: .env in the working directory is unreadable: {e}");
            return ExitCode::from(edn_migrate::error::EXIT_USAGE as u8);
        }
    }
    let cli = Cli::parse();
    init_logging(cli.global.log_format);
    let json = cli.global.json;
    match run(cli) {
        Ok(output) => {
            if json {
                println!("{}", output.json);
            } else {
                print!("{}", output.text);
            }
            ExitCode::from(EXIT_OK as u8)
        }
        Err(e) => {
            let message = edn_migrate::redact::redact_text(&e.to_string());
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "error": message, "exit_code": e.exit_code() })
                );
            }
            eprintln!("error: {message}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// Opens the store and calls the one function that implements the command.
fn run(cli: Cli) -> CommandResult<Output> {
    let config = Config::from_args(&cli.global);
    let store = store::open(&config.store_url)?;
    let store = store.as_ref();
    match cli.command {
        Command::Status => status::status(store, &config),
        Command::Import(args) => {
            if args.drop {
                confirm::confirm(
                    &format!(
                        "drop every collection found in {} before loading it?",
                        args.dir.display()
                    ),
                    cli.global.yes,
                )?;
            }
            let opts = transfer::ImportOptions {
                upsert: args.upsert,
                drop: args.drop,
                batch_size: args.batch_size,
            };
            transfer::import(store, &args.dir, opts)
        }
        Command::Export(args) => {
            let mut dbs = vec![config.legacy_db.as_str()];
            if config.drawer_db != config.legacy_db {
                dbs.push(config.drawer_db.as_str());
            }
            transfer::export(store, &dbs, &args.dir, args.batch_size)
        }
        Command::Phase0(Phase0Command::Prepare { no_legacy_indexes }) => {
            phase0::prepare(store, &config, !no_legacy_indexes)
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EDN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,edn_migrate=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
