//! mls (work in progress)
