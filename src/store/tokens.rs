//! API tokens: the `api_tokens` table. Only a token's sha256 is stored; the server
//! module decides what a token may do, this module only keeps the rows.

use super::error::{Fault, FaultResult};
use super::SqliteStore;
use crate::pipeline::traits::{EffectError, EffectResult};

/// A stored token (never its text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: i64,
    pub name: String,
    /// Hex sha256 of the token text.
    pub hash: String,
    /// `read`, `deploy` or `admin`.
    pub role: String,
    /// `app/env` patterns; `*` matches any app or environment.
    pub environments: Vec<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// What creating a token needs.
#[derive(Clone, Debug)]
pub struct NewToken<'a> {
    pub name: &'a str,
    pub hash: &'a str,
    pub role: &'a str,
    pub environments: &'a [String],
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    name: String,
    hash: String,
    role: String,
    environments: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl TokenRow {
    fn into_record(self) -> FaultResult<TokenRecord> {
        let environments = serde_json::from_str(&self.environments).map_err(|_| {
            Fault::Data(format!(
                "the environments of token {} are not a JSON list",
                self.id
            ))
        })?;
        Ok(TokenRecord {
            id: self.id,
            name: self.name,
            hash: self.hash,
            role: self.role,
            environments,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
        })
    }
}

const TOKEN_COLUMNS: &str = "id, name, hash, role, environments, created_at, revoked_at";

fn failed(what: &str) -> impl FnOnce(Fault) -> EffectError + '_ {
    move |fault| fault.context(format_args!("{what}"))
}

impl SqliteStore {
    /// Inserts a token and returns its row (with its id, which is part of the token
    /// text the caller builds next, so the id is reserved first and the hash set after).
    pub async fn create_token(&self, new: NewToken<'_>) -> EffectResult<TokenRecord> {
        let environments = serde_json::to_string(new.environments)
            .map_err(|_| EffectError::Store("cannot write a token's environments".into()))?;
        let sql = format!(
            "INSERT INTO api_tokens (name, hash, role, environments, created_at) \
             VALUES (?, ?, ?, ?, ?) RETURNING {TOKEN_COLUMNS}"
        );
        let row: TokenRow = sqlx::query_as(&sql)
            .bind(new.name)
            .bind(new.hash)
            .bind(new.role)
            .bind(environments)
            .bind(self.now())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| failed("cannot create a token")(e.into()))?;
        row.into_record().map_err(failed("cannot create a token"))
    }

    /// Sets the hash and name of a token just created (its text names its id).
    pub async fn finish_token(&self, id: i64, hash: &str, name: &str) -> EffectResult<()> {
        sqlx::query("UPDATE api_tokens SET hash = ?, name = ? WHERE id = ?")
            .bind(hash)
            .bind(name)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| failed("cannot store a token")(e.into()))?;
        Ok(())
    }

    /// One token by id, revoked or not.
    pub async fn token(&self, id: i64) -> EffectResult<Option<TokenRecord>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?");
        let row: Option<TokenRow> = sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| failed("cannot read a token")(e.into()))?;
        row.map(TokenRow::into_record)
            .transpose()
            .map_err(failed("cannot read a token"))
    }

    /// Every token, oldest first.
    pub async fn tokens(&self) -> EffectResult<Vec<TokenRecord>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY id");
        let rows: Vec<TokenRow> = sqlx::query_as(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| failed("cannot list tokens")(e.into()))?;
        rows.into_iter()
            .map(TokenRow::into_record)
            .collect::<FaultResult<_>>()
            .map_err(failed("cannot list tokens"))
    }

    /// Revokes a token; false when there is no such token or it was already revoked.
    pub async fn revoke_token(&self, id: i64) -> EffectResult<bool> {
        let result =
            sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(self.now())
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(|e| failed("cannot revoke a token")(e.into()))?;
        Ok(result.rows_affected() == 1)
    }
}
