//! The command line: every flag, its environment variable and its default.
//!
//! Precedence is flags > environment > `.env` in the working directory >
//! defaults; `main` loads `.env` without overriding the environment, and
//! clap reads the environment for any flag not given. This module belongs to
//! the binary: the library takes a [`Config`] and option structs, never clap.

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use edn_migrate::config::Config;
use edn_migrate::phase2::Part;
use std::path::PathBuf;

/// Moves EDN360's legacy MongoDB collections into one `client_drawers`
/// document per client, phase by phase, resumably and reversibly.
#[derive(Debug, Parser)]
#[command(name = "edn-migrate", version, about, long_about = None)]
pub struct Cli {
    /// Settings every command shares.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Settings every command shares.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Where the data lives: mongodb://…, mongodb+srv://… or sqlite:PATH.
    #[arg(
        long = "store",
        env = "MONGO_URL",
        default_value = "sqlite:./edn-migrate.db",
        global = true,
        hide_env_values = true,
        value_name = "URL"
    )]
    pub store: String,

    /// The legacy (web) database.
    #[arg(long, env = "DB_NAME", default_value = "test_database", global = true)]
    pub legacy_db: String,

    /// The database that holds client_drawers.
    #[arg(
        long,
        env = "EDN360_DB_NAME",
        default_value = "edn360_app",
        global = true
    )]
    pub drawer_db: String,

    /// Print one JSON object on stdout instead of the text summary.
    #[arg(long, global = true)]
    pub json: bool,

    /// Do not ask before destructive steps (for scripts).
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,

    /// Log lines on stderr as text or as JSON (one object per line).
    #[arg(long, env = "EDN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// The backend's .env file, where the feature flags live.
    #[arg(
        long,
        env = "EDN_ENV_FILE",
        default_value = "./.env",
        global = true,
        value_name = "FILE"
    )]
    pub env_file: PathBuf,

    // Last: its own help heading would otherwise cover the flags after it.
    /// Collection names, when production differs from the defaults.
    #[command(flatten)]
    pub collections: CollectionArgs,
}

impl GlobalArgs {
    /// The library's view of these settings.
    pub fn config(&self) -> Config {
        let c = &self.collections;
        Config {
            store_url: self.store.clone(),
            legacy_db: self.legacy_db.clone(),
            drawer_db: self.drawer_db.clone(),
            submissions: c.submissions_coll.clone(),
            followups: c.followups_coll.clone(),
            training_plans: c.training_plans_coll.clone(),
            nutrition_plans: c.nutrition_plans_coll.clone(),
            users: c.users_coll.clone(),
            jobs: c.jobs_coll.clone(),
            drawers: c.drawers_coll.clone(),
        }
    }
}

