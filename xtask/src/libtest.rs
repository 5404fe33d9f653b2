//! What libtest prints, read back: the test command and the VMs report
//! their totals from it.

/// Sums libtest's `test result: ok. N passed; M failed; …` lines.
pub fn totals(output: &str) -> (u64, u64) {
    let count = |line: &str, word: &str| -> u64 {
        line.split([';', '.'])
            .find_map(|part| {
                part.trim()
                    .strip_suffix(word)
                    .and_then(|n| n.trim().parse().ok())
            })
            .unwrap_or(0)
    };
    output
        .lines()
        .filter(|line| line.starts_with("test result:"))
        .fold((0, 0), |(passed, failed), line| {
            (
                passed + count(line, "passed"),
                failed + count(line, "failed"),
            )
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn sums_libtest_summaries() {
        let output = "running 2 tests\n\
            test result: ok. 93 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.17s\n\
            test result: FAILED. 7 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out; finished in 4.22s\n\
            noise 5 passed\n";
        assert_eq!(super::totals(output), (100, 2));
        assert_eq!(super::totals(""), (0, 0));
    }
}
