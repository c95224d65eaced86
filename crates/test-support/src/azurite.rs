//! The legacy source, for real: a private Azurite (npm `azurite`, Blob and Table, in memory) on
//! free ports, and `tests/legacy/seed.py` writing legacy Bifrost rows into it with the Python
//! Azure SDKs (`azure-data-tables`, `azure-storage-blob`) for their exact shapes.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::paths::repo_file;
use crate::ports::free_port;
use crate::tools::{run_or_panic, Unavailable};

const AZURITE: &str = "azurite@3.35.0";
const SEEDING_PACKAGES: [&str; 2] = ["azure-data-tables==12.7.0", "azure-storage-blob==12.31.1"];
/// Azurite's well-known account key (`devstoreaccount1`).
pub const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// How long Azurite may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// and Table ports accept connections.
    pub fn start() -> Result<Azurite, Unavailable> {
        let executable = executable()?;
        let python = seeding_python()?;
        let (blob, queue, table) = (free_port(), free_port(), free_port());
        let child = Command::new(executable)
            .args(["--blobHost", "127.0.0.1", "--tableHost", "127.0.0.1"])
            .args(["--queueHost", "127.0.0.1"])
            .args(["--blobPort", &blob.to_string()])
            .args(["--queuePort", &queue.to_string()])
            .args(["--tablePort", &table.to_string()])
            .args(["--inMemoryPersistence", "--skipApiVersionCheck"])
            .args(["--disableTelemetry", "--silent"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn azurite");
        let azurite = Azurite {
            child,
            python,
            connection_string: format!(
                "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEV_KEY};\
                 BlobEndpoint=http://127.0.0.1:{blob}/devstoreaccount1;\
                 TableEndpoint=http://127.0.0.1:{table}/devstoreaccount1;"
            ),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        for port in [blob, table] {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "azurite did not listen on {port} within {START_TIMEOUT:?}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(azurite)
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
