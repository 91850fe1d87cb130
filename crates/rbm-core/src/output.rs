//! Output files that never lose data: every output is checked before any work starts (its
//! directory exists and is writable, it is not a directory, it is not one of the command's inputs)
//! and then written to a temporary file beside its target, renamed over the target only when the
//! whole output is written. A failed or killed run leaves the old file as it was.
//!
//! - A symbolic link is written through: the temporary file goes beside the link's target, and
//!   the target is replaced, not the link.
//! - Special files (devices such as `/dev/null`, FIFOs, sockets) and `-` (standard output) are
//!   written directly: they cannot be renamed over, and their data is a stream anyway.
//! - A new file gets the permissions the user's umask gives (`0666 & !umask`); a replaced file
//!   keeps its own.
//! - Temporary files are named `.rbm-<pid>-<random>.tmp`; those left in the directory by a run
//!   that was killed (its process no longer exists) are removed by the next write there.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{RbmError, Result};

/// Where an output goes, checked: see the module documentation.
#[derive(Clone, Debug)]
pub struct OutputPath {
    /// The path as the user gave it (for messages).
    given: PathBuf,
    /// What is written: standard output, a special file, or a regular file (symlinks followed).
    target: Target,
}

#[derive(Clone, Debug)]
enum Target {
    Stdout,
    Special(PathBuf),
    Regular { path: PathBuf, dir: PathBuf },
}

/// An output being written; [`PendingOutput::commit`] makes it visible, dropping it without a
/// commit leaves the old file untouched (and removes the temporary file).
pub struct PendingOutput {
    given: PathBuf,
    kind: Pending,
}

enum Pending {
    Stdout(io::BufWriter<io::StdoutLock<'static>>),
    Special(io::BufWriter<File>),
    Regular { file: io::BufWriter<tempfile::NamedTempFile>, path: PathBuf, mode: Option<u32> },
}

fn io_error(path: &Path, source: io::Error) -> RbmError {
    RbmError::Io { path: path.to_path_buf(), source }
}

fn refused(path: &Path, reason: impl Into<String>) -> RbmError {
    io_error(path, io::Error::other(reason.into()))
}

/// The identity of an existing file (device and inode on Unix, the canonical path elsewhere).
fn identity(path: &Path) -> Option<(u64, u64, PathBuf)> {
    let canonical = std::fs::canonicalize(path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&canonical).ok()?;
        Some((m.dev(), m.ino(), PathBuf::new()))
    }
    #[cfg(not(unix))]
    Some((0, 0, canonical))
}

impl OutputPath {
    /// Standard output.
    pub fn stdout() -> OutputPath {
        OutputPath { given: PathBuf::from("-"), target: Target::Stdout }
    }

