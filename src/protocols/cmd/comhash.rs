//! `comhash PATH`: the SHA-1 of a regular file inside the server's root,
//! streamed in [`HASH_BUFFER`]-sized reads (never the whole file in
//! memory). Runs on the blocking pool, and stops early if its client
//! leaves ([`hash_in_root_while`]).
//!
//! The tutorial hashed any path the server could read, which discloses
//! files. Here the path is resolved (symlinks included) relative to the
//! root and refused, before anything is opened, if it
//!
//! * escapes the root (`../../etc/shadow`, `/dev/zero`, a symlink that
//!   points outside), or
//! * is not a regular file (a directory, FIFO, device or socket).
//!
//! The file is then opened without following a final symlink and without
//! blocking (a FIFO swapped in cannot hang the open), and the opened
//! descriptor is checked again: still a regular file, still inside the
//! root (through `/proc/self/fd`). So a path swapped between the check and
//! the open is refused too, and nothing outside the root is ever read.

use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use sha1::{Digest, Sha1};

use crate::deferred::Failure;

/// Bytes read (and hashed) at a time.
pub const HASH_BUFFER: usize = 64 * 1024;

/// An OS error's text without Rust's ` (os error N)` suffix, as a user
/// reads it: `No such file or directory`.
fn describe(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn outside(requested: &str) -> Failure {
    Failure::new(format!("{requested}: outside the server's root directory"))
}

/// What kind of non-regular file this is, for the refusal.
fn kind(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

fn not_regular(requested: &str, meta: &Metadata) -> Failure {
    Failure::new(format!("{requested}: not a regular file ({})", kind(meta)))
}

/// `path` with `.` and `..` applied without touching the filesystem.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Opens `requested` (relative to `root`, or absolute) for hashing, or
/// says why not. `root` must be canonical (see [`canonical_root`]).
pub fn open_in_root(root: &Path, requested: &str) -> Result<File, Failure> {
    let joined = root.join(requested);
    let resolved = match fs::canonicalize(&joined) {
        Ok(p) => p,
        // Missing: say "outside" for what is lexically outside, so that
        // the answer does not reveal what exists beyond the root.
        Err(_) if !lexical(&joined).starts_with(root) => return Err(outside(requested)),
        Err(e) => return Err(Failure::new(format!("{requested}: {}", describe(&e)))),
    };
    if !resolved.starts_with(root) {
        return Err(outside(requested));
    }
    let meta = fs::metadata(&resolved)
        .map_err(|e| Failure::new(format!("{requested}: {}", describe(&e))))?;
    if !meta.is_file() {
        return Err(not_regular(requested, &meta));
    }
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&resolved)
        .map_err(|e| Failure::new(format!("{requested}: {}", describe(&e))))?;
    // Check what was opened, not what was looked at: the path may have
    // changed in between.
    let meta = file
        .metadata()
        .map_err(|e| Failure::new(format!("{requested}: {}", describe(&e))))?;
    if !meta.is_file() {
        return Err(not_regular(requested, &meta));
    }
    use std::os::fd::AsRawFd;
    match fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
        Ok(actual) if actual.starts_with(root) => Ok(file),
        Ok(_) => Err(outside(requested)),
        Err(e) => Err(Failure::new(format!(
            "{requested}: cannot check where it leads: {}",
            describe(&e)
        ))),
    }
}

/// The server's root as [`open_in_root`] needs it: absolute, with every
/// symlink resolved.
pub fn canonical_root(root: &Path) -> io::Result<PathBuf> {
    let root = fs::canonicalize(root)?;
    if !root.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a directory", root.display()),
        ));
    }
    Ok(root)
}

/// The SHA-1 of everything `reader` yields, as 40 lowercase hex digits.
pub fn sha1_hex(reader: &mut impl Read) -> io::Result<String> {
    let mut hasher = Sha1::new();
    let mut buf = vec![0u8; HASH_BUFFER];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// `comhash`'s work: confine, open, stream, hash.
pub fn hash_in_root(root: &Path, requested: &str) -> Result<String, Failure> {
    hash_in_root_while(root, requested, &|| true)
}

/// As [`hash_in_root`], checking `wanted` before each read: when it says
/// no (the client left), the work stops early instead of holding a pool
/// thread for the rest of a big file. Only the bytes present when the file
/// was opened are hashed, so a file that keeps growing cannot hold a pool
/// thread for ever either.
pub fn hash_in_root_while(
    root: &Path,
    requested: &str,
    wanted: &dyn Fn() -> bool,
) -> Result<String, Failure> {
    let file = open_in_root(root, requested)?;
    let size = file
        .metadata()
        .map_err(|e| Failure::new(format!("{requested}: {}", describe(&e))))?
        .len();
    let mut reader = Checked {
        inner: file.take(size),
        wanted,
    };
    sha1_hex(&mut reader).map_err(|e| Failure::new(format!("{requested}: {}", describe(&e))))
}

/// A reader that fails once `wanted` says the result is not wanted any more.
struct Checked<'a, R> {
    inner: R,
    wanted: &'a dyn Fn() -> bool,
}

