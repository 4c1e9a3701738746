//! The master key inside an HSM, used over PKCS#11 (D1, `[master_key_pkcs11]`).
//!
//! The key is an AES-256 secret-key object that must be sensitive and not extractable: its bytes
//! never reach this process. Wrapping a data key is `C_Encrypt` with `CKM_AES_GCM` inside the
//! token over the same envelope the in-memory key writes (`gatehouse_crypto::aead`): the 22-byte
//! header (format, algorithm, KEK version, DEK version, nonce) followed by the context is the
//! associated data, the nonce is the GCM IV, and the token returns ciphertext and tag. So an
//! envelope sealed by the HSM is byte-for-byte what the in-memory key would have sealed with the
//! same key and nonce, and rotating between the two is the ordinary rewrap.
//!
//! The IV is drawn from Gatehouse's CSPRNG and given to the token (SoftHSM and most HSMs accept
//! that). An HSM that insists on generating the IV itself (FIPS-mode firmware does) returns it
//! instead; `docs/design/keyring.md` says what to do with those.
//!
//! The check value stored in `kek_versions` for an HSM key is an envelope of a fixed text sealed
//! by the token under its own context (`keyring::kek::check_context`). Start-up recognises the key
//! by asking the token to open each stored check value: only the key that sealed it can. Unlike
//! the classic "encrypt a zero block" check value, this reveals no raw AES output (E_K(0) is
//! AES-GCM's hash key), only one more GCM ciphertext under a random IV like every wrapped key.
//!
//! PKCS#11 calls block, and a network HSM may take milliseconds: each call runs under
//! `block_in_place` on a multi-threaded runtime, so the executor's other tasks move to another
//! worker. One logged-in session, behind a mutex, serves the process: the keyring caches
//! unwrapped data keys, so it calls the HSM at start, on a data key's first use in the process,
//! when it adds a key version and during rotation, never per request.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use gatehouse_core::keyring::kek::{CHECK_PLAINTEXT, check_context};
use gatehouse_core::keyring::{KekError, MasterKek};
use gatehouse_crypto::{
    AeadError, EnvelopeHeader, Key32, SecretString, envelope_header, random_nonce, split_envelope,
};

/// Where the key is and how to log in. Built by the configuration (`[master_key_pkcs11]`) or by
/// `keys rotate-master --new-pkcs11-key-label`.
#[derive(Debug, Clone)]
pub struct Pkcs11Settings {
    /// The PKCS#11 library, an absolute path.
    pub module: PathBuf,
    pub token_label: String,
    pub key_label: String,
    /// The user PIN (`Debug` shows it redacted).
    pub pin: SecretString,
    /// The setting that named this key, for messages (`master_key_pkcs11`, or a CLI flag).
    pub setting: String,
}

/// A loaded module is initialised once per process; a second `C_Initialize` fails. Rotation from
/// one HSM key to another on the same module shares it.
fn module(path: &PathBuf) -> Result<Pkcs11, String> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut loaded = MODULES
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(m) = loaded.get(path) {
        return Ok(m.clone());
    }
    let m = Pkcs11::new(path).map_err(|e| format!("cannot load {}: {e}", path.display()))?;
    m.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(|e| format!("{} did not initialise: {e}", path.display()))?;
    loaded.insert(path.clone(), m.clone());
    Ok(m)
}

/// Runs a blocking PKCS#11 call without stalling the async executor.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// The master key as a handle on an HSM key.
pub struct Pkcs11Kek {
    session: Mutex<Session>,
    key: ObjectHandle,
    described: String,
}

impl std::fmt::Debug for Pkcs11Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pkcs11Kek({})", self.described)
    }
}

/// The token's refusal of the PIN or the session, as a sentence naming the setting.
fn login_error(s: &Pkcs11Settings, e: &CkError) -> String {
    let name = &s.setting;
    match e {
        CkError::Pkcs11(RvError::PinIncorrect, _) => format!(
            "{name}: the HSM token {:?} refused the PIN (wrong PIN); check GATEHOUSE_PKCS11_PIN or \
             {name}.pin_file. Nothing was changed",
            s.token_label
        ),
        CkError::Pkcs11(RvError::PinLocked, _) => format!(
            "{name}: the HSM token {:?} is locked after too many wrong PINs; its security officer \
             must unlock it (softhsm2-util or the vendor's tool). Nothing was changed",
            s.token_label
        ),
        CkError::Pkcs11(RvError::PinExpired, _) => format!(
            "{name}: the PIN of HSM token {:?} has expired; set a new one with the vendor's tool",
            s.token_label
        ),
        other => format!(
            "{name}: cannot log in to HSM token {:?}: {other}",
            s.token_label
        ),
    }
}

