import numpy as np

from pixelseg.data.formats import open_split
from pixelseg.data.scenes import SCENE_CLASSES, generate_scene, write_scenes


def test_deterministic_for_a_seed_and_different_across_seeds():
    a_img, a_mask = generate_scene(7, (48, 64))
    b_img, b_mask = generate_scene(7, (48, 64))
    c_img, _ = generate_scene(8, (48, 64))
    assert np.array_equal(a_img, b_img) and np.array_equal(a_mask, b_mask)
    assert not np.array_equal(a_img, c_img)


def test_any_size_and_valid_labels():
    for size in [(16, 16), (37, 53), (120, 40)]:
        img, mask = generate_scene(1, size)
        assert img.shape == (*size, 3) and img.dtype == np.uint8
        assert mask.shape == size and mask.dtype == np.int64
        assert mask.min() >= 0 and mask.max() < SCENE_CLASSES.num_classes


def test_scenes_hold_several_classes_and_are_noisy():
    masks = [generate_scene(s, (96, 96))[1] for s in range(20)]
    classes_per_scene = [len(np.unique(m)) - 1 for m in masks]
    assert np.mean(classes_per_scene) >= 2  # multi-object scenes
    seen = set(np.unique(np.concatenate([m.ravel() for m in masks])))
    assert seen == set(range(SCENE_CLASSES.num_classes))  # every shape class appears
    img, mask = generate_scene(3, (96, 96))
    background = img[mask == 0].astype(float)
    assert background.std() > 5  # textured, not flat


def test_written_scenes_read_back_through_the_mask_folder_reader(tmp_path):
    write_scenes(tmp_path, {"train": 3, "val": 2}, size=(32, 40), seed=5, progress=False)
    src = open_split(tmp_path, "train")
    assert src.format_name == "mask-folder"
    assert src.classes.names == SCENE_CLASSES.names
    sample = src.load(1)
    img, mask = generate_scene(5 * 10_000_019 + 1, (32, 40))
    assert np.array_equal(sample.image, img) and np.array_equal(sample.mask, mask)
    assert len(open_split(tmp_path, "val")) == 2
