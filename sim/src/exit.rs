//! The exit codes of every `mimi-sim` command (the README's table). Their own module so
//! that the commands' modules (campaign, shrink, testbed) do not depend on the CLI.

/// The run, campaign or check passed.
pub const EXIT_OK: u8 = 0;
/// A violation, a liveness failure, an incomplete run or a determinism mismatch.
pub const EXIT_FAILED: u8 = 1;
/// A bad scenario file, flag or input file: nothing was run.
pub const EXIT_BAD_INPUT: u8 = 2;
/// `campaign`/`merge`: nothing failed, but the budget ran out before every run or
/// determinism re-run was made (so the campaign did not pass).
pub const EXIT_INCOMPLETE: u8 = 3;
