//! room (work in progress)
