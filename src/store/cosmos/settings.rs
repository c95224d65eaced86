//! Cosmos DB connection settings, parsed from the store URL or an Azure connection string
//! (pure: no I/O, so every bad form is reported before anything is dialled).
//!
//! Accepted forms:
//! - `cosmos://ACCOUNT.documents.azure.com/?key=KEY` (HTTPS, account key)
//! - `cosmos://ACCOUNT.documents.azure.com/?identity=managed[&client_id=ID]` (Entra ID through
//!   the managed identity: system-assigned, or the user-assigned one with that client id)
//! - `cosmos+http://127.0.0.1:8081/?key=KEY` (plain HTTP: only for local emulators; the SDK
//!   itself refuses `http://` for any host that is not loopback)
//! - `AccountEndpoint=https://…;AccountKey=…;` (the portal's connection string, as in the
//!   `CosmosDbConnection` app setting)
//!
//! Every form takes an optional `database` (`&database=NAME`, or `Database=NAME;`), default
//! `bifrost`.

use std::fmt;

pub const DEFAULT_DATABASE: &str = "bifrost";

#[derive(Clone, PartialEq, Eq)]
pub enum CosmosAuth {
    /// Account (or emulator) key.
    Key(String),
    /// Entra ID token from the managed identity; `client_id` picks a user-assigned identity.
    ManagedIdentity { client_id: Option<String> },
}

/// Redacts the key, like `Display` of the settings.
impl fmt::Debug for CosmosAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CosmosAuth::Key(_) => f.write_str("Key(***)"),
            CosmosAuth::ManagedIdentity { client_id } => f
                .debug_struct("ManagedIdentity")
                .field("client_id", client_id)
                .finish(),
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct CosmosSettings {
    /// Account endpoint with scheme and trailing slash, e.g. `https://acct.documents.azure.com:443/`.
    pub endpoint: String,
    pub auth: CosmosAuth,
    pub database: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("cosmos store URL needs a host: cosmos://ACCOUNT.documents.azure.com/?key=KEY")]
    MissingHost,
    #[error("invalid port in cosmos store URL: {0:?}")]
    BadPort(String),
    #[error("cosmos store URL needs credentials: ?key=KEY or ?identity=managed")]
    MissingCredentials,
    #[error("cosmos store URL has both a key and identity=managed; choose one")]
    BothCredentials,
    #[error("unsupported identity {0:?}: only identity=managed is supported")]
    UnknownIdentity(String),
    #[error(
        "unknown cosmos store URL parameter {0:?} (expected key, identity, client_id, database)"
    )]
    UnknownParameter(String),
    #[error("invalid database name {0:?}")]
    BadDatabase(String),
    #[error("connection string needs AccountEndpoint=https://…;AccountKey=…;")]
    IncompleteConnectionString,
    #[error("connection string part {0:?} is not NAME=VALUE")]
    BadConnectionStringPart(String),
    #[error("AccountEndpoint must start with https:// or http://, not {0:?}")]
    BadEndpoint(String),
}

impl CosmosSettings {
    /// Parses `cosmos://…`, `cosmos+http://…` or an `AccountEndpoint=…` connection string.
    pub fn parse(text: &str) -> Result<CosmosSettings, SettingsError> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("cosmos+http://") {
            return parse_url("http", rest);
        }
        if let Some(rest) = text.strip_prefix("cosmos://") {
            return parse_url("https", rest);
        }
        parse_connection_string(text)
    }

    /// Whether `text` is meant for this backend (so its errors are Cosmos errors).
    pub fn claims(text: &str) -> bool {
        let text = text.trim();
        text.starts_with("cosmos:")
            || text.starts_with("cosmos+http:")
            || text
                .get(..16)
                .is_some_and(|p| p.eq_ignore_ascii_case("AccountEndpoint="))
    }
}

fn parse_url(scheme: &str, rest: &str) -> Result<CosmosSettings, SettingsError> {
    let (authority, query) = match rest.split_once('?') {
        Some((authority, query)) => (authority, query),
        None => (rest, ""),
    };
    let authority = authority.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') || authority.contains('@') {
        return Err(SettingsError::MissingHost);
    }
    let (host, port) = match authority.rsplit_once(':') {
        // `[::1]:8081`-style and `host:port`; a bare IPv6 literal keeps its colons.
        Some((host, port)) if !port.contains(']') => {
            let port: u16 = port
                .parse()
                .map_err(|_| SettingsError::BadPort(port.to_owned()))?;
            (host, Some(port))
        }
        _ => (authority, None),
    };
    if host.is_empty() {
        return Err(SettingsError::MissingHost);
    }
    let mut key = None;
    let mut identity = None;
    let mut client_id = None;
    let mut database = None;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let value = value.into_owned();
        match name.as_ref() {
            // Form decoding turns `+` into a space; keys are base64, where a space cannot
            // occur, so an unencoded `+` in a pasted key is restored.
            "key" => key = Some(value.replace(' ', "+")),
            "identity" => identity = Some(value),
            "client_id" => client_id = Some(value),
            "database" => database = Some(value),
            other => return Err(SettingsError::UnknownParameter(other.to_owned())),
        }
    }
    let auth = match (key, identity) {
        (Some(_), Some(_)) => return Err(SettingsError::BothCredentials),
        (Some(key), None) if !key.is_empty() => CosmosAuth::Key(key),
        (None, Some(identity)) if identity == "managed" => CosmosAuth::ManagedIdentity {
            client_id: client_id.filter(|id| !id.is_empty()),
        },
        (None, Some(identity)) => return Err(SettingsError::UnknownIdentity(identity)),
        _ => return Err(SettingsError::MissingCredentials),
    };
    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
    Ok(CosmosSettings {
        endpoint: format!("{scheme}://{host}{port}/"),
        auth,
        database: database_name(database)?,
    })
}

