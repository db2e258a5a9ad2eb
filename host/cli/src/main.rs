//! `kast`: the command line. It parses (clap), prints, and calls the engine
//! (`kast-engine`) and the plugin host (`kast-plugins`); nothing else.
//!
//! Exit codes: 0 ok, 1 error, 2 usage, 3 `check` found damage, 4 a backup
//! completed but some entries could not be read.

mod cli;
mod commands;
mod context;
#[cfg(test)]
mod fuzz_tests;
mod jobs;
mod mount;
mod progress;
mod seen;
mod spec;
mod table;
mod ui;
mod views;

use clap::Parser;
use cli::{Cli, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn main() {
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Ls { .. }
            | Command::Find(_)
            | Command::Cat { .. }
            | Command::Diff { .. }
            | Command::Info { .. }
    ) {
        // Commands that only print end quietly when their reader goes away
        // (`kast cat … | head`), as Unix tools do; the others keep Rust's
        // default (a closed pipe is an error they report and survive).
        // SAFETY: sets a signal disposition before any thread is started.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    // First Ctrl-C: stop cleanly (what was stored stays valid); second: now.
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            jobs::shell::kill_running();
            std::process::exit(130);
        }
        eprintln!("stopping: finishing what is in flight (Ctrl-C again to quit at once)");
    });
    // Services stop on a signal as their normal end; for every other
    // command a signal that came is said, and what became of it.
    let service = matches!(
        cli.command,
        Command::Ui { .. } | Command::Agent | Command::Serve { .. } | Command::Mount(_)
    );
    let interrupted = {
        let cancel = cancel.clone();
        move || !service && cancel.load(Ordering::SeqCst)
    };
    let code = match run(&cli, cancel) {
        Ok(0) if interrupted() => {
            eprintln!("kast: the interrupt came too late to stop anything: the command completed");
            0
        }
        // Stopped part way: 130, as the shell reports a command Ctrl-C ended,
        // so a script can tell "interrupted" from "failed".
        Ok(_) if interrupted() => {
            eprintln!("kast: interrupted");
            130
        }
        Ok(code) => code,
        Err(e) if interrupted() => {
            eprintln!(
                "kast: interrupted: {}",
                views::shown(e.to_string().as_bytes())
            );
            130
        }
        Err(e) => {
            // A put-only key refused: 2, so a script can tell "not allowed
            // with this key" from a failure.
            let put_only = e.chain().any(|cause| {
                matches!(
                    cause.downcast_ref::<kast_engine::Error>(),
                    Some(kast_engine::Error::PutOnly(_))
                )
            });
            // Each cause once: many errors already quote their source.
            let mut shown = e.to_string();
            eprintln!("error: {}", views::shown(shown.as_bytes()));
            for cause in e.chain().skip(1) {
                let text = cause.to_string();
                if !shown.contains(&text) {
                    eprintln!("  caused by: {}", views::shown(text.as_bytes()));
                }
                shown = text;
            }
            if put_only { 2 } else { 1 }
        }
    };
    std::process::exit(code);
}

fn run(cli: &Cli, cancel: Arc<AtomicBool>) -> anyhow::Result<i32> {
    let ctx = context::Context::new(cli)?;
    use commands::*;
    match &cli.command {
        Command::Create(args) => store::create(&ctx, args)?,
        Command::Backup(args) => return backup::run(&ctx, args, cancel),
        Command::Ls { spec, filter } => browse::ls(&ctx, spec.as_deref(), filter)?,
        Command::Find(args) => return browse::find(&ctx, args),
        Command::Mount(args) => return mount::run(&ctx, args, cancel),
        Command::Cat { spec, filter } => browse::cat(&ctx, spec, filter)?,
        Command::Diff { from, to, filter } => browse::diff(&ctx, from, to, filter)?,
        Command::Restore {
            spec,
            to,
            overwrite,
            force,
            filter,
        } => {
            let mode = match (overwrite, force) {
                (Some(when), _) => when.mode(),
                (None, true) => kast_engine::Overwrite::Always,
                (None, false) => kast_engine::Overwrite::Refuse,
            };
            restore::run(&ctx, spec, to, mode, filter)?
        }
        Command::Check {
            fast,
            sample,
            snapshots,
        } => return store::check_cmd(&ctx, *fast, sample.as_deref(), snapshots),
        Command::Rm(args) => store::rm(&ctx, args)?,
        Command::Info { spec, filter } => store::info(&ctx, spec.as_deref(), filter)?,
        Command::Sync {
            to,
            to_passphrase_file,
            snapshots,
        } => sync::run(&ctx, to, to_passphrase_file.as_deref(), snapshots)?,
        Command::Maintenance { grace_seconds } => store::maintenance_cmd(&ctx, *grace_seconds)?,
        Command::Key(command) => key::run(&ctx, command)?,
        Command::Plugin(command) => plugin::run(&ctx, command)?,
        Command::Location(command) => location::run(&ctx, command)?,
        Command::Unlock { all } => store::unlock(&ctx, *all)?,
        Command::Job(command) => return job::run(&ctx, command, cancel),
        Command::Schedule(command) => schedule::run(&ctx, command)?,
        Command::Agent => jobs::agent::run(&ctx, cancel)?,
        Command::Report {
            since,
            prometheus,
            fail_stale,
        } => return report::run(&ctx, since, prometheus.as_deref(), *fail_stale),
        Command::Ui {
            listen,
            open,
            base_path,
        } => {
            let options = ui::Options {
                listen: *listen,
                open: *open,
                base_path: base_path.clone(),
            };
            ui::run(&ctx, &options, cancel)?
        }
        Command::Serve {
            listen,
            token_file,
            allow_delete,
            tls_cert,
            tls_key,
        } => {
            let options = serve::Options {
                listen: *listen,
                token_file: token_file.clone(),
                allow_delete: *allow_delete,
                tls: tls_cert.clone().zip(tls_key.clone()),
            };
            serve::run(&ctx, &options, cancel)?
        }
    }
    Ok(0)
}
