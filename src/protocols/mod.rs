//! The servers of Twisted's tutorials, as sans-IO protocols.
//!
//! Each module holds one protocol, its factory, and `DEFAULT_ENDPOINT`,
//! where `spindle serve NAME` listens unless told otherwise.

pub mod answer;
pub mod chat;
pub mod chat_room;
pub mod cmd;
pub mod echo;
pub mod int32_echo;
pub mod netstring_echo;
pub mod nick;
pub mod qotd;
pub mod web;
pub mod welcome;
