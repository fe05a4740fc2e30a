//! Build-time facts for the tests: whether libfaketime is installed, so the clock-jump test is
//! reported as ignored ("skipped") rather than passed when it cannot run.

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
}