/// The names of the collections the tool reads and writes.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Collection names (global)")]
pub struct CollectionArgs {
    /// Legacy initial questionnaires.
    #[arg(
        long,
        env = "EDN_COLL_SUBMISSIONS",
        default_value = "nutrition_questionnaire_submissions",
        global = true,
        hide_short_help = true
    )]
    pub submissions_coll: String,
    /// Legacy follow-ups (the plan calls it followup_submissions).
    #[arg(
        long,
        env = "EDN_COLL_FOLLOWUPS",
        default_value = "follow_up_submissions",
        global = true,
        hide_short_help = true
    )]
    pub followups_coll: String,
    /// Legacy training plans.
    #[arg(
        long,
        env = "EDN_COLL_TRAINING_PLANS",
        default_value = "training_plans",
        global = true,
        hide_short_help = true
    )]
    pub training_plans_coll: String,
    /// Legacy nutrition plans.
    #[arg(
        long,
        env = "EDN_COLL_NUTRITION_PLANS",
        default_value = "nutrition_plans",
        global = true,
        hide_short_help = true
    )]
    pub nutrition_plans_coll: String,
    /// Legacy users.
    #[arg(
        long,
        env = "EDN_COLL_USERS",
        default_value = "users",
        global = true,
        hide_short_help = true
    )]
    pub users_coll: String,
    /// Legacy generation jobs.
    #[arg(
        long,
        env = "EDN_COLL_JOBS",
        default_value = "generation_jobs",
        global = true,
        hide_short_help = true
    )]
    pub jobs_coll: String,
    /// The drawers (in the drawer database).
    #[arg(
        long,
        env = "EDN_COLL_DRAWERS",
        default_value = "client_drawers",
        global = true,
        hide_short_help = true
    )]
    pub drawers_coll: String,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The commands, one per phase step.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Where the migration stands: the phase, every gate and why, flags,
    /// backup age, lock, last runs, and the command to run next.
    Status(StatusArgs),
    /// Load DIR/<database>/<collection>.jsonl (mongoexport's format), or what
    /// mongodump wrote (--from-dump), into the store.
    Import(ImportArgs),
    /// Write every collection of the legacy and drawer databases to DIR as JSONL.
    Export(ExportArgs),
    /// Phase 0: prepare the drawer collection and its indexes.
    #[command(subcommand)]
    Phase0(Phase0Command),
    /// Phase 1: turn dual-write on; check what it writes.
    #[command(subcommand)]
    Phase1(Phase1Command),
    /// Phase 2: back up, migrate the historical data, validate.
    #[command(subcommand)]
    Phase2(Phase2Command),
    /// Phase 3: switch plan generation to the drawers; watch its jobs.
    #[command(subcommand)]
    Phase3(Phase3Command),
    /// Phase 4: retire the legacy questionnaire collections.
    #[command(subcommand)]
    Phase4(Phase4Command),
    /// Undo a phase (1: dual-write off, 2: migrated data, 3: reads back to
    /// legacy, 4: collections renamed back).
    Rollback(RollbackArgs),
    /// Rehearse the whole plan on a fresh embedded store loaded from a
    /// mongodump (folder or archive), and write a report; never opens the
    /// configured store.
    Rehearse(RehearseArgs),
}

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Where backups live (for the backup gate and age).
    #[arg(long, env = "EDN_BACKUP_DIR", default_value = "./backups")]
    pub backup_dir: PathBuf,
}

/// Phase 1 steps.
#[derive(Debug, Subcommand)]
pub enum Phase1Command {
    /// Set USE_CLIENT_DRAWER_WRITE=true in the backend's .env (gate: phase 0
    /// ready), recorded so the check knows when dual-write began.
    Enable(EnableArgs),
    /// Compare every legacy questionnaire and follow-up dated from --since
    /// with its drawer entry; exit 3 below the match-rate threshold.
    DualWriteCheck(CheckArgs),
}

/// Arguments of `phase1 enable`.
#[derive(Debug, Args)]
pub struct EnableArgs {
    /// How to restart the backend.
    #[command(flatten)]
    pub restart: RestartArgs,
    /// Going past unmet gates.
    #[command(flatten)]
    pub force: ForceArgs,
}

/// Arguments of `phase1 dual-write-check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Check documents dated from this day or time (default: when dual-write
    /// began: the recorded `phase1 enable`, else the earliest dual-write entry).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub since: Option<DateTime<Utc>>,
    /// Minimum match rate, in percent.
    #[arg(long, default_value_t = 98.0)]
    pub min_match: f64,
}

/// Phase 3 steps.
#[derive(Debug, Subcommand)]
pub enum Phase3Command {
    /// Set USE_CLIENT_DRAWER_READ=true behind its gates (phase 2 validated
    /// after the last migration or rollback, a verified backup younger than
    /// 24 h, dual-write checked and on); asks first unless --yes.
    Switch(SwitchArgs),
    /// Generation jobs by mode (TO BE / AS IS) and success rate; exit 3 when
    /// TO BE succeeds under 95 % ("rollback recommended" under 90 %).
    Status(JobsArgs),
}

/// Arguments of `phase3 switch`.
#[derive(Debug, Args)]
pub struct SwitchArgs {
    /// Where backups live (for the backup gate).
    #[arg(long, env = "EDN_BACKUP_DIR", default_value = "./backups")]
    pub backup_dir: PathBuf,
    /// How to restart the backend.
    #[command(flatten)]
    pub restart: RestartArgs,
    /// Going past unmet gates.
    #[command(flatten)]
    pub force: ForceArgs,
}

/// Arguments of `phase3 status`.
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Count jobs created from this day or time (default: the last 24 h).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub since: Option<DateTime<Utc>>,
    /// Minimum TO BE success rate, in percent.
    #[arg(long, default_value_t = 95.0)]
    pub min_success: f64,
}

