//! The moderation state file: read at start-up, rewritten atomically on each change.
//!
//! A rewrite goes to `PATH.tmp`, is fsynced, renamed over `PATH`, and the directory is
//! fsynced: a crash (even SIGKILL or power loss) at any moment leaves either the old file or
//! the new one, never a torn one. A stray `PATH.tmp` from a crash is ignored and overwritten.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The file's text, or `None` when it does not exist yet. Any other failure is an error
/// naming the file.
pub fn read(path: &Path) -> Result<Option<String>, String> {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes).map(Some).map_err(|_| {
            format!(
                "state file {:?}: not UTF-8 text",
                path.display().to_string()
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!(
            "state file {:?}: cannot read: {e}",
            path.display().to_string()
        )),
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Replaces the file's contents atomically (temporary file, fsync, rename, directory fsync).
pub fn write_atomic(path: &Path, text: &str) -> io::Result<()> {
    let tmp = temp_path(path);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Makes the rename itself durable; some file systems refuse to sync a directory.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_and_missing_is_none() {
        let dir = std::env::temp_dir().join(format!("chat-state-{}", std::process::id()));
        let _ = fs::create_dir_all(&dir);
        let path = dir.join("s.json");
        let _ = fs::remove_file(&path);
        assert_eq!(read(&path).unwrap(), None);
        write_atomic(&path, "one").unwrap();
        write_atomic(&path, "two").unwrap();
        assert_eq!(read(&path).unwrap().as_deref(), Some("two"));
        assert!(!temp_path(&path).exists());
        fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(read(&path).unwrap_err().contains("s.json"));
        let _ = fs::remove_dir_all(&dir);
    }
}