impl<R: Read> Read for Checked<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !(self.wanted)() {
            return Err(io::Error::other("abandoned: the client left"));
        }
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("spindle-comhash-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(fs::canonicalize(&dir).unwrap())
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn err(root: &Path, path: &str) -> String {
        hash_in_root(root, path).unwrap_err().to_string()
    }

    #[test]
    fn hashes_known_vectors() {
        assert_eq!(
            sha1_hex(&mut &b"abc"[..]).unwrap(),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            sha1_hex(&mut &b""[..]).unwrap(),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        // Longer than one buffer.
        let big = vec![b'a'; HASH_BUFFER * 2 + 17];
        let mut whole = Sha1::new();
        whole.update(&big);
        let expected: String = whole
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sha1_hex(&mut &big[..]).unwrap(), expected);
    }

    #[test]
    fn files_inside_are_hashed_everything_else_refused() {
        let dir = TempDir::new("unit");
        let root = canonical_root(&dir.0).unwrap();
        fs::write(root.join("abc.txt"), "abc").unwrap();
        fs::create_dir(root.join("sub")).unwrap();
        fs::write(root.join("sub/inner.txt"), "abc").unwrap();
        symlink(root.join("abc.txt"), root.join("link-in")).unwrap();
        symlink("/etc/hostname", root.join("link-out")).unwrap();
        symlink("/nonexistent/x", root.join("dangling-out")).unwrap();
        let fifo = std::ffi::CString::new(root.join("fifo").to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);

        let abc = "a9993e364706816aba3e25717850c26c9cd0d89d";
        assert_eq!(hash_in_root(&root, "abc.txt").unwrap(), abc);
        assert_eq!(hash_in_root(&root, "./sub/../abc.txt").unwrap(), abc);
        assert_eq!(hash_in_root(&root, "sub/inner.txt").unwrap(), abc);
        assert_eq!(hash_in_root(&root, "link-in").unwrap(), abc);
        let absolute = root.join("abc.txt");
        assert_eq!(
            hash_in_root(&root, absolute.to_str().unwrap()).unwrap(),
            abc
        );

        assert_eq!(
            err(&root, "../../etc/shadow"),
            "../../etc/shadow: outside the server's root directory"
        );
        assert_eq!(
            err(&root, "/dev/zero"),
            "/dev/zero: outside the server's root directory"
        );
        assert_eq!(
            err(&root, "/etc/passwd"),
            "/etc/passwd: outside the server's root directory"
        );
        assert_eq!(
            err(&root, "link-out"),
            "link-out: outside the server's root directory"
        );
        assert_eq!(
            err(&root, "../nope"),
            "../nope: outside the server's root directory"
        );
        assert_eq!(
            err(&root, "dangling-out"),
            "dangling-out: No such file or directory"
        );
        assert_eq!(err(&root, "missing"), "missing: No such file or directory");
        assert_eq!(err(&root, "sub"), "sub: not a regular file (a directory)");
        assert_eq!(err(&root, "."), ".: not a regular file (a directory)");
        assert_eq!(err(&root, "fifo"), "fifo: not a regular file (a FIFO)");

        // Abandoned work stops at the next read.
        let calls = std::cell::Cell::new(0);
        let stop_after_one = || {
            calls.set(calls.get() + 1);
            calls.get() <= 1
        };
        let big = root.join("big");
        fs::write(&big, vec![b'x'; HASH_BUFFER * 4]).unwrap();
        assert_eq!(
            hash_in_root_while(&root, "big", &stop_after_one)
                .unwrap_err()
                .to_string(),
            "big: abandoned: the client left"
        );
        assert_eq!(calls.get(), 2);

        // With the root at /dev, /dev/zero is inside but still refused.
        let dev = canonical_root(Path::new("/dev")).unwrap();
        assert_eq!(
            err(&dev, "zero"),
            "zero: not a regular file (a character device)"
        );
        assert!(canonical_root(&root.join("abc.txt")).is_err());
    }
}
