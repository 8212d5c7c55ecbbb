//! Names for the unit tests' regions: `unit-<module>-<tag>-<pid>-<n>`, unique within a test
//! run (the counter) and across concurrent runs (the pid). `.ci/run` checks that no
//! `interproc.unit-*` name outlives the tests.

use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh region name for a unit test of `module`.
pub(crate) fn unit(module: &str, tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "unit-{module}-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
