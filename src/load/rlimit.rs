//! Raising this process's open-file limit so it can hold many connections.

/// File descriptors kept beyond one per connection (stdio, the poll,
/// the server's pipes in `spindle bench`).
pub const SPARE_FILES: u64 = 64;

/// Makes sure `needed` files can be open at once: raises the soft
/// `RLIMIT_NOFILE` up to the hard limit if it is lower. Returns the limit
/// now in force, or a message saying what to do when the hard limit is too
/// low.
pub fn ensure_open_files(needed: u64) -> Result<u64, String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(format!(
            "cannot read the open-file limit: {}",
            std::io::Error::last_os_error()
        ));
    }
    let current: u64 = limit.rlim_cur;
    if current >= needed {
        return Ok(current);
    }
    let hard: u64 = limit.rlim_max;
    if hard < needed {
        return Err(format!(
            "{needed} open files are needed but the hard limit is {hard} (soft {current}); \
             raise it (e.g. `ulimit -Hn {needed}` as root, or LimitNOFILE= in systemd) \
             or use fewer connections"
        ));
    }
    limit.rlim_cur = needed as libc::rlim_t;
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(format!(
            "cannot raise the open-file limit from {current} to {needed}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(needed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_need_is_met_and_an_impossible_one_explained() {
        assert!(ensure_open_files(16).unwrap() >= 16);
        let e = ensure_open_files(u64::MAX / 2).unwrap_err();
        assert!(e.contains("hard limit"), "{e}");
    }
}
