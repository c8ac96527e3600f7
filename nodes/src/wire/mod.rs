//! wire (work in progress)