    /// Checks `path` as an output of a command that reads `inputs`: `-` is standard output; an
    /// existing directory, an output that is one of the inputs (after following links), or a
    /// directory that does not exist or cannot be written is refused with the reason.
    pub fn check(path: &Path, inputs: &[&Path]) -> Result<OutputPath> {
        let given = path.to_path_buf();
        if path.as_os_str() == "-" {
            return Ok(OutputPath { given, target: Target::Stdout });
        }
        if let Some(me) = identity(path) {
            for input in inputs.iter().filter(|i| i.as_os_str() != "-") {
                if identity(input).as_ref() == Some(&me) {
                    return Err(refused(
                        path,
                        format!("is also the input {}: refusing to overwrite an input", input.display()),
                    ));
                }
            }
        }
        let target = match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => return Err(refused(path, "is a directory")),
            Ok(m) if !m.is_file() => Target::Special(path.to_path_buf()),
            Ok(_) => {
                // An existing regular file, possibly through links: write beside the real file.
                let real = std::fs::canonicalize(path).map_err(|e| io_error(path, e))?;
                let dir = real.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
                Target::Regular { path: real, dir }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // A dangling link is written through to where it points.
                let path = match std::fs::read_link(path) {
                    Ok(to) if to.is_absolute() => to,
                    Ok(to) => path.parent().unwrap_or(Path::new("")).join(to),
                    Err(_) => path.to_path_buf(),
                };
                let dir = match path.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                match std::fs::metadata(&dir) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => return Err(refused(&given, format!("{} is not a directory", dir.display()))),
                    Err(_) => return Err(refused(&given, format!("directory {} does not exist", dir.display()))),
                }
                // Absolute, so that two spellings of one new file compare equal.
                let dir = std::fs::canonicalize(&dir).map_err(|e| io_error(&given, e))?;
                let name = path.file_name().ok_or_else(|| refused(&given, "names no file"))?;
                Target::Regular { path: dir.join(name), dir }
            }
            Err(e) => return Err(io_error(path, e)),
        };
        if let Target::Regular { dir, .. } = &target {
            // Can a file be created there? (Removed again at once.)
            temporary_in(dir).map_err(|e| refused(&given, format!("cannot write in {}: {e}", dir.display())))?;
        }
        Ok(OutputPath { given, target })
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.given
    }

    /// Fails when two outputs of one command are the same file (the second would replace the
    /// first). Standard output may be given more than once.
    pub fn check_distinct(outputs: &[&OutputPath]) -> Result<()> {
        for (i, a) in outputs.iter().enumerate() {
            for b in &outputs[..i] {
                let same = match (&a.target, &b.target) {
                    (Target::Regular { path: x, .. }, Target::Regular { path: y, .. }) => x == y,
                    (Target::Special(x), Target::Special(y)) => x == y,
                    _ => false,
                };
                if same {
                    return Err(refused(&a.given, format!("is given twice (also as {})", b.given.display())));
                }
            }
        }
        Ok(())
    }

    /// Starts writing: a temporary file beside a regular target, or the stream itself.
    pub fn create(&self) -> Result<PendingOutput> {
        let given = self.given.clone();
        let kind = match &self.target {
            Target::Stdout => Pending::Stdout(io::BufWriter::new(io::stdout().lock())),
            Target::Special(path) => {
                let file = OpenOptions::new().write(true).open(path).map_err(|e| io_error(&given, e))?;
                Pending::Special(io::BufWriter::new(file))
            }
            Target::Regular { path, dir } => {
                remove_stale_temporaries(dir);
                let tmp = temporary_in(dir).map_err(|e| io_error(&given, e))?;
                let mode = existing_mode(path);
                Pending::Regular { file: io::BufWriter::with_capacity(1 << 20, tmp), path: path.clone(), mode }
            }
        };
        Ok(PendingOutput { given, kind })
    }

    /// Writes the whole output with `write`, then commits it.
    pub fn write_with(&self, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<()> {
        let mut out = self.create()?;
        write(&mut out).map_err(|e| io_error(&self.given, e))?;
        out.commit()
    }
}

impl Write for PendingOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.kind {
            Pending::Stdout(w) => w.write(buf),
            Pending::Special(w) => w.write(buf),
            Pending::Regular { file, .. } => file.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.kind {
            Pending::Stdout(w) => w.write_all(buf),
            Pending::Special(w) => w.write_all(buf),
            Pending::Regular { file, .. } => file.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.kind {
            Pending::Stdout(w) => w.flush(),
            Pending::Special(w) => w.flush(),
            Pending::Regular { file, .. } => file.flush(),
        }
    }
}

impl PendingOutput {
    /// Makes the output visible: flushes a stream; for a regular file, flushes the temporary
    /// file to disk, gives it its permissions and renames it over the target.
    pub fn commit(self) -> Result<()> {
        let io = |e: io::Error| io_error(&self.given, e);
        match self.kind {
            Pending::Stdout(mut w) => w.flush().map_err(io),
            Pending::Special(mut w) => w.flush().map_err(io),
            Pending::Regular { file, path, mode } => {
                let tmp = file.into_inner().map_err(|e| io(e.into_error()))?;
                tmp.as_file().sync_all().map_err(io)?;
                set_mode(tmp.as_file(), mode).map_err(io)?;
                tmp.persist(&path).map_err(|e| io(e.error))?;
                Ok(())
            }
        }
    }
}

