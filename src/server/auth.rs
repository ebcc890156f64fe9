//! Bearer tokens. The admin token is generated on first start, written to
//! `<data>/admin.token` (mode 0600), and kept in memory only as a hash, compared in
//! constant time.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::server::error::ApiError;

/// The sha256 of a token.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Reads `<data>/admin.token`, creating it with a fresh random token when missing.
pub fn load_or_create_admin_token(data_dir: &Path) -> std::io::Result<String> {
    let path = data_dir.join("admin.token");
    match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => return Ok(token.trim().to_owned()),
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let token = format!("slw_{}", hex::encode(rand::random::<[u8; 24]>()));
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path)?;
    file.write_all(token.as_bytes())?;
    file.sync_all()?;
    Ok(token)
}

/// Checks the request's bearer token against the admin token's hash.
pub fn require_admin(headers: &HeaderMap, admin_hash: &[u8; 32]) -> Result<(), ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized)?;
    let given = hash_token(token.trim());
    // Constant time: compare every byte whatever the first difference.
    let difference = given.iter().zip(admin_hash.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if difference == 0 {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}
