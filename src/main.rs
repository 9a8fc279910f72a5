//! The `edn-migrate` binary: parse, dispatch, print, exit.

mod cli;

use clap::Parser;
use cli::{
    Cli, Command, LogFormat, MigrateArgs, Phase0Command, Phase1Command, Phase2Command,
    Phase3Command, Phase4Command, RehearseArgs, RestartArgs,
};
use edn_migrate::error::{CommandError, CommandResult, EXIT_OK};
use edn_migrate::gates::Sources;
use edn_migrate::report::Output;
use edn_migrate::toggle::{Consent, FlagOptions};
use edn_migrate::{
    backup, confirm, dump, phase0, phase1, phase2, phase3, phase4, rollback, status, store,
    transfer,
};
use std::io::IsTerminal;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
            let report = match &e {
                CommandError::Failed { output, .. } => Some(output),
                _ => None,
            };
            if json {
                let mut out = report
                    .map(|o| o.json.clone())
                    .unwrap_or_else(|| serde_json::json!({}));
                if let Some(map) = out.as_object_mut() {
                    map.insert("error".into(), message.clone().into());
                    map.insert("exit_code".into(), e.exit_code().into());
                }
                println!("{out}");
            } else if let Some(output) = report {
                print!("{}", output.text);
            }
            eprintln!("error: {message}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// Opens the store and calls the one function that implements the command.
fn run(cli: Cli) -> CommandResult<Output> {
    let config = cli.global.config();
    if let Command::Rehearse(args) = cli.command {
        // Before the store is opened: a rehearsal reads only the dump.
        return rehearse(&config, args);
    }
    // Only commands that load or prepare data may create a new embedded store.
    let creates = matches!(cli.command, Command::Import(_) | Command::Phase0(_));
    let store = if creates {
        store::open(&config.store_url)?
    } else {
        store::open_existing(&config.store_url)?
    };
    let store = store.as_ref();
    let env_file = cli.global.env_file.clone();
    let yes = cli.global.yes;
    let flags = |r: RestartArgs| FlagOptions {
        env_file: env_file.clone(),
        restart_cmd: r.restart_cmd,
        restart_timeout: std::time::Duration::from_secs(r.restart_timeout),
    };
    let consent = |force_reason: Option<String>, backup_dir: std::path::PathBuf| Consent {
        yes,
        force_reason,
        backup_dir,
    };
    match cli.command {
        Command::Status(args) => status::status(
            store,
            &config,
            &Sources {
                env_file: env_file.clone(),
                backup_dir: args.backup_dir,
            },
        ),
        Command::Import(args) => {
            let source = args.from_dump.as_ref().or(args.dir.as_ref());
            let source = source.cloned().unwrap_or_default();
            if args.drop {
                confirm::confirm(
                    &format!(
                        "drop every collection found in {} before loading it?",
                        source.display()
                    ),
                    cli.global.yes,
                )?;
            }
            let opts = transfer::ImportOptions {
                upsert: args.upsert,
                drop: args.drop,
                batch_size: args.batch_size,
            };
            if args.from_dump.is_some() {
                let mut dump_opts = dump::DumpOptions::new(opts);
                dump_opts.rename = args.rename_db.into_iter().collect();
                dump_opts.databases = args.only_db.into_iter().collect();
                dump::import(store, &source, &dump_opts)
            } else {
                transfer::import(store, &source, opts)
            }
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
        Command::Phase2(Phase2Command::Backup(args)) => {
            let now = chrono::Utc::now();
            match (args.list, args.verify.as_deref()) {
                (true, _) => backup::list(&args.backup_dir, now),
                (false, Some(id)) => {
                    backup::verify(&args.backup_dir, Some(id).filter(|i| !i.is_empty()), now)
                }
                (false, None) => backup::create(store, &config, &args.backup_dir, now),
            }
        }
        Command::Phase2(Phase2Command::Migrate(args)) => {
            phase2::migrate(store, &config, &migrate_options(args))
        }
        Command::Phase2(Phase2Command::Validate(args)) => {
            let thresholds = phase2::validate::Thresholds {
                questionnaires: args.min_questionnaires / 100.0,
                followups: args.min_followups / 100.0,
                plans: args.min_plans / 100.0,
            };
            let opts = phase2::validate::ValidateOptions {
                thresholds,
                report_dir: args.report_dir,
                list_warnings: args.warnings,
                partition: args.partition,
            };
            phase2::validate::validate(store, &config, &opts)
        }
        Command::Rehearse(_) => unreachable!("dispatched before the store is opened"),
        Command::Phase1(Phase1Command::Enable(args)) => phase1::enable(
            store,
            &config,
            &flags(args.restart),
            &consent(args.force.reason(), "./backups".into()),
        ),
        Command::Phase1(Phase1Command::DualWriteCheck(args)) => phase1::dual_write_check(
            store,
            &config,
            &phase1::CheckOptions {
                since: args.since,
                min_match: args.min_match / 100.0,
                env_file: env_file.clone(),
            },
        ),
        Command::Phase3(Phase3Command::Switch(args)) => phase3::switch(
            store,
            &config,
            &flags(args.restart),
            &consent(args.force.reason(), args.backup_dir),
        ),
        Command::Phase3(Phase3Command::Status(args)) => phase3::status(
            store,
            &config,
            &phase3::StatusOptions {
                since: args.since,
                env_file: env_file.clone(),
                min_success: args.min_success / 100.0,
            },
        ),
        Command::Phase4(Phase4Command::Cleanup(args)) => phase4::cleanup(
            store,
            &config,
            &phase4::CleanupOptions {
                drop_expired: args.drop_expired,
                retention_days: args.retention_days,
            },
            &flags(args.restart),
            &consent(args.force.reason(), args.backup_dir),
        ),
        Command::Rollback(args) => rollback::rollback(
            store,
            &config,
            &rollback::RollbackOptions {
                phase: args.phase,
                from_backup: args.from_backup,
                include_legacy: args.include_legacy,
            },
            &flags(args.restart),
            &consent(args.force.reason(), args.backup_dir),
        ),
    }
}

/// The top-level entry point for `rehearse`: the configured names, a fresh
/// store in the output folder.
fn rehearse(config: &edn_migrate::config::Config, args: RehearseArgs) -> CommandResult<Output> {
    let out = args.out.unwrap_or_else(|| {
        format!("rehearsal-{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ")).into()
    });
    let mut opts = edn_migrate::rehearse::RehearseOptions::new(out);
    opts.rename = args.rename_db.into_iter().collect();
    opts.min_dual_write = args.min_dual_write / 100.0;
    opts.dual_write_since = args.dual_write_since;
    opts.thresholds = phase2::validate::Thresholds {
        questionnaires: args.min_questionnaires / 100.0,
        followups: args.min_followups / 100.0,
        plans: args.min_plans / 100.0,
    };
    opts.batch_size = args.batch_size;
    opts.pairing_window_ms = args.pairing_window_minutes * 60_000;
    opts.max_drawer_bytes = args.max_drawer_mib * 1024 * 1024;
    opts.production_documents = args.production_documents;
    edn_migrate::rehearse::rehearse(&args.dump, config, &opts)
}

fn migrate_options(args: MigrateArgs) -> phase2::MigrateOptions {
    phase2::MigrateOptions {
        part: args.part.into(),
        dry_run: args.dry_run,
        resume: args.resume,
        partition: args.partition,
        batch_size: args.batch_size,
        max_rate: args.max_rate,
        break_lock: args.break_lock,
        force_reason: args.reason.filter(|_| args.force),
        backup_dir: args.backup_dir,
        pairing_window_ms: args.pairing_window_minutes * 60_000,
        max_drawer_bytes: args.max_drawer_mib * 1024 * 1024,
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EDN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