/// Phase 4 steps.
#[derive(Debug, Subcommand)]
pub enum Phase4Command {
    /// Set DISABLE_LEGACY_ENDPOINTS=true, then rename the legacy
    /// questionnaire collections <name>_DEPRECATED_YYYYMMDD (gates: the switch
    /// has held 48 h, TO BE jobs healthy); asks first unless --yes.
    Cleanup(CleanupArgs),
}

/// Arguments of `phase4 cleanup`.
#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Instead: drop deprecated collections older than the retention (asks first).
    #[arg(long)]
    pub drop_expired: bool,
    /// Days a deprecated collection is kept.
    #[arg(long, default_value_t = 30)]
    pub retention_days: i64,
    /// Where backups live.
    #[arg(long, env = "EDN_BACKUP_DIR", default_value = "./backups")]
    pub backup_dir: PathBuf,
    /// How to restart the backend.
    #[command(flatten)]
    pub restart: RestartArgs,
    /// Going past unmet gates.
    #[command(flatten)]
    pub force: ForceArgs,
}

/// Restarting the backend after a flag change.
#[derive(Debug, Args)]
pub struct RestartArgs {
    /// Run this (with sh -c) after changing the flags, e.g.
    /// "supervisorctl restart backend"; a failure exits 1.
    #[arg(long, env = "EDN_RESTART_CMD", value_name = "CMD")]
    pub restart_cmd: Option<String>,
    /// Kill the restart command after this many seconds.
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    pub restart_timeout: u64,
}

/// Going past unmet gates, with a recorded reason.
#[derive(Debug, Args)]
pub struct ForceArgs {
    /// Go ahead although gates are not met (needs --reason).
    #[arg(long, requires = "reason")]
    pub force: bool,
    /// Why --force is needed; recorded in the run.
    #[arg(long, requires = "force")]
    pub reason: Option<String>,
}

impl ForceArgs {
    /// The recorded reason, when --force was given.
    pub fn reason(self) -> Option<String> {
        self.reason.filter(|_| self.force)
    }
}

fn parse_date(text: &str) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    if let Ok(d) = chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S") {
        return Ok(d.and_utc());
    }
    chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
        .ok_or_else(|| format!("{t:?} is not a date: use YYYY-MM-DD or an RFC 3339 time (UTC)"))
}

/// Phase 2 steps.
#[derive(Debug, Subcommand)]
pub enum Phase2Command {
    /// Back up the legacy collections and client_drawers (mongodump layout,
    /// manifest with SHA-256), then verify it; or verify or list backups.
    Backup(BackupArgs),
    /// Migrate questionnaires, plans, follow-ups, or all (in that order).
    Migrate(MigrateArgs),
    /// Compare every user's drawer with what the legacy documents say it
    /// should hold; exit 3 when a match rate is below its threshold.
    Validate(ValidateArgs),
}

/// Arguments of `phase2 validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Minimum questionnaire match rate, in percent (0-100).
    #[arg(long, default_value_t = 95.0, value_parser = parse_percent)]
    pub min_questionnaires: f64,
    /// Minimum follow-up match rate, in percent (0-100).
    #[arg(long, default_value_t = 95.0, value_parser = parse_percent)]
    pub min_followups: f64,
    /// Minimum plan match rate, in percent (0-100).
    #[arg(long, default_value_t = 90.0, value_parser = parse_percent)]
    pub min_plans: f64,
    /// Where the JSON and Markdown reports are written.
    #[arg(long, env = "EDN_REPORT_DIR", default_value = "./reports")]
    pub report_dir: PathBuf,
    /// List every warning the migration recorded (user, kind, field path,
    /// document id; never a value), not only their counts.
    #[arg(long)]
    pub warnings: bool,
    /// Validate only partition I of N (the users `phase2 migrate --partition I/N` migrated);
    /// the phase 3 gate accepts validations of every partition as one of the whole.
    #[arg(long, value_name = "I/N", value_parser = parse_partition)]
    pub partition: Option<(u32, u32)>,
}

/// A percentage: a number from 0 to 100.
fn parse_percent(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number: give a percentage such as 95"))?;
    if (0.0..=100.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "{value} is not a percentage: give a number from 0 to 100"
        ))
    }
}