impl Pkcs11Kek {
    /// Loads the module, finds the token by label, logs in and finds the one AES-256 key with
    /// `key_label`, refusing a key that could leave the HSM.
    pub fn open(s: &Pkcs11Settings) -> Result<Self, String> {
        let name = &s.setting;
        let ctx = module(&s.module).map_err(|e| format!("{name}.module: {e}"))?;
        let mut slot = None;
        for candidate in ctx
            .get_slots_with_token()
            .map_err(|e| format!("{name}: cannot list the module's slots: {e}"))?
        {
            let info = ctx
                .get_token_info(candidate)
                .map_err(|e| format!("{name}: cannot read a token's label: {e}"))?;
            if info.label().trim_end() == s.token_label {
                slot = Some(candidate);
                break;
            }
        }
        let Some(slot) = slot else {
            return Err(format!(
                "{name}.token_label: no token labelled {:?} in {}",
                s.token_label,
                s.module.display()
            ));
        };
        let session = ctx.open_ro_session(slot).map_err(|e| {
            format!(
                "{name}: cannot open a session on token {:?}: {e}",
                s.token_label
            )
        })?;
        let pin = AuthPin::new(s.pin.expose().to_owned().into());
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => return Err(login_error(s, &e)),
        }
        let found = session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Label(s.key_label.as_bytes().to_vec()),
            ])
            .map_err(|e| format!("{name}: cannot search token {:?}: {e}", s.token_label))?;
        let key = match found.as_slice() {
            [key] => *key,
            [] => {
                return Err(format!(
                    "{name}.key_label: token {:?} holds no AES key labelled {:?}",
                    s.token_label, s.key_label
                ));
            }
            more => {
                return Err(format!(
                    "{name}.key_label: token {:?} holds {} AES keys labelled {:?}; labels must \
                     name one key",
                    s.token_label,
                    more.len(),
                    s.key_label
                ));
            }
        };
        check_key(&session, key, s)?;
        let kek = Self {
            session: Mutex::new(session),
            key,
            described: format!("HSM key {:?} on token {:?}", s.key_label, s.token_label),
        };
        // Before any data key is wrapped: the token must open what it sealed, under the IV
        // Gatehouse gave it.
        if !kek.works() {
            return Err(format!(
                "{name}: token {:?} did not open an envelope it had just sealed with key {:?}; \
                 the key cannot be used (does the token generate GCM IVs itself?)",
                s.token_label, s.key_label
            ));
        }
        Ok(kek)
    }

    fn gcm(
        &self,
        encrypt: bool,
        nonce: [u8; 12],
        aad: &[u8],
        data: &[u8],
    ) -> Result<(Vec<u8>, [u8; 12]), CkError> {
        let mut iv = nonce;
        let params = GcmParams::new(&mut iv, aad, 128u64.into())?;
        let mechanism = Mechanism::AesGcm(params);
        let session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        let out = blocking(|| {
            if encrypt {
                session.encrypt(&mechanism, self.key, data)
            } else {
                session.decrypt(&mechanism, self.key, data)
            }
        })?;
        drop(mechanism);
        // What the token left in the IV buffer: a token that makes its own IVs writes it there.
        Ok((out, iv))
    }

    fn seal(
        &self,
        versions: EnvelopeHeader,
        context: &[u8],
        plain: &[u8],
    ) -> Result<Vec<u8>, KekError> {
        let nonce = random_nonce().map_err(|_| KekError::Open(AeadError::SealFailed))?;
        let header = envelope_header(versions, &nonce);
        let aad = [header.as_slice(), context].concat();
        let (sealed, used) = self
            .gcm(true, nonce, &aad, plain)
            .map_err(|e| KekError::Device(e.to_string()))?;
        // The header names the IV Gatehouse chose; an envelope sealed under another one could
        // never be opened, and a rotation would have retired the key that still could.
        if used != nonce {
            return Err(KekError::Device(
                "the HSM replaced the GCM IV Gatehouse supplied (it generates its own); such a \
                 token cannot hold Gatehouse's master key"
                    .into(),
            ));
        }
        Ok([header.as_slice(), &sealed].concat())
    }

    fn open_envelope(
        &self,
        envelope: &[u8],
        context: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, KekError> {
        let parts = split_envelope(envelope)?;
        let aad = [parts.header, context].concat();
        match self.gcm(false, parts.nonce, &aad, parts.body) {
            Ok((plain, _)) => Ok(zeroize::Zeroizing::new(plain)),
            Err(e) if opens_failed(&e) => Err(KekError::Open(AeadError::OpenFailed)),
            Err(e) if self.works() => {
                // Tokens differ in what a GCM tag that does not verify returns (SoftHSM2 says
                // CKR_GENERAL_ERROR); the token works, so the envelope was not this key's.
                tracing::debug!(error = %e, "the HSM could not open an envelope");
                Err(KekError::Open(AeadError::OpenFailed))
            }
            Err(e) => Err(KekError::Device(e.to_string())),
        }
    }

    /// Whether a fresh check envelope makes the round trip through the token, which tells "not
    /// this key's envelope" from a token that fails.
    fn works(&self) -> bool {
        let Ok(probe) = self.seal(
            EnvelopeHeader {
                kek_version: 0,
                dek_version: 0,
            },
            &check_context(),
            CHECK_PLAINTEXT,
        ) else {
            return false;
        };
        let Ok(parts) = split_envelope(&probe) else {
            return false;
        };
        let aad = [parts.header, check_context().as_slice()].concat();
        self.gcm(false, parts.nonce, &aad, parts.body)
            .is_ok_and(|(plain, _)| plain.as_slice() == CHECK_PLAINTEXT)
    }
}

