//! What every property test file here shares.

use proptest::prelude::ProptestConfig;
use proptest::test_runner::FileFailurePersistence;

/// Failures are kept beside the test file (`props_*.proptest-regressions`):
/// proptest's default looks for a `lib.rs` above it, which tests/ lacks.
pub fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}
