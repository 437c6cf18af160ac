//! The config file, layered under the environment and the command line.
//!
//! Precedence: flags > environment variables > config file > defaults. The
//! file is a TOML table whose keys are the long options of `sse-bridge serve`
//! in snake_case (`ack_timeout = "10s"` for `--ack-timeout 10s`; a repeatable
//! option takes an array). `worker` reads the same file and skips the keys it
//! has no option for, so one file can serve both.
//!
//! clap does all the parsing. The command line is parsed once to learn the
//! config file and which options were given as flags or environment
//! variables (`ArgMatches::value_source`); every other option the file sets
//! becomes an argument `--name=value` placed before the real ones, and the
//! whole is parsed again. So file values go through the same value parsers,
//! checks and conflicts as flags, and `config print` can tell every
//! setting's origin.

mod file;
mod print;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::error::{ContextKind, ContextValue};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, CommandFactory, FromArgMatches};

use crate::cli::Cli;
use file::ConfigFile;
pub use print::Provenance;

/// The id of the `--config` option, which a config file cannot set.
const CONFIG_FILE_ARG: &str = "config";

/// The subcommand whose options are the config file's keys.
const SETTINGS_SUBCOMMAND: &str = "serve";

/// The command line, with the config file layered in.
#[derive(Debug)]
pub struct CommandLine {
    pub cli: Cli,
    /// Where each setting of the chosen subcommand came from.
    pub provenance: Provenance,
}

