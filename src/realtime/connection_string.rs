//! The Azure SignalR Service connection string (`Endpoint=…;AccessKey=…;Version=1.0;`), as the
//! service's own parser reads it: case-insensitive keys, an optional `Port` merged into the
//! endpoint, `http://` allowed (the local emulator and the built-in hub use it).

use std::fmt;
use std::str::FromStr;

#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionString {
    /// Scheme, host and port, no trailing slash: `https://res.service.signalr.net`.
    pub endpoint: String,
    pub access_key: String,
}

// The access key is a secret: never print it.
impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("endpoint", &self.endpoint)
            .field("access_key", &"<redacted>")
            .finish()
    }
}

impl fmt::Display for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignalR Service at {}", self.endpoint)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConnectionStringError {
    #[error("SignalR connection string has no Endpoint=")]
    MissingEndpoint,
    #[error("SignalR connection string has no AccessKey= (identity-based AuthType is not supported: the REST calls are signed with the key)")]
    MissingAccessKey,
    #[error("SignalR connection string Endpoint {0:?} must start with http:// or https://")]
    BadEndpoint(String),
    #[error("SignalR connection string Port {0:?} is not a port number")]
    BadPort(String),
    #[error("SignalR connection string Version {0:?} is not supported (expected 1.x)")]
    BadVersion(String),
    /// By position only: the part might be a mistyped key.
    #[error("SignalR connection string part {0} (counting from 1) is not KEY=VALUE")]
    BadPart(usize),
}

impl ConnectionString {
    /// Whether a setting value looks like a connection string rather than another sink name.
    pub fn looks_like(raw: &str) -> bool {
        raw.trim_start()
            .get(..9)
            .is_some_and(|head| head.eq_ignore_ascii_case("endpoint="))
    }

    /// The form the built-in hub publishes for its own sender.
    pub fn render(&self) -> String {
        format!(
            "Endpoint={};AccessKey={};Version=1.0;",
            self.endpoint, self.access_key
        )
    }
}

impl FromStr for ConnectionString {
    type Err = ConnectionStringError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let (mut endpoint, mut access_key, mut port) = (None, None, None);
        for (index, part) in raw
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .enumerate()
        {
            let (key, value) = part
                .split_once('=')
                .ok_or(ConnectionStringError::BadPart(index + 1))?;
            let value = value.trim();
            match key.trim().to_ascii_lowercase().as_str() {
                "endpoint" => endpoint = Some(value.to_owned()),
                // Base64 keys end in '=': split_once keeps them whole.
                "accesskey" => access_key = Some(value.to_owned()),
                "port" => port = Some(value.to_owned()),
                "version" if !value.starts_with("1.") => {
                    return Err(ConnectionStringError::BadVersion(value.to_owned()))
                }
                // Version, ClientEndpoint, ServerEndpoint, AuthType...: not needed with a key.
                _ => {}
            }
        }
        let endpoint = endpoint
            .filter(|e| !e.is_empty())
            .ok_or(ConnectionStringError::MissingEndpoint)?;
        let access_key = access_key
            .filter(|k| !k.is_empty())
            .ok_or(ConnectionStringError::MissingAccessKey)?;
        let lower = endpoint.to_ascii_lowercase();
        let after_scheme = if lower.starts_with("https://") {
            8
        } else if lower.starts_with("http://") {
            7
        } else {
            return Err(ConnectionStringError::BadEndpoint(endpoint));
        };
        let mut endpoint = endpoint.trim_end_matches('/').to_owned();
        if endpoint.len() <= after_scheme || endpoint[after_scheme..].contains('/') {
            return Err(ConnectionStringError::BadEndpoint(endpoint));
        }
        if let Some(port) = port {
            let number: u16 = port
                .parse()
                .map_err(|_| ConnectionStringError::BadPort(port.clone()))?;
            // `Port` replaces any port in the endpoint, as the service's parser does.
            let host_part = &endpoint[after_scheme..];
            let host = match host_part.rsplit_once(':') {
                Some((host, maybe_port)) if maybe_port.chars().all(|c| c.is_ascii_digit()) => host,
                _ => host_part,
            };
            endpoint = format!("{}{host}:{number}", &endpoint[..after_scheme]);
        }
        Ok(ConnectionString {
            endpoint,
            access_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azure_form_parses() {
        let c: ConnectionString =
            "Endpoint=https://res.service.signalr.net;AccessKey=abc+/def==;Version=1.0;"
                .parse()
                .unwrap();
        assert_eq!(c.endpoint, "https://res.service.signalr.net");
        assert_eq!(c.access_key, "abc+/def==");
        assert!(!format!("{c:?}").contains("abc"));
    }

    #[test]
    fn emulator_form_with_port_and_any_case() {
        let c: ConnectionString =
            "endpoint=http://localhost/;PORT=8888;accesskey=ABCDEFGH;Version=1.0;"
                .parse()
                .unwrap();
        assert_eq!(c.endpoint, "http://localhost:8888");
        let again: ConnectionString = c.render().parse().unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn bad_strings_say_why() {
        assert_eq!(
            "AccessKey=x".parse::<ConnectionString>(),
            Err(ConnectionStringError::MissingEndpoint)
        );
        assert_eq!(
            "Endpoint=https://x;AuthType=azure.msi;Version=1.0".parse::<ConnectionString>(),
            Err(ConnectionStringError::MissingAccessKey)
        );
        assert!(matches!(
            "Endpoint=ftp://x;AccessKey=k".parse::<ConnectionString>(),
            Err(ConnectionStringError::BadEndpoint(_))
        ));
        assert!(matches!(
            "Endpoint=https://x;AccessKey=k;Version=2.0".parse::<ConnectionString>(),
            Err(ConnectionStringError::BadVersion(_))
        ));
        assert!(matches!(
            "Endpoint=https://x;AccessKey=k;Port=99999".parse::<ConnectionString>(),
            Err(ConnectionStringError::BadPort(_))
        ));
        assert!(ConnectionString::looks_like("Endpoint=https://x"));
        assert!(!ConnectionString::looks_like("journal:x"));
    }
}
