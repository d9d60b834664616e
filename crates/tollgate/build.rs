//! Lays out the binary's code so that the functions a running gateway executes sit together.
//!
//! Only a few MB of the binary's code ever runs (start-up, serving, recording), but spread over
//! the whole text, and the kernel maps 64 KiB around every page first executed: most of the text
//! ends up resident, and counted in the process's RSS. `link-order.txt` lists those functions
//! (written by `bench/link_order.sh`), and the linker places them first, in that order.
//!
//! Only where the linker is the toolchain's own LLD (the default for x86_64 Linux since Rust
//! 1.90): another linker may not know the option. A symbol the list names but the binary lacks
//! (the code changed since the list was written) is skipped without a warning; what is not
//! listed is placed after, as before. `TOLLGATE_LINK_ORDER=off` turns it off.

use std::env;
use std::path::Path;

/// Flags that choose a linker other than the default.
const LINKER_FLAGS: [&str; 4] = [
    "-fuse-ld",
    "linker-flavor",
    "link-self-contained",
    "linker=",
];

fn main() {
    println!("cargo:rerun-if-changed=link-order.txt");
    println!("cargo:rerun-if-env-changed=TOLLGATE_LINK_ORDER");
    let var = |name: &str| env::var(name).unwrap_or_default();
    let default_lld = var("CARGO_CFG_TARGET_ARCH") == "x86_64"
        && var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu";
    // A linker named in cargo's configuration, or chosen through the flags, may not be LLD.
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    let own_linker = env::var_os("RUSTC_LINKER").is_some()
        || LINKER_FLAGS.iter().any(|flag| flags.contains(flag));
    let list = Path::new(&var("CARGO_MANIFEST_DIR")).join("link-order.txt");
    if !default_lld || own_linker || var("TOLLGATE_LINK_ORDER") == "off" || !list.is_file() {
        return;
    }
    println!(
        "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
        list.display()
    );
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
}
