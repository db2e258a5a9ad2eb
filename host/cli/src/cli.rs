//! The command line, as clap sees it. Scripts rely on it as `docs/cli.md`
//! describes it (names, exit codes, `--json` fields); everything here only
//! parses.

use clap::{Args, Parser, Subcommand};

/// The heading that sets the options every command takes apart from its own.
const GLOBAL: &str = "Global options";
use std::path::PathBuf;

/// Deduplicating, end-to-end encrypted backups.
#[derive(Parser, Debug)]
#[command(name = "kast", version, about, long_about = None, arg_required_else_help = true)]
pub struct Cli {
    /// The store: a path, a URL (fs:///…, sftp://…), or @name. Default: a
    /// local store in the user's data directory.
    #[arg(short = 's', long, env = "KAST_STORE", global = true, help_heading = GLOBAL)]
    pub store: Option<String>,
    /// Print one JSON document instead of text (docs/cli.md names every field).
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,
    /// Print nothing but errors.
    #[arg(short, long, global = true, help_heading = GLOBAL)]
    pub quiet: bool,
    /// The config file (saved locations, jobs). Default:
    /// ~/.config/kast/config.toml.
    #[arg(long, env = "KAST_CONFIG", global = true, help_heading = GLOBAL)]
    pub config: Option<PathBuf>,
    /// Read the passphrase from this file (first line).
    #[arg(long, env = "KAST_PASSPHRASE_FILE", global = true, help_heading = GLOBAL)]
    pub passphrase_file: Option<PathBuf>,
    /// Memory one connector plugin instance may use, in MiB.
    #[arg(
        long,
        env = "KAST_PLUGIN_MEMORY_MIB",
        global = true,
        default_value_t = 512,
        help_heading = GLOBAL
    )]
    pub plugin_memory_mib: usize,
    /// Seconds one connector call may take before it is stopped.
    #[arg(
        long,
        env = "KAST_PLUGIN_TIMEOUT",
        global = true,
        default_value_t = 300,
        help_heading = GLOBAL
    )]
    pub plugin_timeout: u64,
    /// Append what plugins print (stdout, stderr) to this file, one line
    /// at a time, escaped and bounded (16 MiB): for plugin authors.
    #[arg(long, env = "KAST_PLUGIN_LOG", global = true, help_heading = GLOBAL)]
    pub plugin_log: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new store.
    Create(CreateArgs),
    /// Back up one or more locations (a local path is fs).
    Backup(BackupArgs),
    /// List snapshots, or the entries at a path inside one.
    Ls {
        /// SNAPSHOT[:PATH]; without it, every snapshot.
        spec: Option<String>,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Find files and folders by name in every snapshot (or those the
    /// filters admit): `SNAPSHOT:PATH` of each match, with size and time.
    Find(FindArgs),
    /// Show every snapshot as a read-only folder (FUSE) at DIR, until
    /// `fusermount3 -u DIR`, Ctrl-C or SIGTERM.
    Mount(MountArgs),
    /// Write one file of a snapshot to standard output.
    Cat {
        /// SNAPSHOT:PATH
        spec: String,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// What changed between two snapshots (or two directories in them).
    Diff {
        /// SNAPSHOT[:PATH]
        from: String,
        /// SNAPSHOT[:PATH]
        to: String,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Restore a snapshot, or a path inside it, to a location.
    Restore {
        /// SNAPSHOT[:PATH]
        spec: String,
        /// Where to write: a path or a URL.
        #[arg(long)]
        to: String,
        /// What to do with entries already there. Without it, a restore
        /// that finds any in its way writes nothing and names them.
        #[arg(long, value_enum, value_name = "WHEN")]
        overwrite: Option<OverwriteArg>,
        /// Replace every entry in the way: the same as --overwrite always.
        #[arg(long, conflicts_with = "overwrite")]
        force: bool,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Verify snapshots down to every byte (exit code 3 on damage).
    Check {
        /// Structure and index only: read trees, not pack data.
        #[arg(long)]
        fast: bool,
        /// Read every byte of only this share of packs (e.g. 5%), picked at
        /// random each time; the rest are checked as --fast does.
        #[arg(long, conflicts_with = "fast")]
        sample: Option<String>,
        /// Snapshots to check; all when none are given.
        snapshots: Vec<String>,
    },
    /// Remove snapshots by id, or by a retention policy.
    Rm(RmArgs),
    /// Browse, compare, restore and check backups in a web browser.
    Ui {
        /// Address and port to serve on (default: 127.0.0.1 and a free port).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Open the printed URL in the desktop's browser.
        #[arg(long)]
        open: bool,
        /// Serve under this path (behind a reverse proxy), e.g. /kast.
        #[arg(long, default_value = "")]
        base_path: String,
    },
    /// Serve the store over HTTP to other machines' kast (`-s http://HOST:PORT/?token_file=F`),
    /// append-only unless --allow-delete: they can add backups, not delete any.
    Serve {
        /// Address and port to listen on.
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// The file whose first line is the token clients must present.
        #[arg(long)]
        token_file: PathBuf,
        /// Let clients delete and replace objects (rm and maintenance
        /// through the server).
        #[arg(long)]
        allow_delete: bool,
        /// Serve HTTPS with this certificate chain (PEM; with --tls-key).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The certificate's private key (PEM; with --tls-cert).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Details of the store, or of one snapshot.
    Info {
        /// SNAPSHOT
        spec: Option<String>,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Copy snapshots to another store (only the blobs it lacks; the stores
    /// may have different passphrases and keys).
    Sync {
        /// The target store: a path, a URL, or @name.
        #[arg(long)]
        to: String,
        /// The target's passphrase file (else KAST_TO_PASSPHRASE, else asked).
        #[arg(long)]
        to_passphrase_file: Option<PathBuf>,
        /// Snapshots to copy; all when none are given.
        snapshots: Vec<String>,
    },
    /// Reclaim space: drop what no snapshot reaches, repack, merge the index.
    Maintenance {
        /// Packs no index lists are deleted only after this many seconds
        /// (they may belong to a backup still running elsewhere).
        #[arg(long, default_value_t = 3600)]
        grace_seconds: u64,
    },
    /// Manage the passphrases that open the store.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Manage connector plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Save locations under a name, to use as @name.
    #[command(subcommand)]
    Location(LocationCommand),
    /// Named jobs from the config file: list, show, run one now.
    #[command(subcommand)]
    Job(JobCommand),
    /// Run jobs on their schedules from a systemd timer or cron.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Run every scheduled job in the foreground, for hosts without systemd
    /// or cron (containers); stops cleanly on SIGTERM or Ctrl-C.
    Agent,
    /// What the jobs did: last success, failures, growth, stale sources.
    Report {
        /// How far back to count runs: 7d, 24h, 4w…
        #[arg(long, default_value = "7d")]
        since: String,
        /// Also write the figures in Prometheus text format to this file
        /// (for node_exporter's textfile collector).
        #[arg(long)]
        prometheus: Option<PathBuf>,
        /// Exit with status 5 when any job is stale, for a monitoring
        /// check or `kast report --fail-stale || mail …` from cron.
        #[arg(long)]
        fail_stale: bool,
    },
    /// Remove stale locks (or every lock with --all) left by crashed runs.
    Unlock {
        #[arg(long)]
        all: bool,
    },
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Argon2id memory in MiB (default 256). Lower values weaken the
    /// passphrase protection: meant for tests.
    #[arg(long, default_value_t = 256)]
    pub kdf_memory_mib: u32,
    /// Argon2id iterations (default 4).
    #[arg(long, default_value_t = 4)]
    pub kdf_iterations: u32,
    /// Size packs are filled to, in MiB (1 to 1024; default 16). Larger
    /// packs mean fewer objects on a remote store, smaller ones less to
    /// re-send when a backup is interrupted.
    #[arg(long, default_value_t = 16)]
    pub pack_size_mib: u32,
    /// What every backup into the store compresses with: zstd[:LEVEL]
    /// (1 to 19; level 3 when left out), lz4 (fastest, larger) or none.
    /// Fixed for the store's life; each frame records its own codec.
    #[arg(long, default_value = "zstd:3", value_parser = parse_compression)]
    pub compression: kast_engine::Compression,
}

fn parse_compression(text: &str) -> Result<kast_engine::Compression, String> {
    text.parse().map_err(|e: kast_engine::Error| e.to_string())
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// What to back up: paths or URLs.
    #[arg(required_unless_present_any = ["stdin", "from_command"])]
    pub locations: Vec<String>,
    /// Back up standard input as the file NAME of a new snapshot, whose
    /// source is `stdin:NAME` (`pg_dump app | kast backup --stdin app.sql`).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["locations", "from_command"])]
    pub stdin: Option<String>,
    /// Run the command after `--` (no shell) and back up its standard
    /// output as NAME, as --stdin does; if it fails, no snapshot is written
    /// (`kast backup --from-command app.sql -- pg_dump app`).
    #[arg(
        long,
        value_name = "NAME",
        requires = "command",
        conflicts_with = "locations"
    )]
    pub from_command: Option<String>,
    /// The command of --from-command and its arguments.
    #[arg(last = true, value_name = "CMD", requires = "from_command")]
    pub command: Vec<String>,
    /// A tag for the snapshots (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Leave out paths matching this gitignore-style pattern (repeatable).
    #[arg(long = "exclude")]
    pub excludes: Vec<String>,
    /// Read exclude patterns from a file, one per line.
    #[arg(long = "exclude-file")]
    pub exclude_files: Vec<PathBuf>,
    /// Stay on the filesystem of each location: folders where another
    /// filesystem is mounted are kept, empty. Pseudo filesystems (/proc,
    /// /sys, /dev…) are always left out unless named as a location.
    #[arg(long, short = 'x')]
    pub one_file_system: bool,
}

/// Which snapshots a command considers.
#[derive(Args, Debug, Default, Clone)]
#[command(next_help_heading = "Snapshot filters")]
pub struct FilterArgs {
    /// Only snapshots with this tag (repeatable: all must match).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Only snapshots of this source location.
    #[arg(long)]
    pub source: Option<String>,
    /// Only snapshots taken on this host.
    #[arg(long)]
    pub host: Option<String>,
    /// Only snapshots taken before this time (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long)]
    pub before: Option<String>,
    /// Only snapshots taken at or after this time.
    #[arg(long, visible_alias = "since")]
    pub after: Option<String>,
}

#[derive(Args, Debug)]
pub struct MountArgs {
    /// An existing folder to mount on (it shows `ids/`, `latest/`,
    /// `by-source/` and `by-tag/`).
    pub dir: PathBuf,
    /// Decrypted file chunks kept for rereading, in MiB (the kernel keeps
    /// the pages read besides).
    #[arg(long, default_value_t = 32)]
    pub cache_mib: usize,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub struct FindArgs {
    /// A glob (`*`, `?`, `[abc]`, `{a,b}`) matched against each entry's
    /// name; with a `/` in it, against its whole path from the snapshot's
    /// root, where `**` crosses folders (`src/**/*.rs`).
    pub pattern: String,
    /// Each matching path once, whatever the snapshots that hold it,
    /// sorted: where a file ever was, not every copy of it.
    #[arg(long)]
    pub path_only: bool,
    /// Match letters regardless of case.
    #[arg(short = 'i', long)]
    pub ignore_case: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Snapshots to remove.
    pub snapshots: Vec<String>,
    #[arg(long)]
    pub keep_last: Option<u32>,
    #[arg(long)]
    pub keep_hourly: Option<u32>,
    #[arg(long)]
    pub keep_daily: Option<u32>,
    #[arg(long)]
    pub keep_weekly: Option<u32>,
    #[arg(long)]
    pub keep_monthly: Option<u32>,
    #[arg(long)]
    pub keep_yearly: Option<u32>,
    /// Show what would go, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Add a passphrase (asked for, or from KAST_NEW_PASSPHRASE / --new-passphrase-file).
    Add {
        #[arg(long)]
        new_passphrase_file: Option<PathBuf>,
        /// A key that can add backups and nothing else: it cannot read,
        /// restore, list the contents of, or delete any backup, its own
        /// included. For machines that may be stolen or taken over.
        #[arg(long)]
        put_only: bool,
    },
    /// List the store's keys.
    List,
    /// Save the key you opened the store with in a local file (readable by
    /// you only), so commands on this machine skip the passphrase and its
    /// cost. Anyone who can read that file holds the key: with a full key,
    /// they can read the backups; with a put-only key, add to them.
    SaveLocal,
    /// Delete the local key file again.
    ForgetLocal,
    /// Remove a key (not the one you opened the store with).
    Remove { name: String },
}

#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Validate a .wasm connector and install it.
    Install {
        file: PathBuf,
        /// Replace an installed plugin with the same name or a scheme this
        /// one claims (otherwise refused, naming it).
        #[arg(long)]
        replace: bool,
    },
    /// List built-in and installed plugins.
    List,
    /// Remove an installed plugin.
    Remove { name: String },
    /// Show one plugin: version, schemes, roles, what it may reach.
    Info { name: String },
    /// Write the connector SDK into DIR: the Rust crate kast-sdk, and the
    /// contract this kast speaks (DIR/wit/connector.wit) for any language.
    Sdk { dir: PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum JobCommand {
    /// The jobs in the config file.
    List,
    /// One job's settings and its last runs.
    Show { name: String },
    /// Run a job now (exit 0 done, 4 done with unreadable entries, 1 failed).
    Run { name: String },
}

#[derive(Subcommand, Debug)]
pub enum ScheduleCommand {
    /// Schedule a job: a systemd user timer where systemd runs, else cron.
    Install {
        name: String,
        /// Run this often (default: the job's `every`).
        #[arg(long)]
        every: Option<String>,
        /// Run at these times, e.g. "Mon..Fri 02:00" (default: the job's
        /// `calendar`).
        #[arg(long)]
        calendar: Option<String>,
        /// Which scheduler (default: systemd when it is running, else cron).
        #[arg(long, value_enum)]
        init: Option<crate::commands::schedule::Init>,
        /// Print the units or the crontab line; install nothing.
        #[arg(long)]
        print: bool,
    },
    /// Jobs scheduled by systemd timers or cron.
    List,
    /// Stop scheduling a job.
    Remove { name: String },
}

#[derive(Subcommand, Debug)]
pub enum LocationCommand {
    /// Save URL under NAME (then use @NAME anywhere a location goes).
    Add {
        name: String,
        url: String,
    },
    List,
    Remove {
        name: String,
    },
}

/// `kast restore --overwrite`: what to do with an entry already there.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum OverwriteArg {
    /// Keep it; restore only what is missing.
    Never,
    /// Replace it if the snapshot's modification time is newer.
    IfNewer,
    /// Replace it unless kind, size and modification time are the snapshot's.
    IfChanged,
    /// Replace it, whatever it is (a folder in the way of a file too).
    Always,
}

impl OverwriteArg {
    /// The engine's mode for it.
    pub fn mode(self) -> kast_engine::Overwrite {
        match self {
            OverwriteArg::Never => kast_engine::Overwrite::Never,
            OverwriteArg::IfNewer => kast_engine::Overwrite::IfNewer,
            OverwriteArg::IfChanged => kast_engine::Overwrite::IfChanged,
            OverwriteArg::Always => kast_engine::Overwrite::Always,
        }
    }
}
