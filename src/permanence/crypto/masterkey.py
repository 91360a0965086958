"""The master key: where a process gets it (a variable, a KMS command, a file) and how a new
one is written (``init``). Every other key is wrapped by it or derived from it (crypto/keyring.py).
"""

from __future__ import annotations

import base64
import binascii
import os
import shlex
import subprocess
from pathlib import Path

from permanence.config import Settings
from permanence.crypto.primitives import KEY_LEN, new_key
from permanence.errors import ConfigurationError, Conflict


def load_master_key(settings: Settings) -> bytes:
    """The master key: ``PERMANENCE_MASTER_KEY``, else the output of
    ``PERMANENCE_MASTER_KEY_COMMAND`` (a KMS client unwrapping it), else the key file."""
    if settings.master_key:
        return decode_key(settings.master_key, "PERMANENCE_MASTER_KEY")
    if settings.master_key_command:
        return decode_key(_run_key_command(settings.master_key_command), KEY_COMMAND)
    path = settings.effective_master_key_file
    if not path.exists():
        raise ConfigurationError(
            f"no master key: {path} does not exist. On an installed host, run commands as "
            "docs/deployment.md says (section 'Running commands by hand') so that "
            "PERMANENCE_MASTER_KEY_FILE names the key; only a new installation runs "
            "'permanence init'"
        )
    return decode_key(path.read_text().strip(), str(path))


KEY_COMMAND = "PERMANENCE_MASTER_KEY_COMMAND"
KEY_COMMAND_TIMEOUT = 60.0


def _run_key_command(command: str) -> str:
    """Run the key command without a shell; its standard output is the base64 key. Failures
    name the command's program and exit status, never its output (it may be the key)."""
    try:
        argv = shlex.split(command)
    except ValueError:
        raise ConfigurationError(f"{KEY_COMMAND} is not a valid command line") from None
    if not argv:
        raise ConfigurationError(f"{KEY_COMMAND} is empty")
    program = Path(argv[0]).name
    try:
        # The operator's own configured command, run without a shell.
        done = subprocess.run(  # noqa: S603
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=KEY_COMMAND_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise ConfigurationError(f"{KEY_COMMAND}: program {program!r} not found") from None
    except PermissionError:
        raise ConfigurationError(f"{KEY_COMMAND}: program {program!r} not executable") from None
    except subprocess.TimeoutExpired:
        raise ConfigurationError(
            f"{KEY_COMMAND}: {program!r} did not answer within {KEY_COMMAND_TIMEOUT:.0f} s"
        ) from None
    if done.returncode != 0:
        raise ConfigurationError(f"{KEY_COMMAND}: {program!r} exited with status {done.returncode}")
    try:
        return done.stdout.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ConfigurationError(f"master key from {KEY_COMMAND} is not valid base64") from None


def create_master_key_file(path: Path) -> bytes:
    """Write a new master key with mode 0600; refuse to overwrite an existing one."""
    return create_key_file(path, "a master key")


def create_key_file(path: Path, what: str) -> bytes:
    """Write a new 32-byte key (base64) with mode 0600; refuse to overwrite a file."""
    if path.exists():
        raise Conflict(f"{path} already exists: refusing to overwrite {what}")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = new_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.b64encode(key).decode() + "\n")
    return key


def decode_key(text: str, where: str, what: str = "master key") -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"{what} in {where} is not valid base64") from None
    if len(key) != KEY_LEN:
        raise ConfigurationError(f"{what} in {where} must be 32 bytes (base64 of 32 bytes)")
    return key
