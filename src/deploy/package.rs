//! `package`: assembles the deployable Functions app root (host.json, one folder per function with
//! its function.json, the linux-x64 binary, nothing else) and a zip of it for
//! `az functionapp deployment source config-zip`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use zip::write::SimpleFileOptions;

use crate::deploy::function_json::{self, EXECUTABLE};
use crate::runtime::FunctionSpec;

pub const APP_DIR: &str = "app";
pub const ZIP_NAME: &str = "bifrost-workers.zip";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageReport {
    pub app_root: PathBuf,
    pub zip: PathBuf,
    pub binary_bytes: u64,
    /// Paths inside the app root, `/`-separated, sorted.
    pub entries: Vec<String>,
}

/// The Functions Linux workers are x86-64 ELF; anything else would fail to start in Azure.
fn check_linux_x64(binary: &[u8], path: &Path) -> anyhow::Result<()> {
    const ELF_MAGIC: &[u8] = b"\x7fELF";
    const EM_X86_64: u16 = 0x3e;
    if binary.len() < 20 || &binary[..4] != ELF_MAGIC {
        bail!("{} is not a Linux (ELF) executable", path.display());
    }
    let machine = u16::from_le_bytes([binary[18], binary[19]]);
    if binary[4] != 2 || machine != EM_X86_64 {
        bail!(
            "{} is not built for linux-x64 (ELF class {}, machine {machine:#x})",
            path.display(),
            binary[4]
        );
    }
    Ok(())
}

pub fn package(
    out: &Path,
    binary_path: &Path,
    functions: &[FunctionSpec],
) -> anyhow::Result<PackageReport> {
    let binary =
        fs::read(binary_path).with_context(|| format!("reading {}", binary_path.display()))?;
    check_linux_x64(&binary, binary_path)?;
    let binary_bytes = binary.len() as u64;

    let app_root = out.join(APP_DIR);
    if app_root.exists() {
        fs::remove_dir_all(&app_root)
            .with_context(|| format!("clearing {}", app_root.display()))?;
    }
    // The app root holds what the host reads; local settings are never deployed.
    let mut files: Vec<(String, Vec<u8>)> = function_json::render(functions)
        .into_iter()
        .filter(|(path, _)| path != Path::new("local.settings.json.example"))
        .map(|(path, text)| (path.to_string_lossy().replace('\\', "/"), text.into_bytes()))
        .collect();
    files.push((EXECUTABLE.to_owned(), binary));
    files.sort_by(|a, b| a.0.cmp(&b.0));

    for (relative, bytes) in &files {
        let path = app_root.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    let binary_in_root = app_root.join(EXECUTABLE);
    set_executable(&binary_in_root)?;

    let zip_path = out.join(ZIP_NAME);
    write_zip(&zip_path, &files).with_context(|| format!("writing {}", zip_path.display()))?;
    Ok(PackageReport {
        app_root,
        zip: zip_path,
        binary_bytes,
        entries: files.into_iter().map(|(name, _)| name).collect(),
    })
}

#[cfg(unix)]
fn set_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod +x {}", path.display()))
}

#[cfg(not(unix))]
fn set_executable(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}

fn write_zip(path: &Path, files: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    let file = fs::File::create(path)?;
    let mut zip = zip::ZipWriter::new(file);
    for (name, bytes) in files {
        // The host adds the execute bit only if it can; a read-only package mount cannot, so ship it set.
        let mode = if name == EXECUTABLE { 0o755 } else { 0o644 };
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(mode);
        zip.start_file(name.as_str(), options)?;
        zip.write_all(bytes)?;
    }
    zip.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_linux_x64_binaries_are_packaged() {
        let path = Path::new("x");
        assert!(check_linux_x64(b"MZ\x90\x00not an elf at all", path).is_err());
        let mut arm = vec![0u8; 64];
        arm[..4].copy_from_slice(b"\x7fELF");
        arm[4] = 2;
        arm[18] = 0xb7; // aarch64
        assert!(check_linux_x64(&arm, path)
            .unwrap_err()
            .to_string()
            .contains("linux-x64"));
        arm[18] = 0x3e;
        assert!(check_linux_x64(&arm, path).is_ok());
    }
}
