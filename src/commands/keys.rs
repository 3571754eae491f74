//! `stepgate gen-key`: a new cookie signing key.

use std::io::Write;

use base64::Engine;

/// Write a fresh 256-bit key, base64 on one line, the format `secrets.cookie_keys` files hold.
pub fn gen_key(out: &mut dyn Write) -> std::io::Result<u8> {
    let key: [u8; 32] = rand::random();
    writeln!(
        out,
        "{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )?;
    Ok(super::exit::OK)
}
