//! Paths to the workspace's binaries, built on demand.
//!
//! Tests that need real processes (`pgmcp up`, the gateway over stdio) ask
//! for a binary here. It is built with the same profile as the running test
//! (`cargo build --bins` is a no-op when nothing changed; cargo's own lock
//! serialises concurrent builds).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

static BUILT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();

/// Path of the workspace binary `name` (e.g. "pgmcp", "pgmcp-gateway").
pub fn bin(name: &str) -> Result<PathBuf> {
    let dir = BUILT
        .get_or_init(|| build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)?;
    let path = dir.join(name);
    if !path.is_file() {
        bail!("{} was not built", path.display());
    }
    Ok(path)
}

fn build() -> Result<PathBuf> {
    // Test binaries live in target/<profile>/deps/.
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("cannot locate the target directory")?
        .to_path_buf();
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug")
        .to_string();
    let target_dir = profile_dir
        .parent()
        .context("cannot locate the target directory")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let profile_arg = if profile == "debug" {
        "dev".to_string()
    } else {
        profile
    };
    let mut command = Command::new(cargo);
    // Cargo gives a running test its package's variables (CARGO_MANIFEST_DIR,
    // CARGO_PKG_*, …). Some build scripts (ring's) watch them, so passing
    // them on would rebuild half the dependency tree here and again in the
    // next ordinary build.
    for (key, _) in std::env::vars_os() {
        if let Some(k) = key.to_str()
            && (k.starts_with("CARGO_PKG_")
                || k.starts_with("CARGO_BIN_EXE_")
                || matches!(
                    k,
                    "CARGO_MANIFEST_DIR"
                        | "CARGO_MANIFEST_PATH"
                        | "CARGO_CRATE_NAME"
                        | "CARGO_PRIMARY_PACKAGE"
                        | "CARGO_TARGET_TMPDIR"
                        | "CARGO_RUSTC_CURRENT_DIR"
                ))
        {
            command.env_remove(k);
        }
    }
    let status = command
        .args([
            "build",
            "--quiet",
            "--workspace",
            "--bins",
            "--profile",
            &profile_arg,
            "--manifest-path",
            manifest,
        ])
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --bins failed ({status})");
    }
    Ok(profile_dir)
}
