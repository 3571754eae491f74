//! Cookie signing keys: `stepgate gen-key`, and the key file `serve` creates on
//! a first run with the embedded SQLite store.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use base64::Engine;

/// A fresh 256-bit key, base64 on one line: the format `secrets.cookie_keys` files hold.
fn new_key_line() -> String {
    let key: [u8; 32] = rand::random();
    format!(
        "{}\n",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// Write a fresh key to `out`.
pub fn gen_key(out: &mut dyn Write) -> std::io::Result<u8> {
    out.write_all(new_key_line().as_bytes())?;
    Ok(super::exit::OK)
}

/// Create the key file at `path` with a fresh key when no file is there: its
/// missing directories (mode 0700) and the file (mode 0600), never replacing a
/// file that exists. Returns whether it created the file.
pub fn create_key_file(path: &Path) -> std::io::Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let mut file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => f,
        // Made by someone else in the meantime: theirs stands.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(e),
    };
    file.write_all(new_key_line().as_bytes())?;
    file.sync_all()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn creates_a_private_key_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/keys/cookie.key");
        assert!(create_key_file(&path).unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        let key = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .unwrap();
        assert_eq!(key.len(), 32);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("data/keys")), 0o700);
        // A second call keeps the key.
        assert!(!create_key_file(&path).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }
}
