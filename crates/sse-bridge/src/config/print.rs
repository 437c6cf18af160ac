//! `sse-bridge config print`: every setting with its effective value and
//! where that came from, as TOML, secrets redacted.

use std::any::TypeId;
use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches};
use toml::Value;

use super::{SETTINGS_SUBCOMMAND, chosen_matches, chosen_subcommand, settable_args, setting_key};

/// What a redacted secret is shown as.
const REDACTED: &str = "***";

/// Lines of `key = value` longer than this are not padded to align comments.
const ALIGN_UP_TO: usize = 48;

/// Where each setting of the chosen subcommand came from.
#[derive(Debug)]
pub struct Provenance {
    command: clap::Command,
    matches: ArgMatches,
    /// The config file and the keys whose values were taken from it.
    file: Option<(PathBuf, BTreeSet<String>)>,
}

/// Where a setting's value came from.
enum Origin {
    Default,
    File,
    Env(String),
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File => f.write_str("file"),
            Origin::Env(variable) => write!(f, "env {variable}"),
            Origin::Flag(long) => write!(f, "flag --{long}"),
        }
    }
}

impl Provenance {
    /// `matches` of the whole command line, as layered by the caller.
    pub(super) fn new(
        command: &clap::Command,
        matches: &ArgMatches,
        file: Option<(PathBuf, BTreeSet<String>)>,
    ) -> Self {
        let (_, chosen) = chosen_subcommand(command, matches);
        Provenance {
            command: chosen.clone(),
            matches: chosen_matches(matches).clone(),
            file,
        }
    }

    /// The effective settings (of `serve`, for `config print`) as TOML: one `key = value` line each (a
    /// comment for one that is not set), its origin in a comment after it.
    pub fn to_toml(&self) -> String {
        let settings: Vec<(String, Origin)> = settable_args(&self.command)
            .map(|arg| {
                let key = setting_key(arg);
                let line = match self.effective_value(arg, &key) {
                    Some(value) => format!("{key} = {value}"),
                    None => format!("# {key} is not set"),
                };
                (line, self.origin(arg, &key))
            })
            .collect();
        let width = settings
            .iter()
            .map(|(line, _)| line.len())
            .filter(|&len| len <= ALIGN_UP_TO)
            .max()
            .unwrap_or(0);
        let source = match &self.file {
            Some((path, _)) => format!("config file {}", path.display()),
            None => "no config file".to_owned(),
        };
        let mut out = format!(
            "# Effective settings of `sse-bridge {SETTINGS_SUBCOMMAND}` ({source}; secrets redacted).\n\
             # After each: where its value came from (default, file, env VARIABLE or flag --option).\n"
        );
        for (line, origin) in settings {
            out += &format!("{line:width$}  # {origin}\n");
        }
        out
    }

    fn origin(&self, arg: &Arg, key: &str) -> Origin {
        if let Some((_, keys_from_file)) = &self.file
            && keys_from_file.contains(key)
        {
            return Origin::File;
        }
        match self.matches.value_source(arg.get_id().as_str()) {
            Some(ValueSource::CommandLine) => {
                Origin::Flag(arg.get_long().unwrap_or_default().to_owned())
            }
            Some(ValueSource::EnvVariable) => Origin::Env(
                arg.get_env()
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
            _ => Origin::Default,
        }
    }

    /// The value of `arg` as TOML, typed as in a config file, secrets
    /// redacted; `None` when it has none.
    fn effective_value(&self, arg: &Arg, key: &str) -> Option<Value> {
        let id = arg.get_id().as_str();
        if matches!(arg.get_action(), ArgAction::SetTrue) {
            return Some(Value::Boolean(self.matches.get_flag(id)));
        }
        let texts: Vec<String> = self
            .matches
            .get_raw(id)
            .into_iter()
            .flatten()
            .map(|raw| redacted(key, &raw.to_string_lossy()))
            .collect();
        if matches!(arg.get_action(), ArgAction::Append) {
            return Some(Value::Array(texts.into_iter().map(Value::String).collect()));
        }
        let text = texts.into_iter().next()?;
        let parser_type = arg.get_value_parser().type_id();
        let integer = [TypeId::of::<usize>(), TypeId::of::<u64>()]
            .iter()
            .any(|integer_type| parser_type == *integer_type);
        Some(match text.parse::<i64>() {
            Ok(number) if integer => Value::Integer(number),
            _ => Value::String(text),
        })
    }
}

/// `value` of the setting `key`, with any secret in it replaced by `***`.
fn redacted(key: &str, value: &str) -> String {
    match key {
        // NAME=KEY: the principal's name stays readable.
        "api_key" | "worker_api_key" => match value.split_once('=') {
            Some((name, _)) => format!("{name}={REDACTED}"),
            None => REDACTED.to_owned(),
        },
        "jwt_hs256_secret" => REDACTED.to_owned(),
        "redis_url" => url_without_password(value),
        "kafka_property" => match value.split_once('=') {
            Some((property, _)) if is_secret_kafka_property(property) => {
                format!("{property}={REDACTED}")
            }
            _ => value.to_owned(),
        },
        _ => value.to_owned(),
    }
}

/// `sasl.password`, `ssl.key.password`, `sasl.oauthbearer.client.secret`,
/// and any `sasl.*` (JAAS configs carry credentials).
fn is_secret_kafka_property(property: &str) -> bool {
    let property = property.to_ascii_lowercase();
    ["password", "secret", "sasl"]
        .iter()
        .any(|word| property.contains(word))
}

/// `redis://user:***@host/0` for `redis://user:secret@host/0`.
fn url_without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_len);
    let Some((user_info, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match user_info.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:{REDACTED}@{host}{path}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;
    use crate::cli::Cli;

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(redacted("api_key", "alice=s3cret"), "alice=***");
        assert_eq!(redacted("api_key", "s3cret"), "***");
        assert_eq!(redacted("jwt_hs256_secret", "s3cret"), "***");
        assert_eq!(
            redacted("redis_url", "redis://:s3cret@redis:6379/0"),
            "redis://:***@redis:6379/0"
        );
        assert_eq!(
            redacted("redis_url", "rediss://app:s3:cr@et@redis/?protocol=resp3"),
            "rediss://app:***@redis/?protocol=resp3"
        );
        assert_eq!(
            redacted("redis_url", "redis://redis:6379"),
            "redis://redis:6379"
        );
        assert_eq!(
            redacted("kafka_property", "sasl.username=bob"),
            "sasl.username=***"
        );
        assert_eq!(
            redacted("kafka_property", "SSL.KEY.PASSWORD=x"),
            "SSL.KEY.PASSWORD=***"
        );
        assert_eq!(redacted("kafka_property", "acks=all"), "acks=all");
        assert_eq!(redacted("listen", "127.0.0.1:1"), "127.0.0.1:1");
    }

    /// A renamed option must not silently lose its redaction.
    #[test]
    fn redacted_keys_are_settings() {
        let command = Cli::command();
        let serve = command.find_subcommand("serve").unwrap();
        let keys: Vec<String> = settable_args(serve).map(setting_key).collect();
        for key in ["api_key", "jwt_hs256_secret", "redis_url", "kafka_property"] {
            assert!(keys.iter().any(|k| k == key), "no setting `{key}`");
        }
    }
}
