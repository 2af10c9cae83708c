"""Do `pixelseg rank`'s pre-labels open in the annotation tools' own readers, as they are?

    # in a separate venv, outside the repository (the tools are not pixelseg's dependencies):
    python -m venv /tmp/tools && /tmp/tools/bin/pip install labelme datumaro label-studio-converter
    pixelseg rank RUN IMAGES --out R/labelme --top 4
    pixelseg rank RUN IMAGES --out R/coco --top 4 --prelabel-format coco
    /tmp/tools/bin/python bench/prelabel_tools.py --rank-root R --images IMAGES

- LabelMe: every pre-label JSON is read by labelme's own `LabelFile`, which also loads the
  image through `imagePath`.
- COCO in CVAT: CVAT imports COCO 1.0 through Datumaro; the instances file is laid out as
  CVAT's archive (`annotations/instances_default.json`, `images/`) and imported with
  `coco_instances`, which refuses a `file_name` that leaves the folder.
- COCO in Label Studio: converted to Label Studio tasks by label-studio-converter, as its
  `import coco` command does, with the polygons as predictions.
Prints what each tool read; any failure raises.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path


def check_labelme(folder: Path) -> None:
    from labelme._label_file import LabelFile  # labelme >= 6 keeps its reader here

    for path in sorted(folder.glob("*.json")):
        lf = LabelFile(str(path))
        kinds = sorted({s["shape_type"] for s in lf.shapes})
        assert lf.imageData, f"{path}: labelme could not load the image"
        print(f"labelme  {path.name}: {len(lf.shapes)} shapes {kinds}, image loaded")


def check_coco_datumaro(instances: Path, images: Path, tmp: Path) -> None:
    import datumaro as dm

    doc = json.loads(instances.read_text())
    (tmp / "annotations").mkdir(parents=True)
    (tmp / "images").mkdir()
    shutil.copy(instances, tmp / "annotations" / "instances_default.json")
    for image in doc["images"]:
        shutil.copy(images / image["file_name"], tmp / "images" / image["file_name"])
    ds = dm.Dataset.import_from(str(tmp), "coco_instances")
    polygons = sum(a.type == dm.AnnotationType.polygon for item in ds for a in item.annotations)
    labels = len(ds.categories()[dm.AnnotationType.label])
    print(f"datumaro coco_instances: {len(ds)} images, {polygons} polygons, {labels} labels")


def check_coco_label_studio(instances: Path, tmp: Path) -> None:
    from label_studio_converter.imports.coco import convert_coco_to_ls

    out = tmp / "tasks.json"
    convert_coco_to_ls(str(instances), str(out), out_type="predictions")
    tasks = json.loads(out.read_text())
    polygons = sum(
        r["type"] == "polygonlabels" for t in tasks for r in t["predictions"][0]["result"]
    )
    print(f"label-studio-converter: {len(tasks)} tasks, {polygons} polygon predictions")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rank-root", type=Path, required=True, help="holds labelme/ and coco/")
    p.add_argument("--images", type=Path, required=True, help="the images that were ranked")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        check_labelme(args.rank_root / "labelme" / "prelabels")
        instances = args.rank_root / "coco" / "prelabels" / "instances.json"
        check_coco_datumaro(instances, args.images, Path(tmp) / "cvat")
        check_coco_label_studio(instances, Path(tmp))


if __name__ == "__main__":
    main()
