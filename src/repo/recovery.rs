//! The recovery key (keys.md "Recovery key", issue 22): the whole
//! repository secret as printable text, which alone opens the repository
//! (`--identity FILE`), with no key file: for a safe, or paper, against
//! the day the machine, its strata.toml and its passphrase are gone. It
//! is also a valid age identity file (the secret's other parts are in a
//! comment line), so `age -d -i FILE` decrypts the repository's files as
//! the output of `key export-identity` does. A pure codec: no I/O.

use crate::crypto::Crypto;
use crate::error::{Error, Result};
use crate::id::RepoId;
use zeroize::Zeroizing;

/// The marker of the line that holds the secret's other parts.
const MARKER: &str = "# strata-recovery-1 ";

/// A recovery key as read: the secret, and the repository it belongs to.
pub struct RecoveryKey {
    /// The repository id it names.
    pub repo_id: RepoId,
    identity: Zeroizing<String>,
    id_key: Zeroizing<[u8; 32]>,
    seed: Zeroizing<u64>,
}

impl RecoveryKey {
    /// The secret, as a key file would give it.
    pub fn crypto(&self) -> Result<Crypto> {
        Crypto::from_secret(&self.identity, &self.id_key, *self.seed, "recovery key")
    }
}

/// The 8 hex digits that catch a mistyped line: BLAKE3 of the parts.
fn check_digits(repo_id: &RepoId, identity: &str, id_key: &[u8; 32], seed: u64) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"strata recovery key 1");
    h.update(&repo_id.0);
    h.update(identity.as_bytes());
    h.update(id_key);
    h.update(&seed.to_le_bytes());
    crate::id::to_hex(&h.finalize().as_bytes()[..4])
}

/// The text `strata key export-recovery` prints for `crypto`, the secret
/// of repository `repo_id`.
pub fn encode(crypto: &Crypto, repo_id: &RepoId) -> Result<Zeroizing<String>> {
    let identity = crypto.identity_string()?;
    let id_key = crypto.id_key()?;
    let seed = crypto.chunker_seed();
    Ok(Zeroizing::new(format!(
        "# strata recovery key of repository {repo}\n\
         # It alone opens the repository, for reading and for writing, with no key file:\n\
         # `strata --identity THIS-FILE ...` (or STRATA_IDENTITY). Keep it offline.\n\
         # public key: {recipient}\n\
         {MARKER}{repo} {key} {seed:016x} {check}\n\
         {identity}\n",
        repo = repo_id.to_hex(),
        recipient = crypto.recipient(),
        key = crate::id::to_hex(id_key),
        check = check_digits(repo_id, &identity, id_key, seed),
        identity = identity.as_str(),
    )))
}

/// Does `text` hold a recovery key (rather than plain age identities)?
pub fn is_recovery(text: &[u8]) -> bool {
    text.split(|&b| b == b'\n')
        .any(|l| l.trim_ascii().starts_with(MARKER.trim_end().as_bytes()))
}

/// Read a recovery key; `what` names the file in errors.
pub fn decode(text: &str, what: &str) -> Result<RecoveryKey> {
    let bad =
        |why: &str| Error::Invalid(format!("{what}: not a usable strata recovery key: {why}"));
    let mut parts = None;
    let mut identities = Vec::new();
    for l in text.lines().map(str::trim) {
        if let Some(rest) = l.strip_prefix(MARKER.trim_end()) {
            parts = Some(rest.split_whitespace().collect::<Vec<_>>());
        } else if !l.is_empty() && !l.starts_with('#') {
            identities.push(l);
        }
    }
    let parts = parts.ok_or_else(|| bad("no `# strata-recovery-1` line"))?;
    let [repo, key, seed, check] = parts.as_slice() else {
        return Err(bad("the `# strata-recovery-1` line needs 4 fields"));
    };
    let [identity] = identities.as_slice() else {
        return Err(bad("it needs exactly one AGE-SECRET-KEY-1… line"));
    };
    let repo_id =
        RepoId::from_hex(repo).ok_or_else(|| bad("the repository id is not 64 hex digits"))?;
    let id_key = Zeroizing::new(
        crate::id::parse_hex32(key).ok_or_else(|| bad("the id key is not 64 hex digits"))?,
    );
    let seed = Zeroizing::new(
        u64::from_str_radix(seed, 16).map_err(|_| bad("the chunker seed is not 16 hex digits"))?,
    );
    let identity = Zeroizing::new(identity.to_ascii_uppercase());
    if check_digits(&repo_id, &identity, &id_key, *seed) != check.to_ascii_lowercase() {
        return Err(bad("its check digits do not match (a mistyped character?)"));
    }
    Ok(RecoveryKey {
        repo_id,
        identity,
        id_key,
        seed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_typos() {
        let c = Crypto::generate().unwrap();
        let repo_id = RepoId([7u8; 32]);
        let text = encode(&c, &repo_id).unwrap();
        assert!(is_recovery(text.as_bytes()));
        let k = decode(&text, "rk.txt").unwrap();
        assert_eq!(k.repo_id, repo_id);
        let back = k.crypto().unwrap();
        assert_eq!(back.id_key().unwrap(), c.id_key().unwrap());
        assert_eq!(back.chunker_seed(), c.chunker_seed());
        assert_eq!(back.recipient().to_string(), c.recipient().to_string());
        // still an age identity file
        let ids = age::IdentityFile::from_buffer(text.as_bytes())
            .unwrap()
            .into_identities()
            .unwrap();
        assert_eq!(ids.len(), 1);
        // one changed digit of the id key is caught
        let line = text.lines().find(|l| l.starts_with(MARKER)).unwrap();
        let key_at = MARKER.len() + 65;
        let mut typo = line.to_string();
        let c0 = typo.as_bytes()[key_at];
        typo.replace_range(key_at..=key_at, if c0 == b'0' { "1" } else { "0" });
        let e = decode(&text.replace(line, &typo), "rk.txt")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("check digits"), "{e}");
        let e = decode("AGE-SECRET-KEY-1X\n", "rk.txt")
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            e,
            "rk.txt: not a usable strata recovery key: no `# strata-recovery-1` line"
        );
    }
}