fn parse_connection_string(text: &str) -> Result<CosmosSettings, SettingsError> {
    let mut endpoint = None;
    let mut key = None;
    let mut database = None;
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        // Keys end in `=` padding, so split at the first `=` only.
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| SettingsError::BadConnectionStringPart(redact_part(part)))?;
        match name.to_ascii_lowercase().as_str() {
            "accountendpoint" => endpoint = Some(value.to_owned()),
            "accountkey" => key = Some(value.to_owned()),
            "database" => database = Some(value.to_owned()),
            // Other parts the portal may add (e.g. ApplicationName) do not change the account.
            _ => {}
        }
    }
    let (Some(endpoint), Some(key)) = (endpoint, key.filter(|k| !k.is_empty())) else {
        return Err(SettingsError::IncompleteConnectionString);
    };
    if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
        return Err(SettingsError::BadEndpoint(endpoint));
    }
    let endpoint = if endpoint.ends_with('/') {
        endpoint
    } else {
        format!("{endpoint}/")
    };
    Ok(CosmosSettings {
        endpoint,
        auth: CosmosAuth::Key(key),
        database: database_name(database)?,
    })
}

/// Database ids may not contain `/ \ ? #` and may not be empty or end with a space.
fn database_name(name: Option<String>) -> Result<String, SettingsError> {
    let name = name.unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
    let valid = !name.is_empty()
        && name.len() <= 255
        && !name.ends_with(' ')
        && !name.contains(['/', '\\', '?', '#']);
    if valid {
        Ok(name)
    } else {
        Err(SettingsError::BadDatabase(name))
    }
}

fn redact_part(part: &str) -> String {
    part.chars().take(12).collect::<String>() + "…"
}

/// Never prints the key: settings end up in logs, `/api/health` and error lines.
impl fmt::Display for CosmosSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (scheme, rest) = self
            .endpoint
            .split_once("://")
            .unwrap_or(("https", &self.endpoint));
        let scheme = if scheme == "http" {
            "cosmos+http"
        } else {
            "cosmos"
        };
        write!(f, "{scheme}://{rest}?")?;
        match &self.auth {
            CosmosAuth::Key(_) => f.write_str("key=***")?,
            CosmosAuth::ManagedIdentity { client_id: None } => f.write_str("identity=managed")?,
            CosmosAuth::ManagedIdentity {
                client_id: Some(id),
            } => write!(f, "identity=managed&client_id={id}")?,
        }
        if self.database != DEFAULT_DATABASE {
            write!(f, "&database={}", self.database)?;
        }
        Ok(())
    }
}

impl fmt::Debug for CosmosSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CosmosSettings({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";

    #[test]
    fn url_forms() {
        let s = CosmosSettings::parse(&format!("cosmos://acct.documents.azure.com/?key={KEY}"))
            .unwrap();
        assert_eq!(s.endpoint, "https://acct.documents.azure.com/");
        assert_eq!(s.auth, CosmosAuth::Key(KEY.into()));
        assert_eq!(s.database, "bifrost");
        let s =
            CosmosSettings::parse("cosmos+http://127.0.0.1:8081?key=a%2Bb&database=t1").unwrap();
        assert_eq!(s.endpoint, "http://127.0.0.1:8081/");
        assert_eq!(s.auth, CosmosAuth::Key("a+b".into()));
        assert_eq!(s.database, "t1");
        let s = CosmosSettings::parse(
            "cosmos://acct.documents.azure.com/?identity=managed&client_id=abc",
        )
        .unwrap();
        assert_eq!(
            s.auth,
            CosmosAuth::ManagedIdentity {
                client_id: Some("abc".into())
            }
        );
        let s = CosmosSettings::parse(&format!(
            "AccountEndpoint=https://acct.documents.azure.com:443/;AccountKey={KEY};"
        ))
        .unwrap();
        assert_eq!(s.endpoint, "https://acct.documents.azure.com:443/");
        assert_eq!(s.auth, CosmosAuth::Key(KEY.into()));
    }

    #[test]
    fn bad_forms_are_named() {
        use SettingsError::*;
        for (text, expected) in [
            ("cosmos://", MissingHost),
            ("cosmos://acct/", MissingCredentials),
            ("cosmos://acct:99999/?key=k", BadPort("99999".into())),
            ("cosmos://acct/?key=k&identity=managed", BothCredentials),
            ("cosmos://acct/?identity=cli", UnknownIdentity("cli".into())),
            (
                "cosmos://acct/?key=k&color=red",
                UnknownParameter("color".into()),
            ),
            (
                "cosmos://acct/?key=k&database=a/b",
                BadDatabase("a/b".into()),
            ),
            ("AccountEndpoint=https://x/;", IncompleteConnectionString),
            (
                "AccountEndpoint=ftp://x/;AccountKey=k",
                BadEndpoint("ftp://x/".into()),
            ),
        ] {
            assert_eq!(CosmosSettings::parse(text), Err(expected), "{text}");
        }
    }

    #[test]
    fn display_never_shows_the_key() {
        let s = CosmosSettings::parse(&format!(
            "cosmos+http://127.0.0.1:8081/?key={KEY}&database=t"
        ))
        .unwrap();
        let shown = format!("{s} {s:?}");
        assert!(!shown.contains("C2y6"), "{shown}");
        assert_eq!(
            s.to_string(),
            "cosmos+http://127.0.0.1:8081/?key=***&database=t"
        );
    }
}
