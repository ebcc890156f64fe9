//! Image references and registries: parsing `registry/name:tag@digest`, and resolving a
//! tag to the digest a registry serves for it, over the registry's HTTP API (the
//! `Docker-Content-Digest` of `GET /v2/<name>/manifests/<tag>`, accepting OCI indexes and
//! Docker manifest lists, with the Bearer token dance of the `WWW-Authenticate`
//! challenge). A release pins the digest, so the same bytes go to every environment
//! even when the tag moves later.

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};

/// Where an image without a registry lives, and the host its API answers on.
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// What a manifest request accepts: an index or list first, so that a multi-platform
/// tag resolves to the digest of the whole list (what `docker pull` pins too).
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// A whole resolution (challenge, token, manifest) gives up after this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("`{0}` is not an image reference; write it as registry/name:tag or registry/name@sha256:<digest>")]
    BadReference(String),
    #[error("the tag `{tag}` of {name} does not exist in the registry; push it, or deploy a tag that exists (nothing changed)")]
    TagNotFound { name: String, tag: String },
    #[error("the registry of {name} refused access ({status}); it needs credentials Slipway does not have")]
    Denied { name: String, status: u16 },
    #[error("the registry of {name} could not be asked: {why}")]
    Registry { name: String, why: String },
}

/// A parsed image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// `127.0.0.1:5000`, `ghcr.io`, `docker.io`.
    pub registry: String,
    /// `acme/shop`; `library/nginx` for official images.
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:...`, when the reference pins one.
    pub digest: Option<String>,
}

impl ImageRef {
    pub fn parse(text: &str) -> Result<ImageRef, ImageError> {
        let bad = || ImageError::BadReference(text.to_owned());
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) if valid_digest(digest) => (rest, Some(digest.to_owned())),
            Some(_) => return Err(bad()),
            None => (text, None),
        };
        // A `:` after the last `/` starts the tag; one before it is a registry's port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(colon) => (
                &rest[..last_slash + colon],
                Some(rest[last_slash + colon + 1..].to_owned()),
            ),
            None => (rest, None),
        };
        if tag.as_deref().is_some_and(|t| !valid_tag(t)) {
            return Err(bad());
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_owned(), path.to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), name.to_owned()),
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        let path_ok = !repository.is_empty()
            && repository.split('/').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            });
        if !path_ok {
            return Err(bad());
        }
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository`, as `docker pull` takes it.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// `registry/repository@digest`: the reference that always means the same bytes.
    pub fn pinned(&self, digest: &str) -> String {
        format!("{}@{digest}", self.name())
    }

    /// The tag asked for; `latest` when the reference names neither tag nor digest.
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }

    /// Registries on this machine speak plain HTTP (as Docker allows for loopback).
    fn base_url(&self) -> String {
        let host = if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            self.registry.as_str()
        };
        let bare = host
            .rsplit_once(':')
            .map_or(host, |(h, _)| h)
            .trim_matches(['[', ']']);
        let loopback = bare == "localhost" || bare == "::1" || bare.starts_with("127.");
        format!("{}://{host}", if loopback { "http" } else { "https" })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `sha256:` and 64 lowercase hex digits.
pub fn valid_digest(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

/// What Docker allows as a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn valid_tag(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && text.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// Asks registries which digest a tag points at.
#[derive(Clone)]
pub struct RegistryResolver {
    client: reqwest::Client,
}

impl RegistryResolver {
    pub fn new() -> Result<RegistryResolver, ImageError> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("slipway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| ImageError::Registry {
                name: "any image".into(),
                why: error.to_string(),
            })?;
        Ok(RegistryResolver { client })
    }

    /// The digest of the reference: its own when it pins one, else the registry's for its tag.
    pub async fn resolve(&self, image: &ImageRef) -> Result<String, ImageError> {
        if let Some(digest) = &image.digest {
            return Ok(digest.clone());
        }
        let tag = image.tag_or_latest();
        let url = format!(
            "{}/v2/{}/manifests/{tag}",
            image.base_url(),
            image.repository
        );
        let mut response = self.manifest(&url, None, image).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            let token = self.token(response.headers(), image).await?;
            response = self.manifest(&url, Some(&token), image).await?;
        }
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(ImageError::TagNotFound {
                    name: image.name(),
                    tag: tag.to_owned(),
                })
            }
            status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                return Err(ImageError::Denied {
                    name: image.name(),
                    status: status.as_u16(),
                })
            }
            status => {
                return Err(ImageError::Registry {
                    name: image.name(),
                    why: format!("{url} answered {status}"),
                })
            }
        }
        let header = response
            .headers()
            .get("docker-content-digest")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        match header {
            Some(digest) if valid_digest(&digest) => Ok(digest),
            // A registry that does not send the header: the digest is that of the bytes.
            _ => {
                let body = response
                    .bytes()
                    .await
                    .map_err(|e| registry_error(image, &e))?;
                Ok(format!("sha256:{}", hex::encode(Sha256::digest(&body))))
            }
        }
    }

    async fn manifest(
        &self,
        url: &str,
        token: Option<&str>,
        image: &ImageRef,
    ) -> Result<reqwest::Response, ImageError> {
        let mut request = self.client.get(url).header(ACCEPT, MANIFEST_TYPES);
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        request.send().await.map_err(|e| registry_error(image, &e))
    }

    /// An anonymous token for pulling, from the realm the challenge names.
    async fn token(&self, headers: &HeaderMap, image: &ImageRef) -> Result<String, ImageError> {
        let denied = || ImageError::Denied {
            name: image.name(),
            status: 401,
        };
        let challenge = headers
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(denied)?;
        let params = bearer_challenge(challenge).ok_or_else(denied)?;
        let realm = params
            .iter()
            .find(|(k, _)| k == "realm")
            .map(|(_, v)| v.clone())
            .ok_or_else(denied)?;
        let mut query: Vec<(String, String)> = params
            .into_iter()
            .filter(|(k, _)| k == "service" || k == "scope")
            .collect();
        if !query.iter().any(|(k, _)| k == "scope") {
            query.push((
                "scope".into(),
                format!("repository:{}:pull", image.repository),
            ));
        }
        let response = self
            .client
            .get(&realm)
            .query(&query)
            .send()
            .await
            .map_err(|e| registry_error(image, &e))?;
        if !response.status().is_success() {
            return Err(ImageError::Denied {
                name: image.name(),
                status: response.status().as_u16(),
            });
        }
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| registry_error(image, &e))?;
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_owned)
            .ok_or_else(|| ImageError::Registry {
                name: image.name(),
                why: "its token server answered without a token".into(),
            })
    }
}

fn registry_error(image: &ImageRef, error: &reqwest::Error) -> ImageError {
    let mut why = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        why = format!("{why}: {cause}");
        source = cause.source();
    }
    ImageError::Registry {
        name: image.name(),
        why,
    }
}

/// The parameters of `Bearer realm="...",service="...",scope="..."`.
pub fn bearer_challenge(header: &str) -> Option<Vec<(String, String)>> {
    let rest = header
        .trim()
        .strip_prefix("Bearer ")
        .or_else(|| header.trim().strip_prefix("bearer "))?;
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let value: String = if chars.peek() == Some(&'"') {
            chars.next();
            chars.by_ref().take_while(|c| *c != '"').collect()
        } else {
            chars.by_ref().take_while(|c| *c != ',').collect()
        };
        params.push((key.trim().to_owned(), value));
    }
    Some(params)
}

#[cfg(test)]
mod tests;
