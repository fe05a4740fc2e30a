//! Build-time facts for the tests, so a test that cannot run here is reported as ignored
//! ("skipped: …"), never as passed: whether libfaketime is installed (the clock-jump test),
//! whether the Python clients of the interop tests are (`scripts/setup-python.sh`), unless
//! `PAT_ROTATOR_SKIP_PYTHON=1`, and whether Azurite is (`scripts/test.sh` installs it into
//! `.venv-azurite`; the targets-blob tests).

const FAKETIME: [&str; 2] =
    ["/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1", "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"];

fn main() {
    println!("cargo::rustc-check-cfg=cfg(has_faketime)");
    for p in FAKETIME {
        println!("cargo::rerun-if-changed={p}");
    }
    if FAKETIME.iter().any(|p| std::path::Path::new(p).exists()) {
        println!("cargo::rustc-cfg=has_faketime");
    }

    println!("cargo::rustc-check-cfg=cfg(has_interop_python)");
    println!("cargo::rerun-if-env-changed=PAT_ROTATOR_PYTHON");
    println!("cargo::rerun-if-env-changed=PAT_ROTATOR_SKIP_PYTHON");
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv-interop/bin/python");
    println!("cargo::rerun-if-changed={venv}");
    let python = std::env::var("PAT_ROTATOR_PYTHON").unwrap_or_else(|_| venv.to_string());
    let skip = std::env::var("PAT_ROTATOR_SKIP_PYTHON").as_deref() == Ok("1");
    if !skip && std::path::Path::new(&python).exists() {
        println!("cargo::rustc-cfg=has_interop_python");
    }

    println!("cargo::rustc-check-cfg=cfg(has_azurite)");
    let azurite = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv-azurite/node_modules/azurite/dist/src/blob/main.js");
    println!("cargo::rerun-if-changed={azurite}");
    if std::path::Path::new(azurite).exists() {
        println!("cargo::rustc-cfg=has_azurite");
    }
}
