"""``pixelseg rank``: which images to label next, and which labels look wrong.

Unlabelled images (``rank_images``) are streamed once through the model (and its mirror
image, for test-time disagreement), each kept as a few numbers and a small layout descriptor,
so a list of any length fits in memory. The top K are chosen for uncertainty and diversity
(``analysis/acquisition.py``) and predicted once more to draw the gallery and write the
pre-labels. Labelled images (``rank_labels``) are ordered by how much the model, where it is
confident, disagrees with their label.

The output folder holds ``ranking.csv`` (every image: rank, score and its parts),
``index.html`` (the top K as pictures), ``gallery/`` (its PNGs) and, for unlabelled images,
``prelabels/`` (the model's masks of the top K as LabelMe, YOLO, COCO or mask files, to correct
rather than draw). It is written into ``OUT.partial`` and renamed into place when complete; an
existing OUT is never replaced.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..analysis.acquisition import diverse_order, label_disagreement, score_image
from ..analysis.instances import uncertainty_map, uncertainty_to_image
from ..constants import IGNORE_INDEX
from ..data.formats import open_split
from ..data.imageio import read_image
from ..data.overlay import overlay
from ..data.writers.base import StagedFolder, write_file
from ..deploy.batch_listing import count_file_list, expand_images, read_file_list
from ..deploy.predict import Predictor, load
from ..errors import PixelsegError
from .rank_outputs import PreLabels, gallery_page, write_csv, write_pictures

CANDIDATES = 20  # the diverse top K is chosen among the CANDIDATES x K most uncertain


@dataclass
class RankResult:
    out: Path
    ranked: int
    failed: list[tuple[str, str]] = field(default_factory=list)
    top: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"ranked {self.ranked} images into {self.out} (ranking.csv, index.html)"]
        lines += [f"  {i + 1}. {name}" for i, name in enumerate(self.top[:5])]
        if self.failed:
            lines.append(f"{len(self.failed)} image(s) could not be read, e.g. {self.failed[0][1]}")
        return "\n".join(lines)


def _unique_names(paths: list[str]) -> dict[str, str]:
    """Output names from the images' stems, ``_2``, ``_3`` ... when two share one."""
    seen: dict[str, int] = {}
    out = {}
    for p in paths:
        stem = Path(p).stem
        seen[stem] = seen.get(stem, 0) + 1
        out[p] = stem if seen[stem] == 1 else f"{stem}_{seen[stem]}"
    return out


def _mirrored_probs(predictor: Predictor, image: np.ndarray) -> np.ndarray:
    return predictor.predict_proba(np.ascontiguousarray(image[:, ::-1]))[:, :, ::-1]


def _entries(images: Iterable[str], files: str | Path | None, root) -> tuple[Iterator[str], int]:
    if files:
        base = Path(root) if root else Path(files).resolve().parent
        return (str(base / e) for e in read_file_list(files)), count_file_list(files)
    paths = expand_images(list(images))
    return iter(paths), len(paths)


def rank_images(
    model: str | Path | Predictor,
    images: Iterable[str] = (),
    out_dir: str | Path = "ranking",
    *,
    files: str | Path | None = None,
    root: str | Path | None = None,
    top: int = 50,
    prelabel_format: str = "labelme",
    min_area: int = 64,
    device: str = "auto",
    progress: bool = True,
) -> RankResult:
    """Order unlabelled images by what labelling each would teach ``model`` (a run folder or an
    ONNX file), most first; draw the top ``top`` and write their pre-labels.

    >>> pixelseg.rank_images("runs/cars", ["unlabelled/"], "to-label", top=40)  # doctest: +SKIP
    """
    if top < 1:
        raise PixelsegError("--top must be at least 1")
    predictor = model if hasattr(model, "predict_proba") else load(model, device)
    entries, total = _entries(images, files, root)
    with StagedFolder(out_dir, "--out") as stage:
        names, scores, failed = [], [], []
        for path in tqdm(entries, total=total, desc="rank", unit="img", disable=not progress):
            try:
                image = read_image(path)
            except PixelsegError as e:
                failed.append((path, str(e)))
                continue
            probs = predictor.predict_proba(image)
            scores.append(score_image(probs, _mirrored_probs(predictor, image)))
            names.append(path)
        if not names:
            raise PixelsegError(
                "rank: no image could be read" + (f" ({failed[0][1]})" if failed else "")
            )
        order = _rank_order(scores, top)
        out_names = _unique_names([names[i] for i in order[:top]])
        rows = []
        for r, i in enumerate(order, 1):
            s = scores[i]
            rows.append(
                [
                    r,
                    names[i],
                    f"{s.uncertainty:.5f}",
                    f"{s.margin:.5f}",
                    f"{s.entropy:.5f}",
                    f"{s.flip:.5f}",
                    s.classes,
                ]
            )
        rows += [["", path, "", "", "", "", f"error: {msg}"] for path, msg in failed]
        write_csv(
            stage.path / "ranking.csv",
            ["rank", "image", "score", "margin", "entropy", "flip", "classes"],
            rows,
        )
        prelabels = PreLabels(
            stage.path / "prelabels", prelabel_format, predictor.classes, min_area
        )
        cards = []
        for r, i in enumerate(
            tqdm(order[:top], desc="pre-label", unit="img", disable=not progress), 1
        ):
            path = names[i]
            image = read_image(path)
            probs = predictor.predict_proba(image)
            class_map = probs.argmax(0).astype(np.uint8)
            prelabels.add(out_names[path], path, class_map)
            pictures = {
                "image": image,
                "prediction": overlay(image, class_map, predictor.classes.colours),
                "uncertainty": uncertainty_to_image(uncertainty_map(probs, "margin")),
            }
            s = scores[i]
            cards.append(
                {
                    "rank": r,
                    "name": path,
                    "numbers": {"score": s.uncertainty, "margin": s.margin, "flip": s.flip},
                    "pictures": write_pictures(stage.path, out_names[path], pictures),
                }
            )
        prelabels.finish()
        page = gallery_page(
            f"Label next: the top {len(cards)} of {len(names)} images",
            "Ordered by the model's class-balanced uncertainty (margin and mirror-image "
            "disagreement), kept diverse; pre-labels of these images are in prelabels/.",
            ["image", "prediction", "uncertainty"],
            cards,
        )
        write_file(stage.path / "index.html", page.encode())
    return RankResult(stage.out, len(names), failed, [names[i] for i in order[:top]])


