//! `trellis`: the command-line client for Trellis and other MergeTB-compatible portals.
//!
//! It speaks the portal's gRPC API (`trellis-api` clients) in the style of Merge's `mrg`:
//! `trellis login alice`, `trellis new project p1`, `trellis list experiments --all`, ...
//! It is a thin client: it holds no state but a small configuration file with the server and
//! the login token, and it leaves every decision (validation, policy) to the portal.
//! It is not a library and not an administration console for the daemon itself.
//!
//! # Layout
//!
//! - `cli.rs`: the command line (clap derive); unique prefixes of commands are accepted.
//! - `config.rs`: the configuration file (`server`, `token`, `username`; mode 0600).
//! - `client.rs`: connecting, the bearer-token interceptor, and rendering portal errors.
//! - `commands/`: one file per noun (`auth`, `projects`, `experiments`, `organizations`,
//!   `users`, `keys`, `models`, `realizations`, `facilities`, `pools`, `materializations`,
//!   `xdc`, `xdc_ssh`),
//!   dispatched from `commands/mod.rs`.
//! - `output.rs`: tables, `key: value` blocks, and the hand-written JSON of each message.
//! - `ssh.rs`: the SSH key, certificate and config `trellis login` installs, and the `ssh`/`scp`
//!   command lines of `trellis xdc ssh|scp`.
//! - `error.rs`: [`error::CliError`].
//!
//! Exit status: 0 on success, 2 for usage errors (clap), 1 for anything else.

mod cli;
mod client;
mod commands;
mod config;
mod error;
mod output;
mod ssh;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // One command makes a handful of sequential calls: a single thread is plenty.
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(error::CliError::Runtime)
        .and_then(|runtime| runtime.block_on(commands::run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            report(&err);
            ExitCode::FAILURE
        }
    }
}

/// Prints `error: <error>: <cause>: <cause>...` on standard error.
fn report(err: &error::CliError) {
    let mut line = format!("error: {err}");
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        // Transport errors wrap each other with the same text; say it once.
        let text = format!(": {cause}");
        if !line.ends_with(&text) {
            line.push_str(&text);
        }
        source = cause.source();
    }
    eprintln!("{line}");
}
