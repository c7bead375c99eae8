//! OAuth (in progress)