def _rank_order(scores, top: int) -> list[int]:
    """The diverse top ``top`` among the most uncertain candidates, then the rest by score."""
    uncertainty = np.array([s.uncertainty for s in scores])
    by_score = np.argsort(-uncertainty, kind="stable")
    pool = by_score[: max(CANDIDATES * top, 500)]
    descriptors = np.stack([scores[i].descriptor for i in pool])
    first = [int(pool[j]) for j in diverse_order(uncertainty[pool], descriptors, top)]
    chosen = set(first)
    return first + [int(i) for i in by_score if int(i) not in chosen]


def rank_labels(
    model: str | Path | Predictor,
    data: str | Path,
    split: str = "train",
    out_dir: str | Path = "label-check",
    *,
    data_format: str = "auto",
    top: int = 50,
    device: str = "auto",
    progress: bool = True,
) -> RankResult:
    """Order the labelled images of ``data``'s ``split`` by how likely their label is wrong
    (the model confidently disagrees with it), most first; draw the top ``top``.

    >>> pixelseg.rank_labels("runs/cars", "data/cars", "train", "label-check")  # doctest: +SKIP
    """
    if top < 1:
        raise PixelsegError("--top must be at least 1")
    predictor = model if hasattr(model, "predict_proba") else load(model, device)
    source = open_split(data, split, data_format)
    if source.classes.names != predictor.classes.names:
        raise PixelsegError(
            f"{data}: classes {source.classes.names} differ from the model's "
            f"{predictor.classes.names}"
        )
    with StagedFolder(out_dir, "--out") as stage:
        scored, failed = [], []
        for i in tqdm(range(len(source)), desc="check labels", unit="img", disable=not progress):
            item = source.items[i]
            try:
                sample = source.load(i)
            except PixelsegError as e:
                failed.append((str(item.image), str(e)))
                continue
            score = label_disagreement(predictor.predict_proba(sample.image), sample.mask)
            scored.append((score, i))
        scored.sort(key=lambda t: -t[0].score)
        names = predictor.classes.names
        rows = [
            [
                r,
                str(source.items[i].image),
                str(source.items[i].mask),
                f"{s.score:.5f}",
                f"{s.disagreement:.5f}",
                f"{s.class_disagreement:.5f}",
                f"{s.pixel_disagreement:.5f}",
                f"{s.misalignment:.5f}",
                s.shift[0],
                s.shift[1],
                f"{s.disagreeing_pixels:.5f}",
                names[s.worst_class] if s.worst_class >= 0 else "",
            ]
            for r, (s, i) in enumerate(scored, 1)
        ]
        rows += [["", path] + [""] * 9 + [f"error: {msg}"] for path, msg in failed]
        write_csv(
            stage.path / "ranking.csv",
            [
                "rank",
                "image",
                "label",
                "score",
                "disagreement",
                "class_disagreement",
                "pixel_disagreement",
                "misalignment",
                "shift_y",
                "shift_x",
                "disagreeing_pixels",
                "worst_class",
            ],
            rows,
        )
        out_names = _unique_names([str(source.items[i].image) for _, i in scored[:top]])
        cards = []
        for r, (s, i) in enumerate(scored[:top], 1):
            sample = source.load(i)
            probs = predictor.predict_proba(sample.image)
            pred = probs.argmax(0)
            label = np.where(sample.mask == IGNORE_INDEX, 255, sample.mask).astype(np.uint8)
            differ = (sample.mask != IGNORE_INDEX) & (pred != sample.mask)
            pictures = {
                "label": overlay(sample.image, label, predictor.classes.colours),
                "prediction": overlay(
                    sample.image, pred.astype(np.uint8), predictor.classes.colours
                ),
                "disagreement": uncertainty_to_image(differ * probs.max(0)),
            }
            path = str(source.items[i].image)
            cards.append(
                {
                    "rank": r,
                    "name": path,
                    "numbers": {
                        "score": s.score,
                        "misalignment": s.misalignment,
                        "pixels differing": s.disagreeing_pixels,
                    },
                    "pictures": write_pictures(stage.path, out_names[path], pictures),
                }
            )
        page = gallery_page(
            f"Labels to check: the top {len(cards)} of {len(scored)} in {split}",
            "Ordered by how confidently the model disagrees with each label (the mean of a "
            "confidence-weighted 1 - IoU per class, averaged over the classes, and the "
            "confidence summed over the disagreeing pixels, over the labelled pixels), plus the "
            "part of the class disagreement a shift of the whole label by a few pixels removes "
            "(misalignment; ranking.csv gives the shift); the disagreement map is bright "
            "where a confident prediction differs from the label.",
            ["label", "prediction", "disagreement"],
            cards,
        )
        write_file(stage.path / "index.html", page.encode())
    return RankResult(
        stage.out, len(scored), failed, [str(source.items[i].image) for _, i in scored[:top]]
    )


__all__ = ["RankResult", "rank_images", "rank_labels"]
