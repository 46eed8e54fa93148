//! The command line's grammar: global flags, the commands and their flags,
//! and the help texts clap prints. Nothing here runs anything.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::export::Format;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Sentences and tables for people.
    Text,
    /// One JSON document on stdout, for scripts.
    Json,
}

/// How `coexist plan` prints the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// As `--output` says: sentences, or the JSON plan document.
    Text,
    /// The Microsoft 365 systems' operations as an Exchange Online
    /// PowerShell script.
    Powershell,
}

/// How logs are written (on stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// coexist keeps the directories of mail systems that share one email domain
/// in step: it reads every system, builds one global address list, and
/// writes into each system the forwarding entries and contacts ("stubs") that
/// make mail flow and address books complete.
///
/// Exit codes: 0 done; 1 unexpected failure; 2 bad command line or
/// configuration; 3 a safety gate withheld changes; 4 partly done (a system
/// unreadable or operations failed); 5 the saved plan is stale; 6 `plan
/// --detailed-exitcode` found changes; 7 another coexist run holds the
/// store (nothing was done); 8 mail loops: a routing entry (coexist's or one
/// it did not make) or the catch-all relays send an address round in
/// circles (the output names the entry; nothing is written for it); 9
/// `provision`: refused, an address is taken; `deprovision`: refused, not
/// an account coexist created (nothing was changed).
#[derive(Debug, Parser)]
#[command(name = "coexist", version, about, long_about)]
pub struct Cli {
    /// The configuration file.
    #[arg(
        long,
        short,
        global = true,
        env = "COEXIST_CONFIG",
        default_value = "coexist.toml"
    )]
    pub config: PathBuf,
    /// Print results as text or as one JSON document.
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More logging (-v info, -vv debug). RUST_LOG overrides.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pull every system, plan, and apply within the safety gates.
    Sync {
        /// Lift the delete thresholds for this run (an incomplete source still holds every delete).
        #[arg(long)]
        allow_deletes: bool,
        /// Read every system in full, ignoring the cursors of incremental
        /// reads; run it now and then (say nightly): a full read catches
        /// what a delta can miss, such as a member deleted from the
        /// directory while the groups listing it did not change.
        #[arg(long)]
        full_read: bool,
        /// Believe SYSTEM's read although it shrank past
        /// safety.max_shrink_percent or came back empty (the recipients
        /// really are gone); repeat for several systems. The deletes it
        /// brings still face the delete threshold (--allow-deletes).
        #[arg(long, value_name = "SYSTEM")]
        accept_shrink: Vec<String>,
    },
    /// Show what a sync would change, without changing anything.
    Plan {
        /// Write the plan to FILE, for `coexist apply FILE`.
        #[arg(long)]
        save: Option<PathBuf>,
        /// Plan from what is staged, without reading the systems first.
        #[arg(long)]
        no_pull: bool,
        /// Plan as if the delete thresholds were lifted.
        #[arg(long)]
        allow_deletes: bool,
        /// Read every system in full, ignoring the cursors of incremental reads.
        #[arg(long, conflicts_with = "no_pull")]
        full_read: bool,
        /// Believe SYSTEM's read although it shrank past
        /// safety.max_shrink_percent or came back empty; repeatable.
        #[arg(long, value_name = "SYSTEM", conflicts_with = "no_pull")]
        accept_shrink: Vec<String>,
        /// Exit with 6 when the plan has changes (0 when there are none).
        #[arg(long)]
        detailed_exitcode: bool,
        /// How to print the plan: `text` (or JSON with `--output json`), or
        /// `powershell`: the operations of every Microsoft 365 system as an
        /// Exchange Online PowerShell script to review and run by hand
        /// (Connect-ExchangeOnline, then the cmdlets; idempotent, stops at
        /// the first error), for tenants that grant coexist no write right.
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
    },
    /// Apply exactly a saved plan; refused when the staged state changed since.
    Apply {
        /// The plan file written by `coexist plan --save`.
        file: PathBuf,
    },
    /// Validate the configuration without touching any system.
    CheckConfig,
    /// Create or upgrade the store's tables.
    Migrate,
    /// Show the history of runs.
    Runs {
        /// How many runs to show.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Write the GAL as LDIF, CSV, vCard or JSON.
    ExportGal {
        #[arg(long, value_enum, default_value_t = Format::Ldif)]
        format: Format,
        /// The LDIF base under which entries are written.
        #[arg(long)]
        base: Option<String>,
        /// Write to FILE instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Serve the GAL as a read-only LDAP address book (`[gal_server]`),
    /// refreshed from the store without a restart.
    ServeGal,
    /// Place a recipient on a system: record its home, create nothing.
    ///
    /// The way to settle a `mailbox_in_two_systems` conflict (a person with
    /// a mailbox on two systems, say during a move): the placement decides
    /// the home, the next sync writes the stubs the other systems need and
    /// removes none of the mailboxes. A placement naming a system that
    /// holds no mailbox for the address is a `placement_contradicts_mailbox`
    /// conflict until the mailbox exists. Recorded in the store's audit log
    /// and history; prints what the next sync will do for the recipient.
    /// `--clear` removes the placement (the mailbox decides again).
    Place {
        /// An address of the recipient (primary or alias).
        address: String,
        /// The system that is its home from now on.
        #[arg(required_unless_present = "clear")]
        system: Option<String>,
        /// Remove the recipient's placement instead.
        #[arg(long, conflicts_with = "system")]
        clear: bool,
        /// Record nothing; print what the next sync would do with the
        /// placement (or without it, with --clear).
        #[arg(long)]
        dry_run: bool,
    },
    /// Create a person's account at its home and the stubs everywhere else.
    ///
    /// Reads every system and refuses (exit 9, naming each conflict; nothing
    /// changed) when an address or alias is already a mailbox, an entry, a
    /// stub, a placement or a GAL entry anywhere. Then records the
    /// placement, creates the account on --home from the `provision` table
    /// of that system's connection (LDAP: an entry under its base with its
    /// object classes; Active Directory: an enabled user in its OU, the
    /// password set over LDAPS; Google: a Directory API user in its org
    /// unit, to change the password at first login), reads the systems
    /// again and applies one plan restricted to the people provisioned (its
    /// journal, gates and audit, as a sync's), and prints where mail to
    /// each address now goes from every system and from the internet.
    ///
    /// The initial password is random, shown once (or appended to
    /// --password-file, mode 0600), never stored. A failure half-way
    /// leaves mail as it was; running the same command again completes the
    /// work (the accounts it made are carried on with, not refused).
    Provision {
        /// The person's primary address (or --from-csv).
        #[arg(required_unless_present = "from_csv", conflicts_with = "from_csv")]
        address: Option<String>,
        /// The system the account is created on (with --from-csv: for the
        /// rows without a `home` column).
        #[arg(long, value_name = "SYSTEM")]
        home: Option<String>,
        /// Given name.
        #[arg(long)]
        given_name: Option<String>,
        /// Surname.
        #[arg(long)]
        surname: Option<String>,
        /// Display name (default: given name and surname).
        #[arg(long)]
        display_name: Option<String>,
        /// Another address of the person; repeatable.
        #[arg(long, value_name = "ADDRESS")]
        alias: Vec<String>,
        /// Another attribute, NAME=VALUE: title, department, company,
        /// business_phone, mobile_phone, or one the home's kind knows
        /// (Google: org_unit); repeatable.
        #[arg(long, value_name = "NAME=VALUE")]
        attribute: Vec<String>,
        /// Provision every row of FILE: a header row names the columns
        /// (address, home, given_name, surname, display_name, aliases
        /// separated by `;`, and any attribute as above); one run, one
        /// journal, a progress bar; rerun it to complete a run that
        /// stopped.
        #[arg(long, value_name = "FILE")]
        from_csv: Option<PathBuf>,
        /// Append each initial password (`address,password`) to FILE,
        /// created with mode 0600, instead of printing it; required with
        /// --from-csv.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// Read and check every system and print the exact steps (the
        /// accounts, the placements, the stub operations); change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Move a person's mailbox to another system, make-before-break.
    ///
    /// Each step is a change of its own, journalled and audited, and mail
    /// to the person is delivered at every instant: (1) the person is
    /// placed on the old home, the account is made on --to (as `provision`
    /// makes it) and coexist's stub there removed; (2) the placement
    /// becomes --to, the old account forwards to the person's address at
    /// --to's routing domain (OpenLDAP: mailRoutingAddress; Active
    /// Directory: targetAddress), recorded as coexist's, and every other
    /// system's stub is retargeted. `--finish` (once the data is migrated):
    /// coexist's stub is written at the old home, then the old account is
    /// retired (suspended, coexist's forward and the person's addresses
    /// taken off; its mail data stays). Rerun the same command to complete
    /// one that stopped. README: what each pair of kinds does, and what is
    /// left to do by hand.
    Move {
        /// An address of the person (or --from-csv).
        #[arg(required_unless_present = "from_csv", conflicts_with = "from_csv")]
        address: Option<String>,
        /// The system the mailbox moves to (with --from-csv: for the rows
        /// without a `to` column).
        #[arg(long, value_name = "SYSTEM", required_unless_present_any = ["finish", "from_csv"])]
        to: Option<String>,
        /// Finish moves already flipped: the old home's stub, the old
        /// account retired.
        #[arg(long)]
        finish: bool,
        /// Move every row of FILE (columns `address` and `to`); one run,
        /// rerun it to complete a run that stopped.
        #[arg(long, value_name = "FILE")]
        from_csv: Option<PathBuf>,
        /// Append the new accounts' initial passwords (`address,password`)
        /// to FILE, created with mode 0600, instead of printing them.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// Read and check every system, print the steps; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Test aid: stop before the change after the first N (as a crash
        /// between two changes would).
        #[arg(long, value_name = "N", hide = true)]
        stop_after: Option<usize>,
    },
    /// Suspend a person's account at its home and remove its stubs elsewhere.
    ///
    /// Reads every system, finds the mailbox holding ADDRESS (on its
    /// placement when two hold it), suspends it (Active Directory: the
    /// account disabled; OpenLDAP: the `suspend` attributes of the
    /// `provision` table; the simulated system) and applies one plan
    /// restricted to the person: a disabled account leaves the GAL, so its
    /// stubs are removed from every other system (mail to it bounces there
    /// rather than vanishing), with the plan's journal, gates and audit.
    /// Mail data is never deleted. Only an account coexist created (`coexist
    /// provision`, in the audit log) is suspended: any other is refused
    /// (exit 9). Asks for confirmation unless --yes (required when stdin is
    /// not a terminal). Running it again completes a run that stopped.
    Deprovision {
        /// An address of the person.
        address: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Read and check every system and print the exact steps (the
        /// account, the stubs removed); change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Trace where a message from SYSTEM to ADDRESS goes with today's GAL, stubs and topology.
    Route {
        address: String,
        /// The system the sender is on, or `internet`.
        #[arg(long)]
        from: String,
    },
    /// Check credentials, routing domains and mail routing of every system.
    Doctor,
    /// Run every organisation's sync on its schedule until stopped.
    ///
    /// Each organisation is synced as `coexist sync` syncs it, on the cron
    /// schedules of its `[daemon]` table (`sync_schedule`, default every 15
    /// minutes; `full_read_schedule`, default nightly at 02:30, reads every
    /// system in full), in its `time_zone` (default UTC), each run a random
    /// `jitter_seconds` (default 30) after its time. A run never overlaps
    /// another on the same store: one that finds the run lock held (an
    /// admin's sync, another daemon) is skipped and counted. Several daemons
    /// may serve the same organisations from one PostgreSQL store: each
    /// organisation is synced by one of them at a time, and a daemon that
    /// died is taken over once its lock's lease lapses
    /// (`lock_lease_seconds`, default 120; at once on the same host).
    ///
    /// SIGTERM or SIGINT: runs in flight stop before their next changes (what
    /// was done is recorded, the lock released) and the daemon exits 0
    /// within --stop-timeout. SIGHUP: the configuration is read again; a file
    /// that is no longer valid keeps its organisation's previous
    /// configuration, and the log says why. Logs go to stderr (info level;
    /// `--log-format json` for one JSON object per line), and systemd is
    /// told when the daemon is ready (sd_notify) when it asks.
    Daemon {
        /// Serve every organisation of DIR: each *.toml file in it, each
        /// with its own `[organisation] id`, schedule and store (on one
        /// PostgreSQL database, the schema `coexist_<id>` each). Without
        /// it, the one organisation of --config.
        #[arg(long, value_name = "DIR")]
        config_dir: Option<PathBuf>,
        /// At most this many seconds between SIGTERM and exit: runs still
        /// going then are abandoned (their locks released; the next run
        /// completes their work).
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        stop_timeout: u64,
        /// At most N runs at once (others wait for a slot): each holds
        /// connections to its store and systems, and memory while it plans.
        /// Mind PostgreSQL's max_connections: a run uses up to 4.
        #[arg(long, value_name = "N", default_value_t = 4)]
        concurrent_runs: usize,
    },
    /// Run the self-contained acmecorp demo (no configuration or credentials needed).
    Demo {
        /// Where to write the demo organisation, store and GAL (default: a new temporary folder).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}