/// Why the command line could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum CommandLineError {
    /// The flags or environment variables themselves (or `--help`,
    /// `--version`): clap reports and exits as usual.
    #[error(transparent)]
    Clap(#[from] clap::Error),
    #[error(transparent)]
    ConfigFile(#[from] ConfigFileError),
}

/// What is wrong with a config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read the config file {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the config file {} is not valid TOML", path.display())]
    Syntax {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("{}:{line}: unknown key `{key}`; {hint}", path.display())]
    UnknownKey {
        path: PathBuf,
        line: usize,
        key: String,
        hint: String,
    },
    #[error("{}:{line}: `{key}` must be {expected}, found {found}", path.display())]
    WrongType {
        path: PathBuf,
        line: usize,
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    /// clap refused the value of `key` (a bad duration, number, choice...).
    #[error("{}:{line}: `{key}`: {}", path.display(), clap_message(error))]
    InvalidValue {
        path: PathBuf,
        line: usize,
        key: String,
        error: clap::Error,
    },
    /// clap refused the file's settings together (conflicting options).
    #[error("config file {}: {}", path.display(), clap_message(error))]
    Rejected { path: PathBuf, error: clap::Error },
}

/// Parses `args` (the program name first) with the config file, if the
/// chosen subcommand was given one, layered under flags and environment.
pub fn parse_command_line(args: Vec<OsString>) -> Result<CommandLine, CommandLineError> {
    let command = Cli::command();
    let matches = command.clone().try_get_matches_from(&args)?;
    let cli = Cli::from_arg_matches(&matches)?;
    let Some(path) = cli.command.config_file() else {
        return Ok(CommandLine {
            provenance: Provenance::new(&command, &matches, None),
            cli,
        });
    };
    let file = ConfigFile::read(path)?;
    let settings = command
        .find_subcommand(SETTINGS_SUBCOMMAND)
        .expect("the settings subcommand exists");
    let (subcommand_depth, chosen) = chosen_subcommand(&command, &matches);
    let chosen_matches = chosen_matches(&matches);

    let mut file_args = Vec::new();
    let mut keys_from_file = BTreeSet::new();
    for entry in &file.entries {
        let Some(arg) = settable_args(settings).find(|arg| setting_key(arg) == entry.key) else {
            return Err(unknown_key(settings, &file, entry).into());
        };
        let Some(arg) = settable_args(chosen).find(|own| own.get_id() == arg.get_id()) else {
            continue; // a `serve` setting this subcommand has no option for
        };
        let given = chosen_matches.value_source(arg.get_id().as_str());
        if matches!(
            given,
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        file_args.extend(entry.to_args(arg, &file.path)?);
        keys_from_file.insert(entry.key.clone());
    }

    // The program and subcommand names, the file's arguments, then the
    // real ones (clap has no options before the subcommand but --help and
    // --version, which never get this far).
    let split = 1 + subcommand_depth;
    let layered_args: Vec<OsString> = args[..split]
        .iter()
        .cloned()
        .chain(file_args)
        .chain(args[split..].iter().cloned())
        .collect();
    let refused = |error| refused_file(&file, &keys_from_file, error);
    let matches = command
        .clone()
        .try_get_matches_from(layered_args)
        .map_err(refused)?;
    let cli = Cli::from_arg_matches(&matches).map_err(refused)?;
    Ok(CommandLine {
        provenance: Provenance::new(&command, &matches, Some((file.path, keys_from_file))),
        cli,
    })
}

/// The options a config file may set: those with a long name, except
/// `--config` itself (and clap's `--help`, `--version`).
fn settable_args(command: &clap::Command) -> impl Iterator<Item = &Arg> {
    command.get_arguments().filter(|arg| {
        arg.get_long().is_some()
            && arg.get_id() != CONFIG_FILE_ARG
            && !matches!(arg.get_action(), ArgAction::Help | ArgAction::Version)
    })
}

/// An option's key in a config file: its long name in snake_case.
fn setting_key(arg: &Arg) -> String {
    arg.get_long().unwrap_or_default().replace('-', "_")
}

/// The innermost subcommand chosen on the command line, and how many
/// subcommand names lead to it.
fn chosen_subcommand<'a>(
    mut command: &'a clap::Command,
    mut matches: &ArgMatches,
) -> (usize, &'a clap::Command) {
    let mut depth = 0;
    while let Some((name, sub_matches)) = matches.subcommand() {
        command = command
            .find_subcommand(name)
            .expect("clap matched a subcommand it knows");
        matches = sub_matches;
        depth += 1;
    }
    (depth, command)
}

/// The matches of the innermost subcommand chosen.
fn chosen_matches(mut matches: &ArgMatches) -> &ArgMatches {
    while let Some((_, sub_matches)) = matches.subcommand() {
        matches = sub_matches;
    }
    matches
}

/// The error for a key no option has, with a hint: the closest key (a typo,
/// the kebab-case spelling, a plural), else where the keys come from.
fn unknown_key(
    settings: &clap::Command,
    file: &ConfigFile,
    entry: &file::Entry,
) -> ConfigFileError {
    let closest_key = settable_args(settings)
        .map(setting_key)
        .map(|key| (strsim::jaro(&key, &entry.key), key))
        .max_by(|(a, _), (b, _)| a.total_cmp(b))
        .filter(|(similarity, _)| *similarity > 0.8)
        .map(|(_, key)| key);
    let hint = if entry.key == CONFIG_FILE_ARG {
        "a config file cannot name another one".to_owned()
    } else if let Some(key) = closest_key {
        format!("did you mean `{key}`?")
    } else {
        format!(
            "the keys are the long options of `sse-bridge {SETTINGS_SUBCOMMAND}` in snake_case \
             (`sse-bridge config print` lists them)"
        )
    };
    ConfigFileError::UnknownKey {
        path: file.path.clone(),
        line: entry.line,
        key: entry.key.clone(),
        hint,
    }
}

/// clap's refusal of the layered command line, which parsed without the
/// file: blamed on the file's key clap names, else on the file as a whole.
fn refused_file(
    file: &ConfigFile,
    keys_from_file: &BTreeSet<String>,
    error: clap::Error,
) -> ConfigFileError {
    let named_key = match error.get(ContextKind::InvalidArg) {
        // "--ack-timeout <ACK_TIMEOUT>"
        Some(ContextValue::String(arg)) => arg
            .split_whitespace()
            .next()
            .and_then(|flag| flag.strip_prefix("--"))
            .map(|long| long.replace('-', "_")),
        _ => None,
    };
    match named_key
        .filter(|key| keys_from_file.contains(key))
        .and_then(|key| file.entry(&key))
    {
        Some(entry) => ConfigFileError::InvalidValue {
            path: file.path.clone(),
            line: entry.line,
            key: entry.key.clone(),
            error,
        },
        None => ConfigFileError::Rejected {
            path: file.path.clone(),
            error,
        },
    }
}

/// clap's message without its `error: ` prefix, usage and `--help` advice,
/// which speak of flags the user did not type.
fn clap_message(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    rendered
        .trim_start_matches("error: ")
        .split("\n\n")
        .filter(|part| !part.starts_with("Usage:") && !part.starts_with("For more information"))
        .collect::<Vec<_>>()
        .join("\n\n")
        .trim_end()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_serve_option_but_config_is_a_setting() {
        let command = Cli::command();
        let serve = command.find_subcommand(SETTINGS_SUBCOMMAND).unwrap();
        let keys: Vec<String> = settable_args(serve).map(setting_key).collect();
        for key in [
            "listen",
            "ack_timeout",
            "api_key",
            "kafka_property",
            "with_worker",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
        }
        assert!(!keys.iter().any(|k| k == CONFIG_FILE_ARG));
    }

    #[test]
    fn worker_settings_are_serve_settings() {
        let command = Cli::command();
        let serve = command.find_subcommand(SETTINGS_SUBCOMMAND).unwrap();
        let worker = command.find_subcommand("worker").unwrap();
        for arg in settable_args(worker) {
            let key = setting_key(arg);
            assert!(
                settable_args(serve)
                    .any(|own| setting_key(own) == key && own.get_id() == arg.get_id()),
                "the worker's `{key}` is no serve setting: a config file could not set it"
            );
        }
    }
}