/// Arguments of `phase2 backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where backups live.
    #[arg(long, env = "EDN_BACKUP_DIR", default_value = "./backups")]
    pub backup_dir: PathBuf,
    /// Re-read a backup (the newest if no ID) against its manifest.
    #[arg(long, value_name = "ID", num_args = 0..=1, default_missing_value = "", conflicts_with = "list")]
    pub verify: Option<String>,
    /// List backups with their age.
    #[arg(long)]
    pub list: bool,
}

/// Arguments of `phase2 migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// What to migrate.
    #[arg(value_enum, default_value_t = PartArg::All)]
    pub part: PartArg,
    /// Print the plan (counts, warnings, sample diffs without values) and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Continue the last unfinished run of the same part and partition from its checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Take only partition I of N (users split by hash), e.g. 0/4.
    #[arg(long, value_name = "I/N", value_parser = parse_partition)]
    pub partition: Option<(u32, u32)>,
    /// Users per write batch (and per checkpoint); a batch also closes at 1,200 legacy documents.
    #[arg(long, env = "EDN_BATCH_SIZE", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
    /// Read at most this many legacy documents per second (be gentle with a production primary).
    #[arg(long, value_name = "DOCS_PER_SECOND")]
    pub max_rate: Option<f64>,
    /// Take the lock (this partition's, and any conflicting one) even if another run holds it (only when that run is dead).
    #[arg(long)]
    pub break_lock: bool,
    /// Go past the gates (phase 0 done; a verified backup of this store and
    /// these databases, younger than 24 h); needs --reason.
    #[arg(long, requires = "reason")]
    pub force: bool,
    /// Why --force is needed; recorded in the run.
    #[arg(long, requires = "force")]
    pub reason: Option<String>,
    /// Where backups live (for the backup gate).
    #[arg(long, env = "EDN_BACKUP_DIR", default_value = "./backups")]
    pub backup_dir: PathBuf,
    /// Pair a nutrition plan with a training plan at most this many minutes apart.
    #[arg(long, default_value_t = 60)]
    pub pairing_window_minutes: i64,
    /// Move a drawer's oldest snapshots to the archive above this size (MongoDB refuses 16 MiB).
    #[arg(long, default_value_t = 12)]
    pub max_drawer_mib: usize,
}

/// Which part of phase 2 to run (the library's `Part`, for clap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PartArg {
    /// Initial questionnaires (shared_questionnaires, inicial, profile, measurements).
    Questionnaires,
    /// Training and nutrition plans (snapshots, plans, stamps).
    Plans,
    /// Follow-ups (linked to the snapshots, so after plans).
    Followups,
    /// All three, in the right order.
    All,
}

impl From<PartArg> for Part {
    fn from(part: PartArg) -> Part {
        match part {
            PartArg::Questionnaires => Part::Questionnaires,
            PartArg::Plans => Part::Plans,
            PartArg::Followups => Part::Followups,
            PartArg::All => Part::All,
        }
    }
}

/// Arguments of `rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The phase to undo: 1 (dual-write off), 2 (migrated data), 3 (reads
    /// back to legacy) or 4 (collections renamed back).
    #[arg(long, value_name = "1|2|3|4", value_parser = clap::value_parser!(u8).range(1..=4))]
    pub phase: u8,
    /// Phase 2: restore this backup instead of undoing surgically (overwrites what was written since).
    #[arg(long, value_name = "ID")]
    pub from_backup: Option<String>,
    /// With --from-backup: restore the legacy collections too (by default only
    /// client_drawers, the snapshot archive and the quarantine are restored;
    /// the application is still writing the legacy ones).
    #[arg(long, requires = "from_backup")]
    pub include_legacy: bool,
    /// Where backups live.
    #[arg(long, env = "EDN_BACKUP_DIR", default_value = "./backups")]
    pub backup_dir: PathBuf,
    /// How to restart the backend (phases 1, 3, 4).
    #[command(flatten)]
    pub restart: RestartArgs,
    /// Going past unmet gates.
    #[command(flatten)]
    pub force: ForceArgs,
}

fn parse_partition(text: &str) -> Result<(u32, u32), String> {
    let (i, n) = text.split_once('/').ok_or("expected I/N, e.g. 0/4")?;
    let i: u32 = i.trim().parse().map_err(|_| "I must be a whole number")?;
    let n: u32 = n.trim().parse().map_err(|_| "N must be a whole number")?;
    if n == 0 || i >= n {
        return Err(format!(
            "partition {i}/{n} does not exist: use 0/{n} … {}/{n}",
            n.saturating_sub(1)
        ));
    }
    Ok((i, n))
}

