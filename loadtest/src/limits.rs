//! Raising the open-file limit: every peer is a socket, and the default soft limit
//! (often 1024) would cap a run long before the machine does.

/// Raises the soft RLIMIT_NOFILE to the hard limit. Returns (old soft, new soft).
pub fn raise_nofile() -> Result<(u64, u64), String> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(format!("getrlimit: {}", std::io::Error::last_os_error()));
    }
    // rlim_t is u64 on Linux; the conversion keeps other targets compiling.
    #[allow(clippy::unnecessary_cast)]
    let old = lim.rlim_cur as u64;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(format!("setrlimit: {}", std::io::Error::last_os_error()));
        }
    }
    #[allow(clippy::unnecessary_cast)]
    let new = lim.rlim_cur as u64;
    Ok((old, new))
}
