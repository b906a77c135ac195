"""A signed C2PA manifest on every synthesized MP4 and image (c2pa-python, offline).

Signing uses an ES256 certificate chain that doppel creates on first use in the user's
config folder ($DOPPEL_CONFIG_DIR, else $XDG_CONFIG_HOME/doppel, else ~/.config/doppel),
or one the user passes ($DOPPEL_C2PA_CERT + $DOPPEL_C2PA_KEY, set by `doppel --c2pa-cert`).
Nothing is fetched: no timestamp server, no trust list, so a good manifest reads as
"valid" (signed, intact, signer not in a trust list) rather than "trusted".
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..errors import DoppelError

log = logging.getLogger(__name__)

CERT_ENV, KEY_ENV, DIR_ENV = "DOPPEL_C2PA_CERT", "DOPPEL_C2PA_KEY", "DOPPEL_CONFIG_DIR"
IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
LABEL_ASSERTION = "org.doppel.label"  # doppel's own JSON label, inside the signed claim
MIME = {".mp4": "video/mp4", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
# the SDK keeps what it writes in memory up to this size, beyond it in a temporary file (by default it
# held the whole signed output: half of what signing a long plain MP4 cost)
BACKING_STORE_MB = 16


def _context():
    """The SDK's settings for signing and reading: a file-backed store beyond BACKING_STORE_MB."""
    import c2pa
    return c2pa.Context(c2pa.Settings.from_dict({"core": {"backing_store_memory_threshold_in_mb": BACKING_STORE_MB}}))


@dataclass(frozen=True)
class Credentials:
    chain: bytes  # PEM: signing certificate first, then its issuer
    key: bytes  # PEM PKCS#8 private key


def config_dir() -> Path:
    if os.environ.get(DIR_ENV):
        return Path(os.environ[DIR_ENV])
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "doppel"


def credentials() -> Credentials:
    """The user's certificate and key when passed, else doppel's own (created on first use)."""
    cert, key = os.environ.get(CERT_ENV), os.environ.get(KEY_ENV)
    if cert or key:
        if not (cert and key):
            raise DoppelError("a C2PA certificate needs its key too (--c2pa-cert with --c2pa-key)")
        try:
            return Credentials(Path(cert).read_bytes(), Path(key).read_bytes())
        except OSError as e:
            raise DoppelError(f"cannot read the C2PA certificate or key: {e}") from None
    folder = config_dir() / "c2pa"
    chain, keyfile = folder / "signer_chain.pem", folder / "signer_key.pem"
    if not (chain.exists() and keyfile.exists()):
        _create(chain, keyfile)
    return Credentials(chain.read_bytes(), keyfile.read_bytes())


def _create(chain_path: Path, key_path: Path) -> None:
    """A local CA and an ES256 signing certificate it issues (c2pa refuses self-signed signers)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "doppel (local, untrusted)")])

    def usage(sign: bool):
        return x509.KeyUsage(digital_signature=not sign, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=sign, crl_sign=sign,
                             encipher_only=False, decipher_only=False)

    now = _dt.datetime.now(_dt.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def cert(subject, pub, ca: bool):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(name("doppel local CA"))
             .public_key(pub).serial_number(x509.random_serial_number())
             .not_valid_before(now - _dt.timedelta(days=1)).not_valid_after(now + _dt.timedelta(days=3650))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
             .add_extension(usage(ca), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False))
        if not ca:
            b = (b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
                 .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                critical=False))
        return b.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    chain = cert(name("doppel signer"), key.public_key(), False) + cert(name("doppel local CA"),
                                                                       ca_key.public_key(), True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    chain_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    chain_path.write_bytes(chain)
    log.info("created a local C2PA signing certificate in %s", chain_path.parent)


def _manifest(title: str, edited: bool, label: dict) -> dict:
    source = "compositeWithTrainedAlgorithmicMedia" if edited else "trainedAlgorithmicMedia"
    action = {"action": "c2pa.edited" if edited else "c2pa.created", "digitalSourceType": IPTC + source,
              "softwareAgent": {"name": "doppel", "version": __version__},
              "description": f"doppel {label.get('kind', 'synthetic')}: synthetic media, not a real recording"}
    return {"claim_generator_info": [{"name": "doppel", "version": __version__}], "title": title,
            "assertions": [{"label": "c2pa.actions", "data": {"actions": [action]}},
                           {"label": LABEL_ASSERTION, "data": label}]}


def sign(src: Path, dst: Path, title: str, label: dict, parent: Path | None = None) -> None:
    """Write `src` with a signed manifest to `dst` (same format; `title` names the final file).

    `parent` (the video or photo that was edited) becomes the parentOf ingredient.
    """
    import c2pa

    mime = MIME[Path(title).suffix.lower()]
    cred = credentials()
    pmime = MIME.get(parent.suffix.lower()) if parent is not None else None
    builder = c2pa.Builder(_manifest(title, pmime is not None, label), context=_context())
    if pmime:
        with open(parent, "rb") as f:
            builder.add_ingredient({"title": parent.name, "relationship": "parentOf"}, pmime, f)
        # EDIT makes the SDK open the parent first: a claim's first action must be created/opened
        builder.set_intent(c2pa.C2paBuilderIntent.EDIT)
    elif parent is not None:
        log.info("C2PA: %s is not a format c2pa reads; it is not recorded as an ingredient", parent.name)
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, cred.chain, cred.key, None))
    with open(src, "rb") as s, open(dst, "w+b") as d:
        builder.sign(signer, mime, s, d)


def read(path: str | os.PathLike) -> dict | None:
    """The file's C2PA manifest checked: state valid / trusted / invalid, or None when it has none."""
    import c2pa

    try:
        reader = c2pa.Reader(str(path), context=_context())
    except c2pa.C2paError as e:
        if any(w in type(e).__name__ + str(e) for w in ("NotFound", "not found", "NotSupported")):
            return None  # no manifest, or a format c2pa does not read
        return {"state": "invalid", "errors": [str(e)[:200]]}
    with reader:
        state = (reader.get_validation_state() or "").lower()
        results = reader.get_validation_results() or {}
        active = reader.get_active_manifest() or {}
    failures = [f.get("code", "?") for f in (results.get("activeManifest") or {}).get("failure", [])]
    return {"state": state if state in ("valid", "trusted", "invalid") else "invalid",
            "errors": failures, "signer": (active.get("signature_info") or {}).get("common_name"),
            "issuer": (active.get("signature_info") or {}).get("issuer"),
            "actions": _actions(active), "ingredients": [i.get("title") for i in active.get("ingredients", [])],
            "doppel": _assertion(active, LABEL_ASSERTION)}


def _actions(manifest: dict) -> list[dict]:
    out = []
    for a in manifest.get("assertions", []):
        if a.get("label", "").startswith("c2pa.actions"):
            for act in a.get("data", {}).get("actions", []):
                out.append({"action": act.get("action"),
                            "digitalSourceType": (act.get("digitalSourceType") or "").rsplit("/", 1)[-1] or None})
    return out


def _assertion(manifest: dict, label: str) -> dict | None:
    for a in manifest.get("assertions", []):
        if a.get("label") == label:
            return a.get("data")
    return None


def synthetic(reading: dict | None) -> bool:
    """Whether a manifest says the content was made (or composited) by a trained algorithm."""
    return bool(reading) and any("rainedAlgorithmic" in (a.get("digitalSourceType") or "")
                                 for a in reading.get("actions", []))
