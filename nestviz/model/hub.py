"""Hugging Face Hub checkpoints: ``hf-hub:org/name[@revision]`` (timm's spelling) through ``huggingface_hub``.

``huggingface_hub`` owns the cache layout (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``), offline mode
(``HF_HUB_OFFLINE=1``: the cache or nothing) and revisions, exactly as timm uses them: online a
checkpoint is downloaded once and found in the cache afterwards. A bare ``org/name`` that is not a
local path is looked up in the same cache, offline, without ``huggingface_hub``.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from .bundle import WeightsError

HUB_PREFIX = "hf-hub:"
HUB_FILES = ("model.safetensors", "pytorch_model.bin")  # what a Hugging Face model folder holds, preferred first


def is_hub_spec(text: str) -> bool:
    return text.startswith(HUB_PREFIX)


def hub_download(spec: str) -> Path:
    """``hf-hub:org/name[@revision]`` -> the checkpoint file in the local hub cache (with its config.json beside it).

    The cache is read first; only a model not in it goes to the Hub, and an unreachable Hub is one
    error after a quick connection test (seconds), not after huggingface_hub's retries (about a minute).
    """
    repo_id, _, revision = spec[len(HUB_PREFIX):].partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise WeightsError(spec, "expected hf-hub:ORG/NAME[@REVISION], e.g. hf-hub:timm/nest_tiny_jx.goog_in1k")
    from huggingface_hub import constants

    cached = _fetch(spec, repo_id, revision, local=True)
    if cached is not None:
        return cached
    if constants.HF_HUB_OFFLINE:
        raise WeightsError(spec, f"not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE "
                                 "is set; download it once online, or set HF_HOME/HF_HUB_CACHE to a cache that has it")
    problem = hub_unreachable(constants.ENDPOINT)
    if problem:
        raise WeightsError(spec, f"cannot reach the Hugging Face Hub ({problem}) and not in the cache "
                                 f"({constants.HF_HUB_CACHE}); set HF_HUB_OFFLINE=1 to use the cache only")
    online = _fetch(spec, repo_id, revision, local=False)
    if online is None:
        raise WeightsError(spec, f"cannot reach the Hugging Face Hub and not in the cache ({constants.HF_HUB_CACHE})")
    return online


def _fetch(spec: str, repo_id: str, revision: str, local: bool) -> Path | None:
    """The checkpoint file from the cache (``local``) or the Hub, config.json beside it; None when not cached
    (``local``) or the Hub is unreachable; WeightsError for a model, revision or file that does not exist."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import (  # where both huggingface_hub 0.24 and 1.x+ export them
        EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError,
    )

    def fetch(name: str) -> Path:
        return Path(hf_hub_download(repo_id, name, revision=revision or None, local_files_only=local))

    not_local = False
    try:
        for name in HUB_FILES:
            try:
                file = fetch(name)
            except LocalEntryNotFoundError:  # not cached, and offline or the Hub unreachable
                not_local = True
                continue
            except EntryNotFoundError:  # the repository has no such file
                continue
            try:
                fetch("config.json")
            except (EntryNotFoundError, LocalEntryNotFoundError):
                pass  # the shapes and the name still say the architecture
            return file
    except RepositoryNotFoundError:
        raise WeightsError(spec, "no such model on the Hugging Face Hub (or it is private or gated: "
                                 "log in with `hf auth login`)") from None
    except RevisionNotFoundError:
        raise WeightsError(spec, f"the model has no revision {revision!r}") from None
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise WeightsError(spec, f"download failed ({' '.join(str(e).split())[:200]})") from None
    if not_local or local:
        return None
    raise WeightsError(spec, f"the model has no {' or '.join(HUB_FILES)}")


def hub_unreachable(endpoint: str, timeout: float = 3.0) -> str | None:
    """Why ``endpoint`` (the Hub's URL) cannot be connected to within ``timeout`` seconds, or None when it can
    (or a proxy is set: then only the download can tell)."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")):
        return None
    url = urlsplit(endpoint)
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        return f"{host}:{port}: {e.strerror or type(e).__name__}"
    return None


def hub_cache_folder(repo_id: str) -> Path | None:
    """``org/name`` (e.g. ``timm/nest_tiny_jx.goog_in1k``) -> its folder in the local Hugging Face cache."""
    if repo_id.count("/") != 1 or repo_id.startswith((".", "/")):
        return None
    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    cache = Path(os.environ.get("HF_HUB_CACHE", hf_home / "hub"))
    folder = cache / ("models--" + repo_id.replace("/", "--"))
    return folder if folder.is_dir() else None


__all__ = ["HUB_PREFIX", "HUB_FILES", "is_hub_spec", "hub_download", "hub_unreachable", "hub_cache_folder"]
