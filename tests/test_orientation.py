"""Photos carrying an EXIF orientation (1-8) are read as they are shown: their masks, drawn on the
shown photo as every annotation tool draws them, line up with the prepared images; a mask that fits
only the stored pixels is a one-line error; images the workflow writes out are upright, untagged."""

import json

import numpy as np
import pytest
import zarr
from PIL import Image

from ddpmseg.errors import DatasetError
from ddpmseg.formats.export import export_masks
from ddpmseg.formats.prepare import prepare_formatted
from ddpmseg.images import ORIENTATION_TAG, orientation, read_rgb, shown_size, write_upright

# How the stored pixels are made from the upright photo for each tag: the inverse of what the tag
# tells a viewer to do (exif_transpose's table).
STORED_FROM_UPRIGHT = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                       4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
                       7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}
WIDTH, HEIGHT = 48, 32  # the upright photo: landscape, so that orientations 5-8 change its shape


def upright_photo_and_mask() -> tuple:
    """A 48x32 upright photo (a red block top-left, a blue stripe at the bottom, a grey ramp
    elsewhere) and its mask drawn on it: 1 red, 2 blue, 0 the rest."""
    ramp = np.linspace(40, 200, WIDTH).astype(np.uint8)
    photo = np.repeat(np.repeat(ramp[None, :, None], HEIGHT, 0), 3, 2)
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    photo[2:14, 3:20] = (230, 20, 20)
    mask[2:14, 3:20] = 1
    photo[24:30, :] = (20, 20, 230)
    mask[24:30, :] = 2
    return photo, mask


def save_tagged(upright: np.ndarray, path, tag: int) -> None:
    """Save ``upright`` as a phone would: the pixels turned as the tag says to undo, the tag set."""
    image = Image.fromarray(upright)
    if STORED_FROM_UPRIGHT[tag] is not None:
        image = image.transpose(STORED_FROM_UPRIGHT[tag])
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = tag
    image.save(path, exif=exif.tobytes())


def write_folder(root, photo: np.ndarray, mask: np.ndarray, tag: int, name: str = "phone.png") -> None:
    """An image_mask folder with the photo (saved with ``tag``) and its mask in train/ and test/."""
    for split in ("train", "test"):
        (root / "images" / split).mkdir(parents=True)
        (root / "masks" / split).mkdir(parents=True)
        save_tagged(photo, root / "images" / split / name, tag)
        Image.fromarray(mask).save(root / "masks" / split / "phone.png")
    (root / "labelmap.txt").write_text("background:::\nred:::\nblue:::\n")


@pytest.mark.parametrize("tag", range(1, 9))
def test_every_orientation_is_read_upright_and_its_upright_mask_lines_up(tag, tmp_path):
    photo, mask = upright_photo_and_mask()
    root = tmp_path / "data"
    write_folder(root, photo, mask, tag)  # PNG: lossless, so exact
    with Image.open(root / "images/train/phone.png") as im:
        assert orientation(im) == tag and (im.size == (WIDTH, HEIGHT)) == (tag < 5)
    assert shown_size(root / "images/train/phone.png") == (WIDTH, HEIGHT, tag)
    np.testing.assert_array_equal(read_rgb(root / "images/train/phone.png"), photo)

    settings = dict(image_size=48, non_square="pad", max_train=None, max_test=None, classes=None, ignore_label=None,
                    resize="lanczos", format="image_mask", unannotated="auto", split={}, unlabeled=None)
    outputs = {split: tmp_path / f"{split}.zarr" for split in ("train", "test", "unlabeled")}
    prepare_formatted(root, settings, outputs, False, "config: datasets.phone")
    upright = tmp_path / "upright"  # the same photo saved upright without a tag: the reference
    write_folder(upright, photo, mask, 1)
    reference = {split: tmp_path / f"reference_{split}.zarr" for split in ("train", "test", "unlabeled")}
    prepare_formatted(upright, settings, reference, False, "config: datasets.phone")
    ours, theirs = (zarr.open_group(str(out["train"]), mode="r") for out in (outputs, reference))
    np.testing.assert_array_equal(ours["images"][:], theirs["images"][:])
    np.testing.assert_array_equal(ours["labels"][:], theirs["labels"][:])
    assert ours.attrs["original_sizes"] == [[HEIGHT, WIDTH]]