fn temporary_in(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new().prefix(&format!(".rbm-{}-", std::process::id())).suffix(".tmp").tempfile_in(dir)
}

/// The permission bits of an existing file, to keep them on replacement.
fn existing_mode(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).ok().map(|m| m.permissions().mode() & 0o7777)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Gives the temporary file the replaced file's mode, or what the umask gives a new file.
fn set_mode(file: &File, mode: Option<u32>) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = mode.unwrap_or_else(|| 0o666 & !current_umask());
        file.set_permissions(std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (file, mode);
        Ok(())
    }
}

/// The process's umask. POSIX can only read it by setting it, so it is set and restored at
/// once, under a lock so that two threads cannot interleave.
#[cfg(unix)]
fn current_umask() -> u32 {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: umask only swaps the process's file-creation mask; it is restored at once.
    unsafe {
        let old = libc::umask(0o022);
        libc::umask(old);
        old as u32
    }
}

/// Removes `.rbm-<pid>-*.tmp` files in `dir` whose process no longer runs (killed runs). Only
/// where the process table can be read (`/proc`); elsewhere nothing is removed.
fn remove_stale_temporaries(dir: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(".rbm-").filter(|_| name.ends_with(".tmp")) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_atomically_through_links_and_keeps_modes() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.csv");
        std::fs::write(&real, "old").unwrap();
        // A failed write leaves the old content and no temporary file.
        let out = OutputPath::check(&real, &[]).unwrap();
        let failed = out.write_with(|w| {
            w.write_all(b"half")?;
            Err(io::Error::other("boom"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
            let link = dir.path().join("link.csv");
            std::os::unix::fs::symlink(&real, &link).unwrap();
            OutputPath::check(&link, &[]).unwrap().write_with(|w| w.write_all(b"new")).unwrap();
            assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
            assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
            assert_eq!(std::fs::metadata(&real).unwrap().permissions().mode() & 0o777, 0o640);
            // A new file gets 0666 minus the umask.
            let fresh = dir.path().join("fresh.csv");
            OutputPath::check(&fresh, &[]).unwrap().write_with(|w| w.write_all(b"x")).unwrap();
            let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o666 & !current_umask());
            // Writing through a link to the input is writing the input.
            let err = OutputPath::check(&link, &[&real]).unwrap_err().to_string();
            assert!(err.contains("refusing to overwrite an input"), "{err}");
        }
    }

    #[test]
    fn refuses_directories_and_missing_directories_and_writes_special_files() {
        let dir = tempfile::tempdir().unwrap();
        let err = OutputPath::check(dir.path(), &[]).unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
        let err = OutputPath::check(&dir.path().join("no/such/out.csv"), &[]).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
        #[cfg(unix)]
        {
            let null = Path::new("/dev/null");
            OutputPath::check(null, &[]).unwrap().write_with(|w| w.write_all(b"x")).unwrap();
            assert!(std::fs::metadata(null).unwrap().file_type().is_char_device_like());
        }
    }

    #[test]
    fn removes_temporaries_of_dead_processes_only() {
        let dir = tempfile::tempdir().unwrap();
        // No process has pid 4194305 (above Linux's maximum); our own pid is alive.
        let dead = dir.path().join(".rbm-4194305-abc.tmp");
        let alive = dir.path().join(format!(".rbm-{}-abc.tmp", std::process::id()));
        let other = dir.path().join(".rbm-notes.tmp");
        for p in [&dead, &alive, &other] {
            std::fs::write(p, "x").unwrap();
        }
        OutputPath::check(&dir.path().join("out"), &[]).unwrap().write_with(|w| w.write_all(b"y")).unwrap();
        assert_eq!(dead.exists(), !Path::new("/proc/self").exists());
        assert!(alive.exists() && other.exists());
    }

    #[cfg(unix)]
    trait CharDevice {
        fn is_char_device_like(&self) -> bool;
    }

    #[cfg(unix)]
    impl CharDevice for std::fs::FileType {
        fn is_char_device_like(&self) -> bool {
            use std::os::unix::fs::FileTypeExt;
            self.is_char_device()
        }
    }
}
