"""A user's folder of images: the real-data path. Loaded once into memory as uint8.

Three layouts, recognised in this order:

1. ``DIR/images/NAME.*`` + ``DIR/labels/NAME.png``: image + label-map pairs (fields ``img``, ``seg``). A label
   map is a single-channel PNG (mode L, P or I;16) whose pixel values are class indices; ``n_classes`` is the
   option or else the largest index + 1. Pairs match by file name without extension.
2. ``DIR/CLASS/...``: one sub-folder per class (fields ``img``, ``label``; classes are the sorted sub-folder
   names, ``info["classes"]``; images anywhere below a class folder count).
3. ``DIR/*.png``: images only (field ``img``).

Images are .png, .jpg, .jpeg, .bmp or .webp (any case), read with PIL (EXIF orientation applied, alpha
dropped, 16-bit grey scaled to 8 bits) and converted to ``channels`` (3: RGB, 1: grey, ITU-R 601 luma).
Resizing to ``size`` (H, W) uses PIL's bicubic filter, which widens its support when shrinking, so it is
antialiased: with ``crop=True`` the largest centred region of aspect W/H is resized (the same as scaling the
shorter side and centre-cropping, in one resampling), with ``crop=False`` the whole image is resized to
(H, W). Label maps go through the same geometry with nearest-neighbour sampling, so they keep exact classes.
Hidden files (a leading dot) and files with other extensions are skipped (counted in
``info["skipped_files"]``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .base import FieldSpec, GanDataset, parse_size

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
LABEL_EXTENSIONS = (".png", ".bmp")  # lossless only: a lossy codec would invent class indices at edges
_LIST_LIMIT = 10


def _listing(paths: list[str]) -> str:
    shown = ", ".join(paths[:_LIST_LIMIT])
    return shown + (f" and {len(paths) - _LIST_LIMIT} more" if len(paths) > _LIST_LIMIT else "")


def _is_image(p: Path) -> bool:
    return p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS


def _visible_files(folder: Path, recursive: bool) -> list[Path]:
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and not any(part.startswith(".")
                                                              for part in p.relative_to(folder).parts))


def _open(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            img.load()
            return img
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ValueError(f"cannot read image file {path}: {err}; remove or replace it") from None


def _oriented_size(path: Path) -> tuple[int, int]:
    """(W, H) as displayed, read from the header alone (EXIF orientations 5..8 swap the sides)."""
    try:
        with Image.open(path) as img:
            swapped = img.getexif().get(0x0112, 1) in (5, 6, 7, 8)
            return (img.height, img.width) if swapped else img.size
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ValueError(f"cannot read image file {path}: {err}; remove or replace it") from None


def _read(path: Path, channels: int) -> Image.Image:
    img = ImageOps.exif_transpose(_open(path))
    if img.mode.startswith("I") or img.mode == "F":
        # 16/32-bit grey: PIL's convert("L") would clip at 255 instead of scaling
        grey = np.asarray(img, dtype=np.float64)
        grey = grey / 257.0 if grey.max() > 255 else grey
        img = Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8))
    return img.convert("RGB" if channels == 3 else "L")


def _crop_box(width: int, height: int, target: tuple[int, int], crop: bool) -> tuple[float, float, float, float]:
    """The source region (left, top, right, bottom) to resize onto ``target`` (H, W)."""
    th, tw = target
    if not crop:
        return (0.0, 0.0, float(width), float(height))
    if width * th > height * tw:                                 # wider than the target aspect: trim the sides
        bw = height * tw / th
        return ((width - bw) / 2, 0.0, (width + bw) / 2, float(height))
    bh = width * th / tw                                         # taller: trim top and bottom
    return (0.0, (height - bh) / 2, float(width), (height + bh) / 2)


def _resize(img: Image.Image, target: tuple[int, int], crop: bool, resample: int) -> Image.Image:
    th, tw = target
    box = _crop_box(img.width, img.height, target, crop)
    if img.size == (tw, th) and box == (0.0, 0.0, float(tw), float(th)):
        return img
    return img.resize((tw, th), resample=resample, box=box)


def _load_image(img: Image.Image, target: tuple[int, int], crop: bool) -> np.ndarray:
    arr = np.asarray(_resize(img, target, crop, Image.Resampling.BICUBIC), dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)   # (C, H, W)


def _load_label(path: Path, image_size: tuple[int, int], target: tuple[int, int], crop: bool) -> np.ndarray:
    img = _open(path)
    if img.mode not in ("L", "P", "I", "I;16", "I;16L", "I;16B", "1"):
        raise ValueError(f"label map {path} has mode {img.mode}; a label map is a single-channel PNG of class "
                         f"indices (mode L, P or I;16): save it as a greyscale or palette image")
    if img.size != image_size:
        raise ValueError(f"label map {path} is {img.width}x{img.height} but its image is "
                         f"{image_size[0]}x{image_size[1]} (WxH); a pair must have the same size")
    lab = Image.fromarray(np.asarray(img).astype(np.int32))     # mode I: nearest resize keeps indices > 255
    return np.asarray(_resize(lab, target, crop, Image.Resampling.NEAREST)).astype(np.int64)   # (H, W)


def _target_size(size: int | tuple[int, int] | None, paths: list[Path], where: str) -> tuple[int, int]:
    if size is not None:
        return parse_size(size, where)
    sizes = {}
    for p in paths:
        w, h = _oriented_size(p)
        sizes.setdefault((h, w), p.name)
    if len(sizes) > 1:
        examples = ", ".join(f"{name} {h}x{w}" for (h, w), name in list(sizes.items())[:3])
        raise ValueError(f"{where}: images have different sizes (HxW: {examples}); set data.size, "
                         f"e.g. data.size: 64")
    return next(iter(sizes))


def _check_options(channels: int, crop: bool, n_classes: int | None, where: str) -> None:
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ValueError(f"{where}: channels must be 1 (grey) or 3 (RGB), found {channels!r}")
    if not isinstance(crop, bool):
        raise ValueError(f"{where}: crop must be true or false, found {crop!r}")
    if n_classes is not None and (not isinstance(n_classes, int) or isinstance(n_classes, bool) or n_classes < 1):
        raise ValueError(f"{where}: n_classes must be a positive int, found {n_classes!r}")


def image_folder(root: str | Path, *, size: int | tuple[int, int] | None = None, seed: int = 0, crop: bool = True,
                 channels: int = 3, n_classes: int | None = None) -> GanDataset:
    """Load a folder of images (optionally class sub-folders, or image + label-map pairs).

    Args:
        root: the folder.
        size: target size, an int or ``(H, W)``; None keeps the images' size when they all share one.
        seed: accepted for a uniform interface; unused (files load in sorted order).
        crop: centre-crop to the target aspect before resizing (True) or stretch (False).
        channels: 3 (RGB) or 1 (grey).
        n_classes: label-map classes for the pairs layout; None infers the largest index + 1.

    Returns:
        A dataset with ``img`` (image (channels, H, W)) and, by layout, ``label`` (class) or ``seg``
        (label_map).

    Raises:
        ValueError: for a missing or empty folder, an unreadable file (named), unpaired files (listed),
            mixed layouts, differing sizes without ``size``, or bad options.
    """
    root = Path(root).expanduser()
    where = f"image folder {root}"
    if not root.is_dir():
        raise ValueError(f"{where} does not exist or is not a folder; give the path of a folder of images")
    _check_options(channels, crop, n_classes, where)
    if (root / "images").is_dir() and (root / "labels").is_dir():
        return _pairs(root, size, crop, channels, n_classes, where)
    if n_classes is not None:
        raise ValueError(f"{where}: n_classes applies to image + label-map pairs (images/ and labels/ "
                         f"sub-folders), which this folder does not have; remove data.n_classes")
    files = _visible_files(root, recursive=False)
    top_images = [p for p in files if _is_image(p)]
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    class_files = {d.name: [p for p in _visible_files(d, recursive=True) if _is_image(p)] for d in subdirs}
    if any(class_files.values()):
        if top_images:
            raise ValueError(f"{where} mixes images at its top level ({_listing([p.name for p in top_images])}) "
                             f"with class sub-folders; move them into a class folder or remove them")
        empty = [name for name, paths in class_files.items() if not paths]
        if empty:
            raise ValueError(f"{where}: class folder(s) {_listing(empty)} hold no images "
                             f"({', '.join(IMAGE_EXTENSIONS)}); add images or remove the folder(s)")
        classes = sorted(class_files)
        paths = [p for c in classes for p in class_files[c]]
        labels = [i for i, c in enumerate(classes) for _ in class_files[c]]
        skipped = sum(len(_visible_files(root / c, recursive=True)) for c in classes) - len(paths)
    else:
        if not top_images:
            raise ValueError(f"{where} holds no images ({', '.join(IMAGE_EXTENSIONS)}); "
                             f"put images in it, in class sub-folders, or in images/ + labels/")
        classes, paths, labels = [], top_images, []
        skipped = len(files) - len(top_images)
    target = _target_size(size, paths, where)
    images = np.stack([_load_image(_read(p, channels), target, crop) for p in paths])   # (N, C, H, W)
    fields = {"img": FieldSpec("image", (channels, *target))}
    data = {"img": torch.from_numpy(images)}
    info = {"source": str(root.resolve()), "n_samples": len(paths), "size": list(target), "channels": channels,
            "crop": crop, "skipped_files": skipped}
    if classes:
        fields["label"] = FieldSpec("class", (), len(classes))
        data["label"] = torch.tensor(labels, dtype=torch.int64)
        info.update(n_classes=len(classes), classes=classes)
    return GanDataset(root.name or str(root), fields, data, info)


def _by_stem(paths: list[Path], folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in paths:
        if p.stem in out:
            raise ValueError(f"{folder} holds two files named {p.stem}: {out[p.stem].name} and {p.name}; "
                             f"keep one")
        out[p.stem] = p
    return out


def _pairs(root: Path, size: int | tuple[int, int] | None, crop: bool, channels: int,
           n_classes: int | None, where: str) -> GanDataset:
    image_dir, label_dir = root / "images", root / "labels"
    image_files = _visible_files(image_dir, recursive=False)
    label_files = _visible_files(label_dir, recursive=False)
    lossy = [p.name for p in label_files if p.suffix.lower() in IMAGE_EXTENSIONS
             and p.suffix.lower() not in LABEL_EXTENSIONS]
    if lossy:
        raise ValueError(f"{where}: label maps must be lossless PNG (or BMP), found {_listing(lossy)} in "
                         f"{label_dir}; save them as PNG")
    images = _by_stem([p for p in image_files if _is_image(p)], image_dir)
    labels = _by_stem([p for p in label_files if p.suffix.lower() in LABEL_EXTENSIONS], label_dir)
    if not images and not labels:
        raise ValueError(f"{where}: images/ and labels/ hold no image files; add NAME.png pairs")
    lonely = [f"images/{images[s].name}" for s in sorted(set(images) - set(labels))]
    lonely += [f"labels/{labels[s].name}" for s in sorted(set(labels) - set(images))]
    if lonely:
        raise ValueError(f"{where}: {len(lonely)} file(s) without a partner: {_listing(lonely)}; every "
                         f"images/NAME.* needs labels/NAME.png and vice versa")
    stems = sorted(images)
    target = _target_size(size, [images[s] for s in stems], where)
    imgs, segs = [], []
    for s in stems:
        img = _read(images[s], channels)
        imgs.append(_load_image(img, target, crop))
        segs.append(_load_label(labels[s], img.size, target, crop))
    seg = np.stack(segs)                                         # (N, H, W) class indices
    top = int(seg.max())
    if n_classes is None:
        n_classes = top + 1
    elif top >= n_classes:
        worst = next(labels[s] for s, m in zip(stems, segs) if int(m.max()) == top)
        raise ValueError(f"{where}: label map {worst} holds class {top} but n_classes is {n_classes}; "
                         f"set data.n_classes: {top + 1} or fix the map")
    fields = {"img": FieldSpec("image", (channels, *target)),
              "seg": FieldSpec("label_map", (n_classes, *target), n_classes)}
    seg_dtype = torch.uint8 if n_classes <= 256 else torch.int32
    data = {"img": torch.from_numpy(np.stack(imgs)), "seg": torch.from_numpy(seg).to(seg_dtype)}
    info = {"source": str(root.resolve()), "n_samples": len(stems), "size": list(target), "channels": channels,
            "crop": crop, "n_classes": n_classes, "skipped_files": len(image_files) + len(label_files) - 2 * len(stems)}
    return GanDataset(root.name or str(root), fields, data, info)
