"""Secrets from the environment, or from a file the environment names (the Docker and Kubernetes convention).

`NAME` holds the value itself; `NAME_FILE` holds the path of a file whose contents are the value (a mounted
Docker or Kubernetes secret). Setting both is a mistake, and so is a file that cannot be read: either is a
problem reported at startup, never a silent fallback. The value is read once, when the service starts, so a
rotated file takes effect on the next start (README, "Rotating secrets").
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

FILE_SUFFIX = "_FILE"
# A secret file is a key or a short token; anything this large is the wrong file.
MAX_SECRET_BYTES = 64 * 1024
WEBHOOK_SECRET_PREFIX = "whsec_"  # Standard Webhooks' form of a signing secret: the prefix, then base64


def read_secret(env: Mapping[str, str], name: str, problems: list[str]) -> str:
    """The value of secret `name`, from `name` or the file `name_FILE` names; appends to `problems` on error."""
    direct, path = env.get(name, ""), env.get(name + FILE_SUFFIX, "")
    if not path:
        return direct
    if direct:
        problems.append(f"{name} and {name}{FILE_SUFFIX}: both are set; set only one")
        return ""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        problems.append(f"{name}{FILE_SUFFIX}: cannot read {path}: {exc.strerror}")
        return ""
    if len(raw) > MAX_SECRET_BYTES:
        problems.append(f"{name}{FILE_SUFFIX}: {path} is larger than {MAX_SECRET_BYTES} bytes; not a secret file")
        return ""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        problems.append(f"{name}{FILE_SUFFIX}: {path} is not UTF-8 text")
        return ""
    # Editors and `echo` end files with a newline; a key never does.
    return text.strip()


def webhook_secret_bytes(secret: str) -> bytes:
    """The HMAC key of a webhook signing secret: `whsec_<base64>` decoded, any other text as its UTF-8 bytes.

    ValueError when a `whsec_` secret is not base64 after the prefix."""
    if not secret.startswith(WEBHOOK_SECRET_PREFIX):
        return secret.encode()
    try:
        return base64.b64decode(secret.removeprefix(WEBHOOK_SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a whsec_ secret must be base64 after the prefix") from exc
