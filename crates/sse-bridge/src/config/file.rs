//! The config file itself: a TOML table read into entries (key, value and
//! the line it is on), each turned into the arguments it stands for.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction};
use toml::{Spanned, Value};

use super::ConfigFileError;

/// A config file's settings, in file order.
#[derive(Debug)]
pub(super) struct ConfigFile {
    pub(super) path: PathBuf,
    pub(super) entries: Vec<Entry>,
}

/// One `key = value` of a config file.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) key: String,
    /// 1-based line of the key, for error messages.
    pub(super) line: usize,
    value: Value,
}

impl ConfigFile {
    pub(super) fn read(path: &Path) -> Result<Self, ConfigFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<Self, ConfigFileError> {
        let table: BTreeMap<Spanned<String>, Value> =
            toml::from_str(text).map_err(|source| ConfigFileError::Syntax {
                path: path.to_owned(),
                source,
            })?;
        let mut entries: Vec<Entry> = table
            .into_iter()
            .map(|(key, value)| Entry {
                line: 1 + text[..key.span().start].matches('\n').count(),
                key: key.into_inner(),
                value,
            })
            .collect();
        entries.sort_by_key(|entry| entry.line);
        Ok(ConfigFile {
            path: path.to_owned(),
            entries,
        })
    }

    /// The entry of `key`, if the file has one.
    pub(super) fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|entry| entry.key == key)
    }
}

impl Entry {
    /// The command-line arguments that give `arg` this entry's value:
    /// `--name=value` once per value, `--name` for a flag set to `true`
    /// (nothing for `false`, the flag's default). The `--name=value` form
    /// keeps a value starting with `-` a value.
    pub(super) fn to_args(&self, arg: &Arg, path: &Path) -> Result<Vec<OsString>, ConfigFileError> {
        let long = arg.get_long().expect("settable options have a long name");
        let wrong_type = |expected| ConfigFileError::WrongType {
            path: path.to_owned(),
            line: self.line,
            key: self.key.clone(),
            expected,
            found: self.value.type_str(),
        };
        let with_value = |value: String| OsString::from(format!("--{long}={value}"));
        match arg.get_action() {
            ArgAction::SetTrue => match self.value {
                Value::Boolean(true) => Ok(vec![OsString::from(format!("--{long}"))]),
                Value::Boolean(false) => Ok(Vec::new()),
                _ => Err(wrong_type("true or false")),
            },
            ArgAction::Append => {
                let items = match &self.value {
                    Value::Array(items) => items.iter().collect(),
                    single => vec![single],
                };
                items
                    .into_iter()
                    .map(|item| scalar_text(item).map(with_value))
                    .collect::<Option<_>>()
                    .ok_or_else(|| wrong_type("a string or an array of strings"))
            }
            _ => scalar_text(&self.value)
                .map(|text| vec![with_value(text)])
                .ok_or_else(|| wrong_type("a string or a number")),
        }
    }
}

/// A string or number as the text a flag would carry.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Integer(number) => Some(number.to_string()),
        Value::Float(number) => Some(number.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_keep_file_order_and_lines() {
        let text =
            "# settings\nlisten = \"127.0.0.1:1\"\n\nack_timeout = \"3s\"\napi_key = [\"a=1\"]\n";
        let file = ConfigFile::parse(Path::new("f.toml"), text).unwrap();
        let keys: Vec<_> = file
            .entries
            .iter()
            .map(|e| (e.key.as_str(), e.line))
            .collect();
        assert_eq!(keys, [("listen", 2), ("ack_timeout", 4), ("api_key", 5)]);
    }

    #[test]
    fn values_become_arguments() {
        let file = ConfigFile::parse(
            Path::new("f.toml"),
            "max_events = 5\nflag = true\noff = false\nlist = [\"a\", \"b\"]\n",
        )
        .unwrap();
        let args =
            |key: &str, arg: Arg| file.entry(key).unwrap().to_args(&arg, &file.path).unwrap();
        assert_eq!(
            args("max_events", Arg::new("m").long("max-events")),
            ["--max-events=5"]
        );
        assert_eq!(
            args(
                "flag",
                Arg::new("f").long("flag").action(ArgAction::SetTrue)
            ),
            ["--flag"]
        );
        assert!(args("off", Arg::new("o").long("off").action(ArgAction::SetTrue)).is_empty());
        assert_eq!(
            args("list", Arg::new("l").long("list").action(ArgAction::Append)),
            ["--list=a", "--list=b"]
        );
    }

    #[test]
    fn a_wrong_type_names_key_and_line() {
        let file = ConfigFile::parse(Path::new("f.toml"), "\nlisten = [1]\n").unwrap();
        let error = file.entries[0]
            .to_args(&Arg::new("listen").long("listen"), &file.path)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "f.toml:2: `listen` must be a string or a number, found array"
        );
    }
}
