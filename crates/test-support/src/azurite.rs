//! The legacy source, for real: a private Azurite (npm `azurite`, Blob and Table, in memory) on
//! free ports, and `tests/legacy/seed.py` writing legacy Bifrost rows into it with the Python
//! Azure SDKs (`azure-data-tables`, `azure-storage-blob`) for their exact shapes.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::paths::repo_file;
use crate::process::lines;
use crate::tools::{run_or_panic, Unavailable};

const AZURITE: &str = "azurite@3.35.0";
const SEEDING_PACKAGES: [&str; 2] = ["azure-data-tables==12.7.0", "azure-storage-blob==12.31.1"];
/// Azurite's well-known account key (`devstoreaccount1`).
pub const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// How long Azurite may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The port in Azurite's `Azurite <service> service is successfully listening at http://HOST:PORT`.
fn listening_port(line: &str, service: &str) -> Option<u16> {
    let prefix = format!("Azurite {service} service is successfully listening at http://");
    line.strip_prefix(&prefix)?
        .rsplit_once(':')?
        .1
        .trim()
        .parse()
        .ok()
}

/// The Azurite executable, installed on first use.
pub fn executable() -> Result<PathBuf, Unavailable> {
    Ok(crate::npm::install("azurite", AZURITE)?.join("node_modules/.bin/azurite"))
}

/// The python that can run `tests/legacy/seed.py`.
pub fn seeding_python() -> Result<PathBuf, Unavailable> {
    crate::python::venv("legacy-seed", &SEEDING_PACKAGES)
}

/// A private Azurite account (Blob and Table on free ports, in memory), killed on drop.
pub struct Azurite {
    child: Child,
    python: PathBuf,
    /// `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=…;BlobEndpoint=…;TableEndpoint=…;`
    pub connection_string: String,
}

impl Azurite {
    /// Installs Azurite and the seeding SDKs if needed, starts Azurite and returns once its Blob
    /// and Table services listen. Azurite binds port 0 and the ports are read from its startup
    /// lines: ports picked beforehand could be taken by another test's server in between, and a
    /// client would then talk to that one (another Azurite's Blob service answering Table calls).
    pub fn start() -> Result<Azurite, Unavailable> {
        let executable = executable()?;
        let python = seeding_python()?;
        let mut child = Command::new(executable)
            .args(["--blobHost", "127.0.0.1", "--tableHost", "127.0.0.1"])
            .args(["--queueHost", "127.0.0.1"])
            .args(["--blobPort", "0", "--queuePort", "0", "--tablePort", "0"])
            .args(["--inMemoryPersistence", "--skipApiVersionCheck"])
            .args(["--disableTelemetry", "--silent"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn azurite");
        let lines = lines(child.stdout.take().expect("azurite's stdout"));
        let deadline = Instant::now() + START_TIMEOUT;
        let (mut blob, mut table) = (None, None);
        while blob.is_none() || table.is_none() {
            let line = match lines.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => line,
                Err(error) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("azurite did not report both ports within {START_TIMEOUT:?}: {error}");
                }
            };
            if let Some(port) = listening_port(&line, "Blob") {
                blob = Some(port);
            } else if let Some(port) = listening_port(&line, "Table") {
                table = Some(port);
            }
        }
        let (blob, table) = (blob.expect("blob port"), table.expect("table port"));
        // Whatever else it prints is read and dropped, so it never blocks on a full pipe.
        std::thread::spawn(move || lines.into_iter().for_each(drop));
        Ok(Azurite {
            child,
            python,
            connection_string: format!(
                "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEV_KEY};\
                 BlobEndpoint=http://127.0.0.1:{blob}/devstoreaccount1;\
                 TableEndpoint=http://127.0.0.1:{table}/devstoreaccount1;"
            ),
        })
    }

    /// The Azurite process (its npm shim; node runs as its child).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs `tests/legacy/seed.py --conn <this account> ARGS…`; returns its stdout.
    pub fn seed(&self, args: &[&str]) -> String {
        let output = run_or_panic(
            Command::new(&self.python)
                // Leave no __pycache__ in the source tree.
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .arg(repo_file("tests/legacy/seed.py"))
                .args(["--conn", &self.connection_string])
                .args(args),
            &format!("seed.py {args:?}"),
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::listening_port;

    #[test]
    fn the_ports_come_from_azurites_startup_lines() {
        let line = "Azurite Table service is successfully listening at http://127.0.0.1:33031";
        assert_eq!(listening_port(line, "Table"), Some(33031));
        assert_eq!(listening_port(line, "Blob"), None);
        assert_eq!(
            listening_port(
                "Azurite Blob service is starting at http://127.0.0.1:0",
                "Blob"
            ),
            None
        );
    }
}
