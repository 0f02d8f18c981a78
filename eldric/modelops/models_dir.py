"""What a models directory holds: the models installed in it, by the names clients use.

A model is a GGUF file (a gguf-split model counts once, by its first part, with the size
of all its parts) or a directory of safetensors files (a Hugging Face snapshot: its
directory's name is the model's). Files may sit at the top or one directory down
(`models/Qwen2.5/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf`); a GGUF in a directory of its own
name (`models/m-Q8_0/m-Q8_0.gguf`, how a model installed as `m-Q8_0` is kept) is that
name, its quantisation tag not stripped; symlinks are followed (an install
from a shared filesystem links the file instead of copying it). Downloads in progress
(`*.part`) and multimodal projectors (`mmproj-*.gguf`, loaded beside a model, not as one)
are not models.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path

from eldric.wire.models import LocalModel

# A quantisation tag at the end of a GGUF's name, as llama.cpp's quantize and the usual
# uploaders write it: Q4_K_M, Q8_0, Q4_0_4_8, IQ3_XS, TQ1_0, F16, BF16, MXFP4, after a
# "-", "." or "_", optionally with mradermacher's "i1-" (imatrix) or unsloth's "UD-".
_QUANT_TAG = re.compile(r"[-._](?:(?:i1|UD)[-._])?"
                        r"(?:I?Q\d+(?:_[A-Z0-9]+)*|TQ\d+_\d+|BF16|FP?16|FP?32|MXFP4(?:_MOE)?)$",
                        re.IGNORECASE)
_SPLIT_PART = re.compile(r"-(\d{5})-of-(\d{5})$")  # gguf-split's model-00001-of-00003.gguf


def model_id(path: str | Path) -> str:
    """The model id clients use: the file name without .gguf, a split part and a trailing
    quantisation tag (SmolLM2-135M-Instruct.Q4_1.gguf -> SmolLM2-135M-Instruct,
    Qwen2.5-0.5B-Instruct-Q4_K_M.gguf -> Qwen2.5-0.5B-Instruct). Not the GGUF's own
    general.name: see docs/design-notes.md."""
    name = _stem(Path(path))
    return _QUANT_TAG.sub("", _SPLIT_PART.sub("", name)) or name


def _stem(path: Path) -> str:
    name = path.name
    return name[: -len(".gguf")] if name.lower().endswith(".gguf") else name


def _rfc3339(mtime: float) -> str:
    return datetime.datetime.fromtimestamp(mtime, datetime.UTC).isoformat(
        timespec="seconds").replace("+00:00", "Z")


def _gguf(path: Path) -> LocalModel | None:
    """A GGUF file as a model (its split's first part with every part's size), or None."""
    if path.name.lower().startswith("mmproj"):
        return None
    split = _SPLIT_PART.search(_stem(path))
    try:
        if split is None:
            st = path.stat()
            return LocalModel(name=model_id(path), size=st.st_size, format="gguf",
                              modified_at=_rfc3339(st.st_mtime), path=str(path))
        if int(split.group(1)) != 1:
            return None
        head = _stem(path)[: split.start()]
        parts = [path.with_name(f"{head}-{i:05d}-of-{split.group(2)}.gguf")
                 for i in range(1, int(split.group(2)) + 1)]
        stats = [p.stat() for p in parts]  # a missing part: not (yet) a model
    except OSError:
        return None
    return LocalModel(name=model_id(path), size=sum(s.st_size for s in stats), format="gguf",
                      modified_at=_rfc3339(max(s.st_mtime for s in stats)), path=str(path))


def _safetensors(folder: Path) -> LocalModel | None:
    try:
        files = [f for f in folder.iterdir() if f.is_file()]
        if not any(f.suffix == ".safetensors" for f in files):
            return None
        stats = [f.stat() for f in files]
    except OSError:
        return None
    return LocalModel(name=folder.name, size=sum(s.st_size for s in stats),
                      format="safetensors", modified_at=_rfc3339(max(s.st_mtime for s in stats)),
                      path=str(folder))


def _is_gguf(p: Path) -> bool:
    return p.name.lower().endswith(".gguf") and p.is_file()


def installed(root: str | Path) -> list[LocalModel]:
    """The models in `root` (none when it does not exist), sorted by name. Two files
    whose ids clash (Model-Q4_K_M.gguf and Model-Q8_0.gguf) are both listed under their
    file names without .gguf, so each can be asked for."""
    root = Path(root)
    found: list[LocalModel] = []
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    for entry in entries:
        if entry.is_dir():
            if (st := _safetensors(entry)) is not None:
                found.append(st)
                continue
            try:
                inner = sorted(p for p in entry.iterdir() if _is_gguf(p))
            except OSError:
                continue
            for p in inner:
                if (m := _gguf(p)) is not None:
                    if _stem(p) == entry.name:  # installed under this very name (files.py)
                        m.name = entry.name
                    found.append(m)
        elif _is_gguf(entry) and (m := _gguf(entry)) is not None:
            found.append(m)
    counts: dict[str, int] = {}
    for m in found:
        counts[m.name] = counts.get(m.name, 0) + 1
    for m in found:
        if counts[m.name] > 1 and m.format == "gguf" and m.path:
            m.name = _SPLIT_PART.sub("", _stem(Path(m.path)))
    return sorted(found, key=lambda m: m.name)


def resolve(root: str | Path, name: str) -> LocalModel | None:
    """The installed model of that name in `root`; also found by its file name (with or
    without .gguf), as a client may ask for the file it copied in."""
    models = installed(root)
    for m in models:
        if m.name == name:
            return m
    for m in models:
        if m.path and name in (Path(m.path).name, _stem(Path(m.path))):
            return m
    return None
