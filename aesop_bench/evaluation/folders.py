"""SR result folders: images that other code already super-resolved, evaluated against a set's HR images.

``--sr DIR`` holds one subfolder per set (``DIR/Set5``, ``DIR/set14``: matched case-insensitively to the
set's folder name, its name or an alias), or, for a single set, the images themselves.

* **Names.** An SR file belongs to the HR image whose stem equals the SR stem, or is its prefix followed by
  ``_``, ``-`` or ``.`` (``baby_RDN_x4.png`` -> ``baby``; the longest such HR stem wins, so ``img_1_x4``
  goes to ``img_1`` rather than ``img``). With ``suffix`` (``--sr-suffix``) the SR stem must be the HR stem
  followed by it, and files without it are ignored. Every HR image must get exactly one SR file: missing,
  ambiguous and unmatched files are an error listing them all.
* **Sizes.** The SR files define the evaluated area. An SR of the HR's size is taken as it is; one smaller
  by less than ``MAX_CROP`` pixels in each dimension (codes that crop to a multiple of 4 or 12) is compared
  with the HR cropped to its size at the top-left corner, and the run records which images were; larger, or
  smaller by more, is an error. The protocol's modcrop does not apply to the compared images.
* **Colour.** The protocol's grayscale rule applies to the HR as for models. Under ``basicsr`` a grayscale
  file is replicated to RGB; under ``matlab`` (grayscale kept) an RGB SR of a grayscale HR (Set14 ``bridge``
  in many releases) is converted with MATLAB's ``rgb2gray`` weights and rounded.
* **LR.** ``lr_psnr`` uses the LR the protocol makes from the HR cropped to the SR's area (then to a multiple of
  the scale: the area every metric of the image compares, whatever the protocol's modcrop) or, with
  ``--lr-source folder`` (and LDL's sets under ``paper``), the set's LR file.
* **Identity.** A folder run is identified by the folder's path; every stored value also records a hash of
  the HR and SR files it was computed from, so editing one image recomputes that image alone, and the
  summary records a hash over all file names and bytes (``content``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..data.sets import SETS, ResolvedSet, find_child, list_images, display_name
from ..errors import AesopBenchError, ConfigError, InputError, MissingFileError

SEPARATORS = ("_", "-", ".")
MAX_CROP = 12  # an SR smaller than its HR by this much or more in a dimension is refused
RGB2GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)  # MATLAB rgb2gray


@dataclass
class SetFiles:
    """The SR file of each HR image of one set, with the images whose HR is cropped to the SR's size."""

    folder: Path
    sr_files: dict[str, Path]  # HR file name -> SR file
    cropped: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)  # HR stem -> (sr h, w, hr h, w)
    ignored: list[str] = field(default_factory=list)
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # HR stem -> (sr h, w): the compared area


def set_subfolder(root: Path, set_name: str, only_set: bool) -> Path:
    """The folder of ``set_name``'s SR images under ``root``."""
    entry = SETS.get(set_name)
    names = (entry.folder, entry.name, *entry.aliases, *entry.extra_folders) if entry else (display_name(set_name),)
    found = find_child(root, names)
    if found is not None:
        return found
    if only_set and list_images(root):
        return root
    raise MissingFileError(
        f"--sr {root}: no subfolder for set {display_name(set_name)} (looked for {', '.join(sorted(set(names)))}, "
        "any case)" + ("" if only_set else "; with several sets, put each set's images in a subfolder named like "
                       "the set") + (f"; {root} holds no images" if only_set else ""))


def match_files(hr_files: list[Path], sr_files: list[Path], suffix: str = "") -> tuple[dict[str, Path], list[str]]:
    """``{HR file name: SR file}``, and the SR files ignored for lacking ``suffix``; raises listing every problem."""
    stems = {f.stem: f for f in hr_files}
    owners: dict[str, list[Path]] = {}
    unmatched, ignored = [], []
    for sr in sr_files:
        stem = sr.stem
        if suffix:
            if not stem.endswith(suffix):
                ignored.append(sr.name)
                continue
            stem = stem[: len(stem) - len(suffix)]
            hr = stem if stem in stems else None
        else:
            cands = [h for h in stems if stem == h or any(stem.startswith(h + s) for s in SEPARATORS)]
            hr = max(cands, key=len) if cands else None
        if hr is None:
            unmatched.append(sr.name)
        else:
            owners.setdefault(hr, []).append(sr)
    missing = [f.name for s, f in stems.items() if s not in owners]
    ambiguous = {s: fs for s, fs in owners.items() if len(fs) > 1}
    problems = []
    if missing:
        problems.append(f"{len(missing)} HR image(s) without an SR file: {', '.join(missing)}")
    if ambiguous:
        problems.append("several SR files for one HR image: " + "; ".join(
            f"{s}: {', '.join(f.name for f in fs)}" for s, fs in ambiguous.items()))
    if unmatched:
        problems.append(f"{len(unmatched)} SR file(s) matching no HR image: {', '.join(unmatched)}")
    if missing and ignored:  # a wrong --sr-suffix: say what the files are called
        problems.append(f"{len(ignored)} file(s) found without the suffix {suffix!r}: {', '.join(sorted(ignored)[:10])}"
                        + (f" (+{len(ignored) - 10} more)" if len(ignored) > 10 else ""))
    if problems:
        raise ConfigError("; ".join(problems) + ". An SR file is matched to the HR image whose name is its "
                          "name or its prefix followed by _, - or . (give --sr-suffix for a suffix common to "
                          "all files); remove or rename the files listed")
    return {stems[s].name: fs[0] for s, fs in owners.items()}, ignored


