//! Command-line and environment configuration.
//!
//! Flags win over environment variables, which win over the defaults.

use std::fmt;
use std::net::SocketAddr;

/// Default listen address.
pub const DEFAULT_BIND: &str = "127.0.0.1:8000";
/// Environment variable holding the listen address.
pub const ENV_BIND: &str = "ECHO_SERVER_BIND";
/// Environment variable holding extra allowed `Host` values, comma separated.
pub const ENV_ALLOWED_HOSTS: &str = "ECHO_SERVER_ALLOWED_HOSTS";

/// `Host` values accepted out of the box: loopback names (any port) plus the
/// names the reference Envoy proxy on port 9000 forwards.
pub const DEFAULT_ALLOWED_HOSTS: &[&str] =
    &["localhost", "127.0.0.1", "::1", "localhost:9000", "127.0.0.1:9000"];

/// Usage text printed by `--help`.
pub const USAGE: &str = "\
Usage: echo-server [OPTIONS]

MCP echo server speaking Streamable HTTP at /mcp.

Options:
  --bind ADDR           Listen address (default 127.0.0.1:8000; env ECHO_SERVER_BIND)
  --allowed-host HOST   Also accept this Host header value, e.g. mcp.example.com or
                        mcp.example.com:443 (repeatable; env ECHO_SERVER_ALLOWED_HOSTS,
                        comma separated). localhost, 127.0.0.1 and ::1 are always allowed.
  -h, --help            Print this help
  -V, --version         Print the version

Log level: RUST_LOG (default info).";

/// Runtime configuration of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Extra `Host` header values accepted in addition to [`DEFAULT_ALLOWED_HOSTS`].
    pub extra_allowed_hosts: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self { bind: SocketAddr::from(([127, 0, 0, 1], 8000)), extra_allowed_hosts: Vec::new() }
    }
}

impl Config {
    /// All `Host` values the server accepts: the defaults, the bind address's
    /// IP when it is a specific one, and the extra ones.
    pub fn allowed_hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> =
            DEFAULT_ALLOWED_HOSTS.iter().map(|h| (*h).to_owned()).collect();
        let ip = self.bind.ip();
        if !ip.is_unspecified() {
            hosts.push(ip.to_string());
        }
        hosts.extend(self.extra_allowed_hosts.iter().cloned());
        let mut seen = std::collections::HashSet::new();
        hosts.retain(|h| seen.insert(h.to_ascii_lowercase()));
        hosts
    }

    /// Builds the configuration from command-line arguments (without the
    /// program name) and an environment lookup.
    pub fn from_args_and_env<I, S, E>(args: I, env: E) -> Result<Self, CliError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
        E: Fn(&str) -> Option<String>,
    {
        let mut bind_flag: Option<String> = None;
        let mut hosts_flag: Vec<String> = Vec::new();

        let mut args = args.into_iter().map(Into::into);
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
                _ => (arg.clone(), None),
            };
            match name.as_str() {
                "-h" | "--help" => return Err(CliError::Help),
                "-V" | "--version" => return Err(CliError::Version),
                "--bind" | "--allowed-host" => {
                    let value = match inline {
                        Some(v) => v,
                        None => args.next().ok_or_else(|| CliError::MissingValue(name.clone()))?,
                    };
                    if name == "--bind" {
                        bind_flag = Some(value);
                    } else {
                        hosts_flag.push(value);
                    }
                }
                _ => return Err(CliError::UnknownArgument(arg)),
            }
        }

        let bind_text = bind_flag
            .or_else(|| env(ENV_BIND).filter(|v| !v.trim().is_empty()))
            .unwrap_or_else(|| DEFAULT_BIND.to_owned());
        let bind = bind_text
            .trim()
            .parse::<SocketAddr>()
            .map_err(|_| CliError::InvalidBind(bind_text.clone()))?;

        let mut extra_allowed_hosts: Vec<String> =
            env(ENV_ALLOWED_HOSTS).map(|v| split_hosts(&v)).unwrap_or_default();
        for value in hosts_flag {
            let parts = split_hosts(&value);
            if parts.is_empty() {
                return Err(CliError::InvalidHost(value));
            }
            extra_allowed_hosts.extend(parts);
        }

        Ok(Self { bind, extra_allowed_hosts })
    }
}

