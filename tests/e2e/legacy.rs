//! The legacy source, for real: Azurite (npm, installed into `target/tmp/legacy-tools`) and the
//! Python Azure SDKs (a venv there too) writing rows with `tests/legacy/seed.py`. Both are
//! installed once and cached; a machine that cannot reach the registries skips with a message.
//! Self-contained (no `super::`): `benches/migrate.rs` includes this file too.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

const AZURITE: &str = "azurite@3.35.0";
const PYTHON_PACKAGES: [&str; 2] = ["azure-data-tables==12.7.0", "azure-storage-blob==12.31.1"];
pub const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

static INSTALL: Mutex<()> = Mutex::new(());

fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("legacy-tools")
}

fn reachable(host: &str) -> bool {
    use std::net::ToSocketAddrs;
    (host, 443)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(5)).is_ok())
}

fn run_ok(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("{what}: cannot run: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Paths of the Azurite binary and the venv's python, installing them on first use. `None` (after
/// printing why) only when a registry cannot be reached; any other failure panics.
pub fn tools() -> Option<(PathBuf, PathBuf)> {
    let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tools_dir();
    std::fs::create_dir_all(&dir).expect("create tools dir");
    let azurite = dir.join("node_modules/.bin/azurite");
    if !azurite.exists() {
        if !reachable("registry.npmjs.org") {
            eprintln!("SKIP: npm registry unreachable, cannot install {AZURITE}");
            return None;
        }
        run_ok(
            Command::new("npm")
                .args([
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--no-save",
                    "--prefix",
                ])
                .arg(&dir)
                .arg(AZURITE),
            "npm install azurite",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let python = dir.join("venv/bin/python");
    let marker = dir.join("venv/.installed");
    if !marker.exists() {
        if !reachable("pypi.org") {
            eprintln!("SKIP: PyPI unreachable, cannot install {PYTHON_PACKAGES:?}");
            return None;
        }
        if !python.exists() {
            run_ok(
                Command::new("python3")
                    .args(["-m", "venv"])
                    .arg(dir.join("venv")),
                "python3 -m venv (on Debian: apt-get install -y python3-venv)",
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
        run_ok(
            Command::new(&python)
                .args(["-m", "pip", "install", "-q"])
                .args(PYTHON_PACKAGES),
            "pip install",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&marker, PYTHON_PACKAGES.join("\n")).expect("write marker");
    }
    Some((azurite, python))
}

/// A private Azurite (blob + table, in memory) on free ports, killed on drop.
pub struct Azurite {
    pub child: Child,
    python: PathBuf,
    pub connection_string: String,
}

impl Azurite {
    pub fn start() -> Option<Azurite> {
        let (azurite, python) = tools()?;
        let (blob, queue, table) = (free_port(), free_port(), free_port());
        let child = Command::new(azurite)
            .args([
                "--blobHost",
                "127.0.0.1",
                "--tableHost",
                "127.0.0.1",
                "--queueHost",
                "127.0.0.1",
            ])
            .args(["--blobPort", &blob.to_string()])
            .args(["--queuePort", &queue.to_string()])
            .args(["--tablePort", &table.to_string()])
            .args([
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--silent",
            ])
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
        let deadline = Instant::now() + Duration::from_secs(30);
        for port in [blob, table] {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "azurite did not listen on {port}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Some(azurite)
    }

    /// Runs `tests/legacy/seed.py` with these arguments; returns its stdout.
    pub fn seed(&self, args: &[&str]) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/legacy/seed.py");
        let output = Command::new(&self.python)
            .arg(script)
            .args(["--conn", &self.connection_string])
            .args(args)
            .output()
            .expect("run seed.py");
        assert!(
            output.status.success(),
            "seed.py {args:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
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