@pytest.mark.parametrize("tag", [5, 6, 7, 8])
def test_a_mask_of_the_stored_pixels_is_a_one_line_error_naming_both_sizes_and_the_tag(tag, tmp_path):
    photo, mask = upright_photo_and_mask()
    root = tmp_path / "data"
    write_folder(root, photo, mask.T.copy(), tag, "phone.jpg")  # the mask drawn on the stored pixels
    settings = dict(image_size=48, non_square="pad", max_train=None, max_test=None, classes=None, ignore_label=None,
                    resize="lanczos", format="image_mask", unannotated="auto", split={}, unlabeled=None)
    with pytest.raises(DatasetError) as caught:
        prepare_formatted(root, settings, {"train": tmp_path / "t.zarr"}, False, "config: datasets.phone")
    [problem] = caught.value.problems
    assert f"mask is {HEIGHT}x{WIDTH} (width x height), the stored pixels of phone.jpg, which is shown " \
           f"{WIDTH}x{HEIGHT} (EXIF orientation {tag}" in problem
    assert problem.startswith(str(root / "masks" / "train" / "phone.png")) and "\n" not in problem
    assert not (tmp_path / "t.zarr").exists()


@pytest.mark.parametrize("tag", [3, 6, 8])
def test_images_written_out_are_upright_without_the_tag(tag, tmp_path):
    """`write_upright` (label_next's batch) and `export_masks` (pre-annotations in a tool's format)
    write the photo as shown, untagged, so a tool shows it as the masks beside it; a JPEG keeps its
    other metadata."""
    photo, mask = upright_photo_and_mask()
    save_tagged(photo, tmp_path / "phone.png", tag)
    write_upright(tmp_path / "phone.png", tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as im:
        assert orientation(im) == 1 and ORIENTATION_TAG not in im.getexif()
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), photo)
    jpeg = Image.fromarray(photo).transpose(STORED_FROM_UPRIGHT[tag])
    exif = Image.Exif()
    exif[ORIENTATION_TAG], exif[0x010F] = tag, "PhoneMaker"  # Make
    jpeg.save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    write_upright(tmp_path / "phone.jpg", tmp_path / "out.jpg")
    with Image.open(tmp_path / "out.jpg") as im:
        assert im.size == (WIDTH, HEIGHT) and orientation(im) == 1 and im.getexif().get(0x010F) == "PhoneMaker"
        assert np.abs(np.asarray(im.convert("RGB")).astype(int) - read_rgb(tmp_path / "phone.jpg")).mean() < 2

    export_masks(tmp_path / "voc", "voc", ["phone"], [tmp_path / "phone.png"], [mask], ["background", "red", "blue"])
    [written] = (tmp_path / "voc" / "JPEGImages").iterdir()
    with Image.open(written) as im:
        assert orientation(im) == 1 and im.size == (WIDTH, HEIGHT)
    with Image.open(tmp_path / "voc" / "SegmentationClass" / "phone.png") as im:
        assert im.size == (WIDTH, HEIGHT)


def test_labelme_json_of_a_tagged_photo_is_drawn_on_the_shown_photo(tmp_path):
    """labelme shows a photo turned by its tag and saves imageWidth/imageHeight and points on the
    shown photo: the reader draws there; a JSON that gives the stored size is refused."""
    from ddpmseg.formats import labelme

    photo, _ = upright_photo_and_mask()
    save_tagged(photo, tmp_path / "phone.jpg", 6)
    shape = {"label": "red", "shape_type": "rectangle", "points": [[3, 2], [19, 13]], "group_id": None, "flags": {}}
    document = {"version": "5.5.0", "shapes": [shape], "imagePath": "phone.jpg", "imageData": None,
                "imageWidth": WIDTH, "imageHeight": HEIGHT}
    (tmp_path / "phone.json").write_text(json.dumps(document))
    [image] = labelme.read(tmp_path, {}).images
    drawn = image.class_map()
    assert drawn.shape == (HEIGHT, WIDTH) and (drawn[2:14, 3:20] == 0).all() and (drawn == 0).sum() == 12 * 17
    (tmp_path / "phone.json").write_text(json.dumps({**document, "imageWidth": HEIGHT, "imageHeight": WIDTH}))
    [image] = labelme.read(tmp_path, {}).images
    with pytest.raises(DatasetError, match="EXIF orientation 6"):
        image.class_map()
