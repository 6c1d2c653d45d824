//! The servers of Twisted's tutorials, as sans-IO protocols.
//!
//! Each module holds one protocol, its factory, and `DEFAULT_ENDPOINT`,
//! where `spindle serve NAME` listens unless told otherwise.

pub mod echo;
pub mod qotd;
pub mod web;
pub mod welcome;