fn parse_rename(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((from, to)) if !from.is_empty() && !to.is_empty() => {
            Ok((from.to_string(), to.to_string()))
        }
        _ => Err("expected FROM=TO, e.g. test_database=staging".into()),
    }
}

/// Arguments of `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A folder with one sub-folder per database, one .jsonl file per collection.
    #[arg(required_unless_present = "from_dump", conflicts_with = "from_dump")]
    pub dir: Option<PathBuf>,
    /// Load a mongodump folder instead (<db>/<coll>.bson and .metadata.json,
    /// plain or --gzip; a `phase2 backup` folder is one too) or a
    /// `mongodump --archive` file (gzipped or not), with its indexes. Each
    /// database loads under its own name, whatever --legacy-db and
    /// --drawer-db say (use --rename-db); admin, config, local, system.*
    /// collections, views and the oplog are not loaded.
    #[arg(long, value_name = "PATH")]
    pub from_dump: Option<PathBuf>,
    /// Load the dump's database FROM into the store's database TO (repeatable).
    #[arg(long, value_name = "FROM=TO", requires = "from_dump", value_parser = parse_rename)]
    pub rename_db: Vec<(String, String)>,
    /// Load only this database of the dump, by its name in the dump (repeatable).
    #[arg(long, value_name = "NAME", requires = "from_dump")]
    pub only_db: Vec<String>,
    /// Replace documents whose _id already exists instead of refusing them.
    #[arg(long)]
    pub upsert: bool,
    /// Drop each collection before loading it (asks first unless --yes).
    #[arg(long, conflicts_with = "upsert")]
    pub drop: bool,
    /// Documents per write batch.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
}

/// Arguments of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The folder to write (created if missing; existing files are replaced).
    pub dir: PathBuf,
    /// Documents per read batch.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
}

/// Phase 0 steps.
#[derive(Debug, Subcommand)]
pub enum Phase0Command {
    /// Create client_drawers with its four indexes, and user_id indexes on the
    /// legacy collections; running it again changes nothing.
    Prepare {
        /// Leave the legacy collections' indexes alone (the migration then
        /// sorts on the server with allowDiskUse).
        #[arg(long)]
        no_legacy_indexes: bool,
    },
}

/// Arguments of `rehearse`.
#[derive(Debug, Args)]
pub struct RehearseArgs {
    /// A mongodump folder (plain or --gzip), a `phase2 backup` folder, or a
    /// `mongodump --archive` file (gzipped or not).
    pub dump: PathBuf,
    /// Where the fresh store, the backup and the reports go (must not hold
    /// a rehearsal already); default ./rehearsal-<UTC time>.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Load the dump's database FROM as TO (repeatable), when the dump's
    /// names differ from --legacy-db / --drawer-db.
    #[arg(long, value_name = "FROM=TO", value_parser = parse_rename)]
    pub rename_db: Vec<(String, String)>,
    /// Minimum dual-write match rate, in percent.
    #[arg(long, default_value_t = 98.0)]
    pub min_dual_write: f64,
    /// Check what dual-write copied from this date (default: from the
    /// `phase1 enable` the dump records, else its earliest dual-write entry).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub dual_write_since: Option<DateTime<Utc>>,
    /// Minimum questionnaire match rate, in percent.
    #[arg(long, default_value_t = 95.0)]
    pub min_questionnaires: f64,
    /// Minimum follow-up match rate, in percent.
    #[arg(long, default_value_t = 95.0)]
    pub min_followups: f64,
    /// Minimum plan match rate, in percent.
    #[arg(long, default_value_t = 90.0)]
    pub min_plans: f64,
    /// Users per migration batch, as production will run it.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
    /// Pair a nutrition plan with a training plan at most this many minutes apart.
    #[arg(long, default_value_t = 60)]
    pub pairing_window_minutes: i64,
    /// Archive a drawer's oldest snapshots above this size.
    #[arg(long, default_value_t = 12)]
    pub max_drawer_mib: usize,
    /// Legacy documents production holds, for the projected duration
    /// (default: the dump's own count).
    #[arg(long, value_name = "N")]
    pub production_documents: Option<u64>,
}
