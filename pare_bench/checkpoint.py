"""Training checkpoints that are written atomically and verified by checksum on load."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import torch


class CorruptCheckpointError(RuntimeError):
    pass


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync, then rename: never a half-written `path`."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk, a kill signal: leave no temp file behind
        tmp.unlink(missing_ok=True)
        raise


def _modules(model, ema) -> dict:
    return {
        f"{prefix}.{part}": getattr(holder, part)
        for prefix, holder in (("model", model), ("ema", ema))
        for part in ("transformer", "text_encoder")
    }


def save_state(path: Path, payload: dict) -> None:
    """torch.save `payload` atomically, with a sha256 file beside it (`<name>.sha256`)."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    atomic_write_bytes(path, data)
    atomic_write_bytes(path.with_suffix(path.suffix + ".sha256"), hashlib.sha256(data).hexdigest().encode())


def load_state(path: Path) -> dict:
    """The payload of `save_state`, refused with the file's name if it does not match its checksum."""
    data = path.read_bytes()
    digest_file = path.with_suffix(path.suffix + ".sha256")
    if not digest_file.exists():
        raise CorruptCheckpointError(
            f"{path}: no checksum file {digest_file.name}; delete the checkpoint to start over"
        )
    if hashlib.sha256(data).hexdigest() != digest_file.read_text().strip():
        raise CorruptCheckpointError(
            f"{path} does not match its checksum (truncated or corrupt); delete it to start over"
        )
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def save_checkpoint(path: Path, model, ema, optimizer, state: dict) -> None:
    payload = {name: module.state_dict() for name, module in _modules(model, ema).items()}
    save_state(path, {**payload, "optimizer": optimizer.state_dict(), "state": state})


def load_checkpoint(path: Path, model, ema, optimizer) -> dict:
    """Restore modules and optimizer in place; returns the saved training state."""
    payload = load_state(path)
    for name, module in _modules(model, ema).items():
        module.load_state_dict(payload[name])
    optimizer.load_state_dict(payload["optimizer"])
    return payload["state"]
