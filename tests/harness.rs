//! The harness's own checks can fail: a leak check that cannot fail would prove nothing.

mod common;

use common::*;

#[test]
fn the_leak_check_catches_an_issued_pat_in_captured_output() {
    let w = World::new();
    let (_, value) = w.seed_token(0, "pat-rotator/x/1", HOUR, DAY);
    w.record(&format!("some log line with {value} in it"));
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.assert_no_secrets()));
    assert!(caught.is_err(), "the leak check must catch a PAT in captured output");
    // Leave the world clean so its own drop check passes (and its emulators stop).
    w.discard_captured();
}

#[test]
fn the_leak_check_catches_the_identity_header() {
    let w = World::new();
    let header = w.emu.identity().header_value().to_string();
    w.record(&format!("X-IDENTITY-HEADER: {header}"));
    assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.assert_no_secrets())).is_err());
    w.discard_captured();
}