/// Whether the token said "this ciphertext does not open under this key" rather than failing.
fn opens_failed(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange | RvError::DataInvalid,
            _
        )
    )
}

/// Refuses a key whose bytes could leave the HSM or that is not AES-256 for encryption.
fn check_key(session: &Session, key: ObjectHandle, s: &Pkcs11Settings) -> Result<(), String> {
    let name = &s.setting;
    let attrs = session
        .get_attributes(
            key,
            &[
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::ValueLen,
                AttributeType::Encrypt,
                AttributeType::Decrypt,
            ],
        )
        .map_err(|e| format!("{name}: cannot read the key's attributes: {e}"))?;
    let (mut sensitive, mut extractable, mut len, mut enc, mut dec) =
        (false, true, 0usize, false, false);
    for a in attrs {
        match a {
            Attribute::Sensitive(v) => sensitive = v,
            Attribute::Extractable(v) => extractable = v,
            Attribute::ValueLen(v) => len = usize::from(v),
            Attribute::Encrypt(v) => enc = v,
            Attribute::Decrypt(v) => dec = v,
            _ => {}
        }
    }
    if !sensitive || extractable {
        return Err(format!(
            "{name}.key_label: key {:?} can leave the HSM (CKA_SENSITIVE must be true and \
             CKA_EXTRACTABLE false); create or import it as sensitive and not extractable",
            s.key_label
        ));
    }
    if len != 32 {
        return Err(format!(
            "{name}.key_label: key {:?} is {len} bytes; the master key must be AES-256 (32 bytes)",
            s.key_label
        ));
    }
    if !enc || !dec {
        return Err(format!(
            "{name}.key_label: key {:?} must allow encrypt and decrypt (CKA_ENCRYPT, CKA_DECRYPT)",
            s.key_label
        ));
    }
    Ok(())
}

impl MasterKek for Pkcs11Kek {
    fn wrap(
        &self,
        versions: EnvelopeHeader,
        context: &[u8],
        key: &Key32,
    ) -> Result<Vec<u8>, KekError> {
        self.seal(versions, context, key.expose())
    }

    fn unwrap(&self, wrapped: &[u8], context: &[u8]) -> Result<Key32, KekError> {
        let plain = self.open_envelope(wrapped, context)?;
        let bytes: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| KekError::Open(AeadError::Malformed))?;
        Ok(Key32::from_bytes(bytes))
    }

    fn new_check_value(&self, version: u32) -> Result<Vec<u8>, KekError> {
        self.seal(
            EnvelopeHeader {
                kek_version: version,
                dek_version: 0,
            },
            &check_context(),
            CHECK_PLAINTEXT,
        )
    }

    fn recognises(&self, check_value: &[u8]) -> Result<bool, KekError> {
        // An in-memory key's check value (an HMAC, shorter than any envelope) is never this key.
        if EnvelopeHeader::parse(check_value).is_err() {
            return Ok(false);
        }
        match self.open_envelope(check_value, &check_context()) {
            Ok(plain) => Ok(plain.as_slice() == CHECK_PLAINTEXT),
            Err(KekError::Open(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn describe(&self) -> String {
        self.described.clone()
    }
}
