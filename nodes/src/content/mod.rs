//! content (work in progress)