fn split_hosts(value: &str) -> Vec<String> {
    value.split(',').map(str::trim).filter(|h| !h.is_empty()).map(str::to_owned).collect()
}

/// Why the command line could not be turned into a [`Config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// `--help` was given.
    Help,
    /// `--version` was given.
    Version,
    /// A flag that needs a value was last.
    MissingValue(String),
    /// An argument that is not a known flag.
    UnknownArgument(String),
    /// The listen address is not `IP:PORT`.
    InvalidBind(String),
    /// An empty `--allowed-host` value.
    InvalidHost(String),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Help => f.write_str(USAGE),
            Self::Version => write!(f, "echo-server {}", env!("CARGO_PKG_VERSION")),
            Self::MissingValue(flag) => write!(f, "{flag} needs a value"),
            Self::UnknownArgument(arg) => write!(f, "unknown argument: {arg}"),
            Self::InvalidBind(v) => {
                write!(f, "invalid listen address {v:?}: expected IP:PORT, e.g. 127.0.0.1:8000")
            }
            Self::InvalidHost(v) => write!(f, "invalid --allowed-host value {v:?}"),
        }
    }
}

impl std::error::Error for CliError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |key| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn defaults() -> Result<(), CliError> {
        let config = Config::from_args_and_env(Vec::<String>::new(), env_of(&[]))?;
        assert_eq!(config, Config::default());
        assert_eq!(config.bind.to_string(), DEFAULT_BIND);
        let hosts = config.allowed_hosts();
        for h in ["localhost", "127.0.0.1", "::1", "localhost:9000", "127.0.0.1:9000"] {
            assert!(hosts.iter().any(|x| x == h), "{h} missing from {hosts:?}");
        }
        Ok(())
    }

    #[test]
    fn env_is_used_and_flag_wins() -> Result<(), CliError> {
        let env = env_of(&[
            (ENV_BIND, "127.0.0.1:7000"),
            (ENV_ALLOWED_HOSTS, "a.example, b.example:9000 ,,"),
        ]);
        let from_env = Config::from_args_and_env(Vec::<String>::new(), &env)?;
        assert_eq!(from_env.bind.to_string(), "127.0.0.1:7000");
        assert_eq!(from_env.extra_allowed_hosts, ["a.example", "b.example:9000"]);

        let from_flag = Config::from_args_and_env(
            ["--bind", "0.0.0.0:8100", "--allowed-host", "c.example", "--allowed-host=d.example"],
            &env,
        )?;
        assert_eq!(from_flag.bind.to_string(), "0.0.0.0:8100");
        assert_eq!(
            from_flag.extra_allowed_hosts,
            ["a.example", "b.example:9000", "c.example", "d.example"]
        );
        let hosts = from_flag.allowed_hosts();
        assert!(!hosts.iter().any(|h| h == "0.0.0.0"), "{hosts:?}");
        Ok(())
    }

    #[test]
    fn specific_bind_ip_is_allowed() -> Result<(), CliError> {
        let config = Config::from_args_and_env(["--bind=10.1.2.3:8000"], env_of(&[]))?;
        assert!(config.allowed_hosts().iter().any(|h| h == "10.1.2.3"));
        Ok(())
    }

    #[test]
    fn errors() {
        let env = env_of(&[]);
        assert_eq!(
            Config::from_args_and_env(["--bind"], &env),
            Err(CliError::MissingValue("--bind".into()))
        );
        assert_eq!(
            Config::from_args_and_env(["--bind", "nope"], &env),
            Err(CliError::InvalidBind("nope".into()))
        );
        assert_eq!(
            Config::from_args_and_env(["--frobnicate"], &env),
            Err(CliError::UnknownArgument("--frobnicate".into()))
        );
        assert_eq!(
            Config::from_args_and_env(["--allowed-host", " , "], &env),
            Err(CliError::InvalidHost(" , ".into()))
        );
        assert_eq!(Config::from_args_and_env(["--help"], &env), Err(CliError::Help));
        assert_eq!(
            Config::from_args_and_env(["--bind", "x"], env_of(&[(ENV_BIND, "also bad")])),
            Err(CliError::InvalidBind("x".into()))
        );
        assert_eq!(
            Config::from_args_and_env(Vec::<String>::new(), env_of(&[(ENV_BIND, "also bad")])),
            Err(CliError::InvalidBind("also bad".into()))
        );
    }
}
