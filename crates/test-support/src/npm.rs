//! npm packages installed once into folders under the tools directory (never into the source
//! tree), reused while what was asked for stays the same.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::paths::tools_dir;
use crate::tools::{reach_registry, run_or_panic, Unavailable};

const REGISTRY: &str = "registry.npmjs.org";
/// The file in an install folder that records what was installed, written last.
const MARKER: &str = ".installed";

static INSTALL: Mutex<()> = Mutex::new(());

/// Runs `install` in `<tools>/<name>` unless its marker already says `wanted`.
fn cached(
    name: &str,
    wanted: &str,
    install: impl FnOnce(&Path) -> Result<(), Unavailable>,
) -> Result<PathBuf, Unavailable> {
    let _turn = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tools_dir().join(name);
    let marker = dir.join(MARKER);
    if std::fs::read_to_string(&marker).is_ok_and(|installed| installed == wanted) {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    install(&dir)?;
    std::fs::write(&marker, wanted).unwrap_or_else(|e| panic!("{}: {e}", marker.display()));
    Ok(dir)
}

/// `npm install PACKAGE@VERSION` into `<tools>/<name>`; returns that folder.
pub fn install(name: &str, package: &str) -> Result<PathBuf, Unavailable> {
    cached(name, package, |dir| {
        reach_registry(REGISTRY, package)?;
        run_or_panic(
            Command::new("npm")
                .args([
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--no-save",
                    "--prefix",
                ])
                .arg(dir)
                .arg(package),
            &format!("npm install {package} (Node 20+ with npm is needed)"),
        );
        Ok(())
    })
}

/// `npm ci` of the repository folder `source` (its `package.json` and `package-lock.json`, the
/// exact locked versions) into `<tools>/<name>`; returns that folder.
pub fn ci(name: &str, source: &Path) -> Result<PathBuf, Unavailable> {
    let read = |file: &str| {
        let path = source.join(file);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let (manifest, lock) = (read("package.json"), read("package-lock.json"));
    cached(name, &lock, |dir| {
        reach_registry(REGISTRY, &format!("the packages of {}", source.display()))?;
        for (file, text) in [("package.json", &manifest), ("package-lock.json", &lock)] {
            std::fs::write(dir.join(file), text).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
        run_or_panic(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(dir),
            &format!("npm ci in {} (Node 20+ with npm is needed)", dir.display()),
        );
        Ok(())
    })
}