def _height_width(path: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.height, img.width
    except Exception as exc:  # noqa: BLE001 - any reader error names the file
        raise InputError(f"{path}: cannot read image ({exc}); replace or remove the file") from None


def check_sizes(files: SetFiles, res: ResolvedSet) -> None:
    """Record the SR files smaller than their HR (cropped), refuse larger ones and much smaller ones."""
    bad = []
    for hr_file in res.hr_files:
        sr = files.sr_files[hr_file.name]
        (sh, sw), (hh, hw) = _height_width(sr), _height_width(hr_file)
        files.sizes[hr_file.stem] = (sh, sw)
        if (sh, sw) == (hh, hw):
            continue
        if sh <= hh and sw <= hw and hh - sh < MAX_CROP and hw - sw < MAX_CROP:
            files.cropped[hr_file.stem] = (sh, sw, hh, hw)
        else:
            bad.append(f"{sr} is {sw}x{sh} but its HR {hr_file.name} is {hw}x{hh}")
    if bad:
        raise InputError("; ".join(bad) + f". An SR image must have its HR's size, or be smaller by less than "
                         f"{MAX_CROP} pixels (a crop at the bottom/right); check the scale and the set")


class FolderSource:
    """SR images read from a folder; see the module docstring. Follows :class:`.sources.Source`."""

    source_type = "folder"
    writes_sr = False

    def __init__(self, root: str | Path, n_sets: int, suffix: str = "", name: str | None = None,
                 protocol=None):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise MissingFileError(f"--sr {root}: not a folder; give the folder holding the SR images")
        self.name = name or self.root.name
        self.identity = f"sr-folder:{self.root}"
        self.suffix = suffix
        self.n_sets = n_sets
        self.protocol = protocol  # where it reads the set's LR files (--lr-source folder), they are hashed too
        self.sets: dict[str, SetFiles] = {}
        self._res: dict[str, ResolvedSet] = {}
        self._digests: dict[Path, bytes] = {}  # each file is read for hashing once per run

    def _digest(self, path: Path) -> bytes:
        if path not in self._digests:
            self._digests[path] = hashlib.sha256(path.read_bytes()).digest()
        return self._digests[path]

    def prepare_set(self, set_name: str, res: ResolvedSet, log) -> None:
        if res.hr_dir is None:
            raise ConfigError(f"set {set_name!r} has no HR images to match SR files against")
        folder = set_subfolder(self.root, set_name, self.n_sets == 1)
        try:
            sr_files, ignored = match_files(res.hr_files, list_images(folder), self.suffix)
        except AesopBenchError as exc:
            raise type(exc)(f"--sr {folder} against {res.hr_dir}: {exc}") from None
        files = SetFiles(folder, sr_files, ignored=ignored)
        check_sizes(files, res)
        self.sets[set_name] = files
        self._res[set_name] = res
        if ignored:
            log(f"{display_name(set_name)}: ignored {len(ignored)} file(s) without the suffix {self.suffix!r}: "
                f"{', '.join(ignored)}")
        if files.cropped:
            log(f"{display_name(set_name)}: {len(files.cropped)} SR image(s) smaller than their HR, evaluated against "
                "the HR cropped to the SR's size at the top-left: " + ", ".join(
                    f"{k} ({v[1]}x{v[0]} of {v[3]}x{v[2]})" for k, v in sorted(files.cropped.items())))

    def row_digest(self, set_name: str, hr_file: Path) -> str:
        """The hash of the files a stored value of this image comes from: HR, SR, and the set's LR file where
        ``--lr-source folder`` reads it."""
        sr_file = self.sets[set_name].sr_files[hr_file.name]
        parts = self._digest(hr_file) + self._digest(sr_file)
        if self.protocol is not None and self._res[set_name].protocol(self.protocol).lr_source == "folder":
            lr_file = self._res[set_name].lr_file(hr_file, self.protocol.scale)
            parts += self._digest(lr_file) if lr_file is not None else b"-"
        return hashlib.sha256(parts).hexdigest()[:20]

    def content(self, set_name: str) -> str:
        """A hash over the names and bytes of a set's SR files."""
        h = hashlib.sha256()
        for name, f in sorted(self.sets[set_name].sr_files.items()):
            h.update(f"{f.name}\0".encode())
            h.update(self._digest(f))
        return h.hexdigest()[:20]

    def describe_set(self, set_name: str, res: ResolvedSet) -> dict:
        """The set's data record as this folder is compared: the HR's source, the LR ``lr_psnr`` uses, the SR files'
        area (with a hash of every image's compared size, so that folders of other sizes are not compared as
        one), and the folder's files of the set."""
        files = self.sets[set_name]
        data = {k: v for k, v in res.data.items() if k not in ("area", "lr")}
        reads_lr = self.protocol is not None and res.protocol(self.protocol).lr_source == "folder"
        precision = "double precision, rounded once" if self.protocol is None or \
            self.protocol.lr_precision == "double" else "uint8 path, rounded after each pass"
        data["lr"] = (res.data.get("lr", "the set's LR files") + " (lr_psnr)") if reads_lr else \
            f"MATLAB bicubic ({precision}) of the HR cropped to each SR file's area, then to a multiple of the " \
            "scale (lr_psnr)"
        cropped = f"; {len(files.cropped)} HR image(s) cropped at the top-left to their smaller SR" \
            if files.cropped else ""
        data["area"] = f"the SR files' area (each HR as large as its SR file{cropped})"
        data["sizes"] = hashlib.sha256(json.dumps(sorted(files.sizes.items())).encode()).hexdigest()[:16]
        data["sr_folder"] = {"content": self.content(set_name), "suffix": self.suffix,
                             "cropped": {k: list(v) for k, v in sorted(files.cropped.items())},
                             "files": {Path(hr).stem: str(sr.relative_to(self.root))
                                       for hr, sr in sorted(files.sr_files.items())}}
        return data

    def record(self, sets: dict[str, dict]) -> dict:
        """The summary's ``sr_folder`` entry, from the records of every set of this folder in the run folder (those
        of earlier calls too): the folder, the suffix (per set where they differ), a hash of its files, and each
        set's files and cropped images."""
        mine = {s: r["data"]["sr_folder"] for s, r in sets.items() if "sr_folder" in (r.get("data") or {})}
        if not mine:
            return {}
        h = hashlib.sha256()
        for s in sorted(mine):
            h.update(f"{s}\0{mine[s]['content']}\0".encode())
        suffixes = {s: r["suffix"] for s, r in mine.items()}
        suffix = next(iter(suffixes.values())) if len(set(suffixes.values())) == 1 else suffixes
        return {"sr_folder": {"path": str(self.root), "suffix": suffix, "content": h.hexdigest()[:20],
                              "cropped": {s: r["cropped"] for s, r in mine.items() if r["cropped"]},
                              "files": {s: r["files"] for s, r in mine.items()}}}

    def images(self, res: ResolvedSet, set_name: str, hr_files: list[Path], protocol, need_lr: bool):
        """``[(hr, lr, sr), ...]`` uint8 ``(C, H, W)``, one per HR file: the HR cropped to the SR's area, its LR
        (or None), the SR."""
        return [self._triple(res, set_name, f, protocol, need_lr) for f in hr_files]

    def _triple(self, res: ResolvedSet, set_name: str, hr_file: Path, protocol, need_lr: bool):
        from ..data.transforms import to_rgb
        from ..imageio import read_image

        sr_file = self.sets[set_name].sr_files[hr_file.name]
        hr, sr = read_image(hr_file), read_image(sr_file)
        if protocol.grayscale == "rgb":
            hr, sr = to_rgb(hr), to_rgb(sr)
        elif hr.shape[0] == 1 and sr.shape[0] == 3:
            sr = rgb2gray(sr)
        elif hr.shape[0] == 3 and sr.shape[0] == 1:
            sr = to_rgb(sr)
        hr = hr[:, : sr.shape[-2], : sr.shape[-1]]
        lr = _lr(res, hr_file, hr, protocol, sr.shape[-2:]) if need_lr else None
        return hr, lr, sr


def rgb2gray(img):
    """MATLAB ``rgb2gray`` of a uint8 ``(3, H, W)`` image -> ``(1, H, W)`` uint8 (rounded)."""
    import torch

    w = torch.tensor(RGB2GRAY, dtype=torch.float64).view(3, 1, 1)
    return (img.double() * w).sum(0, keepdim=True).round().clamp(0, 255).to(torch.uint8)


def _lr(res: ResolvedSet, hr_file: Path, hr, protocol, sr_size):
    from ..data.transforms import protocol_lr, to_rgb

    s = protocol.scale
    if protocol.lr_source == "make":  # of the compared area (the SR's), cropped to a multiple of the scale only
        return protocol_lr(hr, protocol.with_overrides(modcrop=s))
    lr_file, lr = res.read_lr(hr_file, s)
    lr = to_rgb(lr) if protocol.grayscale == "rgb" or hr.shape[0] == 3 else lr
    if lr.shape[-2] * s > sr_size[0] or lr.shape[-1] * s > sr_size[1]:
        raise InputError(f"{lr_file}: LR {lr.shape[-1]}x{lr.shape[-2]} x{s} is larger than the SR image "
                         f"({sr_size[1]}x{sr_size[0]}); use --lr-source make")
    return lr
