//! Build script of every function package (and of the benchmarks' hello-world baseline, to
//! link it the same way): release builds are linked without unwind tables.
//!
//! The functions are built with `panic = "abort"` and stripped, so nothing unwinds and a
//! backtrace could only print bare addresses; yet the standard library (compiled for
//! unwinding, and inlined through LTO) and aws-lc's C and assembly bring `.eh_frame` anyway,
//! about 0.65 MB of each binary, which `-C force-unwind-tables=no` cannot remove. The linker
//! drops it instead (a panic still prints its message and location). Set
//! `KEEP_UNWIND_TABLES=1` to keep the tables, for a backtrace from an unstripped build.

use std::path::PathBuf;

/// Added to the linker's default script: `INSERT` keeps the default layout.
const LINKER_SCRIPT: &str = "SECTIONS { /DISCARD/ : { *(.eh_frame) } } INSERT AFTER .text;\n";
const OPT_OUT: &str = "KEEP_UNWIND_TABLES";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo::rerun-if-env-changed={OPT_OUT}");
    let release = std::env::var("PROFILE").is_ok_and(|profile| profile == "release");
    let kept = std::env::var_os(OPT_OUT).is_some_and(|value| !value.is_empty() && value != "0");
    if release && !kept {
        let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("cargo sets OUT_DIR")?);
        let script = out_dir.join("no-unwind-tables.ld");
        std::fs::write(&script, LINKER_SCRIPT)?;
        println!("cargo::rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
    Ok(())
}
